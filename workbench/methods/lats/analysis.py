"""Representations along a pruning path: CKA to the dense network and similarity to the brain.

A LATS run keeps its dense network (``snapshots/dense``) and one network per pruning epoch
(``snapshots/prune_eNN``), each a run directory of its own, so every function here takes
run directories and reads their files; nothing needs the training process.

- :func:`pruning_path`: the networks of a run, dense first, in order of sparsity, with their
  sparsity and test accuracy (a subset of at most ``max_networks``).
- :func:`layer_cka_to_reference`: linear CKA between each network's layer and the same layer
  of a reference (the dense network) on a stimulus set.
- :func:`brain_similarity`: the study's sweep over the networks (run directories are model
  names) against neural datasets, summarised per network, region and metric (best layer and
  mean over layers) beside each network's sparsity.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import DataError, ValidationError
from workbench.training.evaluation import run_config


def _sparsity(card: dict) -> float:
    value = card.get("sparsity")
    if isinstance(value, dict):
        value = value.get("overall")
    if value is None:
        value = (card.get("evaluation") or {}).get("sparsity")
    return float("nan") if value is None else float(value)


def _test_acc(metrics: pd.DataFrame | None, epoch: int | None) -> float:
    if metrics is None or epoch is None:
        return float("nan")
    rows = metrics[(metrics.split == "test") & (metrics.metric == "acc") & (metrics.epoch == epoch - 1)]
    return float(rows.value.iloc[-1]) if len(rows) else float("nan")


def _configured_epochs(run_dir: Path) -> int | None:
    try:
        epochs = run_config(run_dir, {}).get("epochs")
    except DataError:
        return None
    return int(epochs) if isinstance(epochs, int) else None


def pruning_path(run_dir: str | os.PathLike, *, max_networks: int = 5) -> pd.DataFrame:
    """The networks along a run's pruning path, dense first.

    Parameters
    ----------
    run_dir : path
        A finished LATS run directory.
    max_networks : int, default: 5
        At most this many rows: the dense snapshot, the final network (the run itself) and
        snapshots in between chosen to spread evenly over the sparsity range.

    Returns
    -------
    DataFrame
        Index ``name`` (``"dense"``, ``"prune_eNN"``, ``"final"``); columns ``path`` (str),
        ``epoch`` (epochs done), ``sparsity`` (fraction of zero conv/linear weights),
        ``threshold`` and ``test_acc`` (from ``metrics.csv``), sorted by sparsity.
    """
    from workbench.training import list_snapshots, read_card, read_metrics

    if max_networks < 2:
        raise ValidationError(f"max_networks must be >= 2 (dense and final), got {max_networks}")
    run_dir = Path(run_dir)
    card = read_card(run_dir, verify_weights=False)
    try:
        metrics = read_metrics(run_dir)
    except DataError:
        metrics = None
    rows = []
    for folder in list_snapshots(run_dir):
        snap = read_card(folder, verify_weights=False)
        if snap["weights_sha256"] == card["weights_sha256"]:
            continue  # the last pruning epoch is the run itself
        rows.append({"name": folder.name, "path": str(folder), "epoch": snap.get("epoch"),
                     "sparsity": _sparsity(snap), "threshold": snap.get("threshold", float("nan"))})
    final_epoch = _configured_epochs(run_dir) or (max((r["epoch"] or 0 for r in rows), default=0) + 1)
    pruning = card.get("pruning") or {}
    rows.append({"name": "final", "path": str(run_dir), "epoch": final_epoch,
                 "sparsity": _sparsity(card), "threshold": pruning.get("final_threshold", float("nan"))})
    frame = pd.DataFrame(rows)
    frame["test_acc"] = [_test_acc(metrics, e) for e in frame.epoch]
    if "final" in frame.name.values and np.isnan(frame.loc[frame.name == "final", "test_acc"]).all():
        frame.loc[frame.name == "final", "test_acc"] = (card.get("evaluation") or {}).get("test_acc", np.nan)
    frame = frame.sort_values(["sparsity", "epoch"], kind="stable").reset_index(drop=True)
    if len(frame) > max_networks:
        first, last = frame.iloc[[0]], frame.iloc[[-1]]
        middle = frame.iloc[1:-1]
        targets = np.linspace(first.sparsity.iloc[0], last.sparsity.iloc[0], max_networks)[1:-1]
        chosen: list[int] = []
        for target in targets:
            order = (middle.sparsity - target).abs().sort_values(kind="stable").index
            pick = next((i for i in order if i not in chosen), None)
            if pick is not None:
                chosen.append(pick)
        frame = pd.concat([first, middle.loc[sorted(chosen)], last])
    return frame.set_index("name")


def layer_cka_to_reference(networks: Sequence[str | os.PathLike], reference: str | os.PathLike, stimuli, *,
                           layers: Sequence[str] | None = None, batch_size: int = 64,
                           labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Linear CKA between each network's layers and the same layers of ``reference``.

    Parameters
    ----------
    networks : sequence of paths
        Run directories (or any model names :func:`workbench.models.create` accepts) of the
        same architecture as ``reference``.
    reference : path
        The reference network (e.g. ``snapshots/dense``).
    stimuli : sequence of images
        What :func:`workbench.activations.extract` accepts (PIL images, uint8 arrays).
    layers : sequence of str, optional
        Default: the reference's analysis layers.
    labels : sequence of str, optional
        Name of each network in the result (default: the paths).

    Returns
    -------
    DataFrame
        Columns ``network``, ``layer``, ``depth`` (layer index), ``cka`` (in [0, 1]; 1 for the
        reference itself; NaN where either side's features do not vary across the stimuli).
        Spiking layers are averaged over time steps first.
    """
    from workbench.activations import extract
    from workbench.metrics.cka import cka
    from workbench.models import create

    labels = [str(n) for n in networks] if labels is None else list(labels)
    if len(labels) != len(networks):
        raise ValidationError(f"labels has {len(labels)} entries for {len(networks)} networks")
    ref_model = create(str(reference))
    layers = list(ref_model.layers if layers is None else layers)
    ref = extract(ref_model, stimuli, layers, batch_size=batch_size)
    rows = []
    for network, label in zip(networks, labels):
        model = create(str(network))
        if model.layers != ref_model.layers:
            raise ValidationError(f"{network} has layers {list(model.layers)}, the reference {reference} "
                                  f"{list(ref_model.layers)}: CKA to the reference needs the same architecture")
        feats = extract(model, stimuli, layers, batch_size=batch_size)
        for depth, layer in enumerate(layers):
            x = np.asarray(feats[layer].values, dtype=np.float64)
            y = np.asarray(ref[layer].values, dtype=np.float64)
            try:
                value = cka(x, y)
            except ValidationError:  # a side constant across stimuli (e.g. a silent spiking layer)
                value = float("nan")
            rows.append({"network": label, "layer": layer, "depth": depth, "cka": float(value)})
    return pd.DataFrame(rows)


