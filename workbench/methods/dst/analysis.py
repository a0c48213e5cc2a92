"""Tables and figures of a DST run for its report: the three networks, gradient norms, streams.

Every function reads run directories (cards, ``metrics.csv``), never a training process.

- :func:`dst_networks`: the FSNN trained by DST (the run), the DSNN (``snapshots/dsnn``) and
  the spike-only baseline (``snapshots/spike_only``), with their test accuracy and loss.
- :func:`gradient_norm_table`: per part of the spike stream (stem, every block, fc), the mean
  gradient norm over training under DST and under spike-only training, and their ratio.
- :func:`plot_gradient_norms`: those means against depth, and the ratio.
- :func:`corresponding_layers`: the diagonal of a layer x layer comparison of two networks
  of equal depth (:func:`workbench.analysis.compare_models`), e.g. FSNN block ``i`` against the
  DSNN's accumulation after block ``i``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import DataError, ValidationError

#: Row labels of :func:`dst_networks`.
LABELS = {"fsnn": "FSNN (DST, AAP removed)", "dsnn": "DSNN (AAP kept)", "spike_only": "FSNN (spike-only)"}


def dst_networks(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The networks of a DST run that exist, with their accuracy.

    Returns
    -------
    DataFrame
        Index ``network`` (``"fsnn"``, ``"dsnn"``, ``"spike_only"``); columns ``label``,
        ``path`` (str, a run directory and so a model name), ``architecture``, ``head``
        (``"spike"`` or ``"acc"``), ``test_acc``, ``test_loss``.
    """
    from workbench.methods.dst.train import BASELINE_DIR, DSNN_DIR
    from workbench.training import is_run_directory, read_card

    run_dir = Path(run_dir)
    card = read_card(run_dir, verify_weights=False)
    if card.get("method") != "dst":
        raise DataError(f"{run_dir / 'model_card.json'} field 'method' is {card.get('method')!r}; expected 'dst'")
    ev = card.get("evaluation", {})
    rows = [{"network": "fsnn", "path": str(run_dir), "architecture": card["architecture"], "head": "spike",
             "test_acc": ev.get("test_acc"), "test_loss": ev.get("test_loss")}]
    for key, folder, head in (("dsnn", DSNN_DIR, "acc"), ("spike_only", BASELINE_DIR, "spike")):
        if not is_run_directory(run_dir / folder):
            continue
        other = read_card(run_dir / folder, verify_weights=False)
        suffix = "_dsnn" if key == "dsnn" else "_spike_only"
        rows.append({"network": key, "path": str(run_dir / folder), "architecture": other["architecture"],
                     "head": head, "test_acc": ev.get("test_acc" + suffix),
                     "test_loss": ev.get("test_loss" + suffix)})
    frame = pd.DataFrame(rows).set_index("network")
    frame.insert(0, "label", [LABELS[k] for k in frame.index])
    return frame


def gradient_norm_table(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Mean gradient norm of every part of the spike stream under DST and spike-only training.

    Returns
    -------
    DataFrame
        Index ``part`` (``stem``, ``layerS.B`` ..., ``fc``, input to output); columns
        ``depth`` (0 ...), ``dst``, ``spike_only`` and ``ratio`` (``dst / spike_only``).

    Raises
    ------
    DataError
        The run has no gradient norms of both trainings (``grad_norms`` or ``baseline`` off).
    """
    from workbench.training import read_card

    card = read_card(run_dir, verify_weights=False)
    norms = card.get("gradient_norms") or {}
    if not norms.get("dst") or not norms.get("spike_only"):
        raise DataError(f"{Path(run_dir) / 'model_card.json'} field 'gradient_norms' lacks 'dst' or 'spike_only': "
                        "train with grad_norms=true and baseline=true")
    parts = list(norms["dst"])
    frame = pd.DataFrame({"depth": range(len(parts)), "dst": [norms["dst"][p] for p in parts],
                          "spike_only": [norms["spike_only"].get(p, np.nan) for p in parts]},
                         index=pd.Index(parts, name="part"))
    frame["ratio"] = frame.dst / frame.spike_only
    return frame


def plot_gradient_norms(tables: pd.DataFrame | list[pd.DataFrame], *, labels=None):
    """Left: mean gradient norm per part (DST solid, spike-only dashed); right: the ratio per part.

    ``tables`` is one :func:`gradient_norm_table` or several (e.g. seeds: the ratio panel then
    shows each and their mean).
    """
    import matplotlib.pyplot as plt

    tables = [tables] if isinstance(tables, pd.DataFrame) else list(tables)
    if not tables:
        raise ValidationError("plot_gradient_norms needs at least one table")
    labels = list(labels) if labels is not None else [f"run {i}" for i in range(len(tables))]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    parts = list(tables[0].index)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10
    for table, label, color in zip(tables, labels, colors):
        axes[0].plot(table.depth, table.dst, "o-", color=color, label=f"{label}: DST")
        axes[0].plot(table.depth, table.spike_only, "s--", color=color, label=f"{label}: spike-only")
        axes[1].plot(table.depth, table.ratio, "o-", color=color, alpha=0.6 if len(tables) > 1 else 1,
                     label=label)
    if len(tables) > 1:
        mean = np.mean([t.ratio.values for t in tables], axis=0)
        axes[1].plot(tables[0].depth, mean, "k-", lw=2.2, label="mean")
    axes[0].set(ylabel="mean gradient norm (L2)", yscale="log")
    axes[1].axhline(1.0, color="grey", lw=0.8, ls=":")
    axes[1].set(ylabel="ratio DST / spike-only", yscale="log")
    for ax in axes:
        ax.set_xticks(range(len(parts)), parts, rotation=60, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def corresponding_layers(similarity) -> pd.DataFrame:
    """The diagonal of a layer x layer comparison: layer ``i`` of A against layer ``i`` of B.

    Parameters
    ----------
    similarity : xarray.DataArray
        :func:`workbench.analysis.compare_models`'s result, dims (metric, layer_a, layer_b),
        with as many layers on both sides.

    Returns
    -------
    DataFrame
        Columns ``depth``, ``layer_a``, ``layer_b`` and one column per metric.
    """
    names_a = [str(v) for v in similarity["layer_a"].values]
    names_b = [str(v) for v in similarity["layer_b"].values]
    if len(names_a) != len(names_b):
        raise ValidationError(f"corresponding layers need equal depths; found {len(names_a)} layers "
                              f"({names_a}) and {len(names_b)} ({names_b})")
    frame = pd.DataFrame({"depth": range(len(names_a)), "layer_a": names_a, "layer_b": names_b})
    for metric in similarity["metric"].values:
        values = similarity.sel(metric=metric).values
        frame[str(metric)] = [float(values[i, i]) for i in range(len(names_a))]
    return frame
