"""Figures and tables of training runs, for the methods' report notebooks.

Every function reads a run's files (``metrics.csv``, ``model_card.json``), never the live
objects of a training process, so a report can be rebuilt from a run directory alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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