def brain_similarity(networks: Sequence[str | os.PathLike], datasets: Sequence[str],
                     metrics: Sequence[str] = ("rsa", "cka"), *, labels: Sequence[str] | None = None,
                     **sweep_kwargs):
    """Score the networks against neural datasets through the study's sweep, summarised.

    Parameters
    ----------
    networks : sequence of paths
        Run directories.
    datasets : sequence of str
        Dataset names (e.g. ``["cowley2023_v4", "kriegeskorte2008_92"]``).
    metrics : sequence of str
    labels : sequence of str, optional
        Name of each network in the summary (default: the paths).
    **sweep_kwargs
        Passed to :func:`workbench.analysis.sweep` (e.g. ``protocol``, ``progress``).

    Returns
    -------
    scores : xarray.Dataset
        The sweep's scores (model = the paths).
    summary : DataFrame
        Columns ``network``, ``region``, ``metric``, ``best`` (max over layers), ``mean`` (over
        layers), ``best_layer``; one row per network x applicable (region, metric).
    """
    from workbench.analysis import sweep

    names = [str(n) for n in networks]
    labels = names if labels is None else list(labels)
    scores = sweep(names, list(datasets), list(metrics), **sweep_kwargs)
    rows = []
    for name, label in zip(names, labels):
        part = scores.sel(model=name)
        for region in scores.region.values:
            for metric in scores.metric.values:
                if not bool(scores.applicable.sel(region=region, metric=metric)):
                    continue
                values = part.score.sel(region=region, metric=metric).values.astype(float)
                layer_names = part.layer_name.values
                finite = np.isfinite(values)
                best = int(np.nanargmax(values)) if finite.any() else None
                rows.append({"network": label, "region": str(region), "metric": str(metric),
                             "best": float(values[best]) if best is not None else float("nan"),
                             "mean": float(np.nanmean(values)) if finite.any() else float("nan"),
                             "best_layer": str(layer_names[best]) if best is not None else ""})
    return scores, pd.DataFrame(rows)


def plot_against_sparsity(frame: pd.DataFrame, *, y: str, group: str | None = None, ax=None,
                          ylabel: str | None = None, title: str | None = None):
    """Line plot of ``frame[y]`` against ``frame["sparsity"]`` (in %), one line per ``group``."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 3.4))
    groups = [(None, frame)] if group is None else list(frame.groupby(group, sort=False))
    for key, part in groups:
        part = part.sort_values("sparsity")
        ax.plot(100 * part.sparsity, part[y], marker="o", label=None if key is None else str(key))
    ax.set_xlabel("sparsity (% of conv/linear weights = 0)")
    ax.set_ylabel(ylabel or y)
    if title:
        ax.set_title(title)
    if group is not None:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax
