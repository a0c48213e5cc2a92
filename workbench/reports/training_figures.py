"""Figures and tables of training runs, for the methods' report notebooks.

Every function reads a run's files (``metrics.csv``, ``model_card.json``), never the live
objects of a training process, so a report can be rebuilt from a run directory alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd


def plot_training_curves(run_dirs: Sequence[str | os.PathLike] | str | os.PathLike, *,
                         metrics: Sequence[str] = ("loss", "acc"), labels: Sequence[str] | None = None):
    """One panel per metric: training (per logged step) and test (per epoch) curves of each run.

    Parameters
    ----------
    run_dirs : path or sequence of paths
        Run directories (each with ``metrics.csv``).
    metrics : sequence of str, default: ("loss", "acc")
        Metric names as logged.
    labels : sequence of str, optional
        Legend label of each run; default: the folder names.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from workbench.training.rundir import read_metrics

    runs = [run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else list(run_dirs)
    labels = list(labels) if labels is not None else [Path(r).name for r in runs]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    for run, label, color in zip(runs, labels, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10):
        frame = read_metrics(run)
        for ax, metric in zip(axes[0], metrics):
            train = frame[(frame.split == "train") & (frame.metric == metric)]
            test = frame[(frame.split == "test") & (frame.metric == metric)]
            if len(train):
                ax.plot(train.step, train.value, color=color, alpha=0.45, lw=1, label=f"{label} (train)")
            if len(test):
                ax.plot(test.step, test.value, color=color, marker="o", lw=1.8, label=f"{label} (test)")
            ax.set_xlabel("optimiser step")
            ax.set_ylabel({"loss": "cross-entropy loss", "acc": "top-1 accuracy"}.get(metric, metric))
    axes[0][0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def evaluation_table(run_dirs: Sequence[str | os.PathLike], *, labels: Sequence[str] | None = None,
                     fields: Sequence[str] = ()) -> pd.DataFrame:
    """One row per run: its final evaluation and chosen card fields (e.g. ``"sparsity"``).

    Parameters
    ----------
    run_dirs : sequence of paths
        Finished run directories.
    labels : sequence of str, optional
        Row labels; default: folder names.
    fields : sequence of str
        Extra top-level card fields to show (missing ones are NaN).
    """
    from workbench.training.model_card import read_card

    labels = list(labels) if labels is not None else [Path(r).name for r in run_dirs]
    rows = []
    for run, label in zip(run_dirs, labels):
        card = read_card(run, verify_weights=False)
        row = {"run": label, "architecture": card["architecture"], "seed": card["seed"],
               **card.get("evaluation", {})}
        row.update({f: card.get(f, float("nan")) for f in fields})
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


def relabel_models(scores, names: Mapping[str, str]):
    """``scores`` with its models renamed by ``names`` (e.g. run directory -> ``"dense"``), so
    that legends show short names instead of paths; models not in ``names`` keep theirs."""
    return scores.assign_coords(model=[names.get(str(m), str(m)) for m in scores["model"].values])


def plot_similarity_against_sparsity(scores, sparsity: Mapping[str, float], *,
                                     labels: Mapping[str, str] | None = None):
    """Best-layer brain similarity of networks against their sparsity: one panel per
    applicable (region, metric), with its chance level, noise ceiling and error bars.

    Each dot is a network's best-layer score (:func:`workbench.analysis.best_layer`) at its
    sparsity, with the best layer's bootstrap interval (``ci_low``/``ci_high``, when the
    sweep's protocol had ``bootstrap > 0``) as error bars; the grey band is the chance level
    (stimulus-permutation null, mean to 95th percentile at the same layers) and the dashed line
    the region's noise ceiling. The y axis always spans 0 and the ceiling (or the top of the
    data), so that differences within noise do not look like a trend.

    Parameters
    ----------
    scores : xarray.Dataset
        A sweep's scores over the networks (:func:`workbench.analysis.sweep`).
    sparsity : mapping model -> float
        Each network's sparsity as a fraction (0 = dense); networks not in it are left out.
    labels : mapping model -> str, optional
        Short name of each network in the title's list of networks and sparsities; default:
        the last part of the model's name (a run directory's folder name, never its path).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    from workbench.analysis.statistics import best_layer
    from workbench.reports.style import figure_style, new_figure

    models = [str(m) for m in scores["model"].values if str(m) in sparsity]
    best = best_layer(scores).sel(model=models)
    x = 100 * np.array([sparsity[m] for m in models])
    order = np.argsort(x)
    panels = [(str(r), str(k)) for r in scores["region"].values for k in scores["metric"].values
              if bool(scores["applicable"].sel(region=r, metric=k))]
    with figure_style():
        fig = new_figure((3.6 * min(len(panels), 3), 3.0 * -(-len(panels) // 3)))
        axes = np.atleast_1d(fig.subplots(-(-len(panels) // 3), min(len(panels), 3), squeeze=False)).ravel()
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        for ax, (region, metric) in zip(axes, panels):
            cell = best.sel(region=region, metric=metric)
            _draw_sparsity_panel(ax, x[order], {v: cell[v].values[order] for v in cell.data_vars
                                                if cell[v].dims == ("model",)},
                                 float(scores["ceiling"].sel(region=region, metric=metric)))
            ax.set_title(f"{region}: {metric}", fontsize=9)
        fig.supxlabel("sparsity (% of conv/linear weights = 0)")
        entries = {}  # one legend for all panels: every mark some panel drew
        for ax in axes[:len(panels)]:
            entries.update(zip(*reversed(ax.get_legend_handles_labels())))
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncols=len(entries))
        names = labels or {}
        fig.suptitle("best-layer similarity vs sparsity: " + ", ".join(
            f"{names.get(m, Path(m).name)} {sparsity[m]:.0%}" for m in np.array(models)[order]), fontsize=8)
    return fig


def _draw_sparsity_panel(ax, x, cell: Mapping, ceiling: float) -> None:
    """One (region, metric) panel: dots with error bars, chance band, ceiling, y from 0."""
    import numpy as np

    y = cell["score"]
    if "ci_low" in cell and np.isfinite(cell["ci_low"]).any():
        yerr = np.vstack([y - cell["ci_low"], cell["ci_high"] - y])
        ax.errorbar(x, y, yerr=np.nan_to_num(yerr), fmt="o-", color="k", ms=4, capsize=3, lw=1,
                    label="best layer (bootstrap CI)")
    else:
        ax.plot(x, y, "o-", color="k", ms=4, lw=1, label="best layer (no bootstrap: no CI)")
    if "null_mean" in cell and np.isfinite(cell["null_mean"]).any():
        ax.fill_between(x, cell["null_mean"], cell["null_p95"], color="0.6", alpha=0.35, lw=0,
                        label="chance (null mean to 95th pct.)")
    top = np.nanmax(np.append(y, cell.get("ci_high", y)))
    if np.isfinite(ceiling):
        ax.axhline(ceiling, color="k", ls="--", lw=0.8, label="noise ceiling")
        top = max(top, ceiling)
    low = min(0.0, np.nanmin(np.append(y, cell.get("null_mean", y))))
    ax.set_ylim(low, 1.1 * top if np.isfinite(top) and top > 0 else 1.0)
    ax.set_ylabel("similarity (best layer)")
