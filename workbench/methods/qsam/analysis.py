"""Representation analysis of a QSAM run: how much each layer's features shift between JPEG qualities.

The paper's claim is that quantisation-aware BN reduces the shift in feature distributions that
compression causes. :func:`quality_shift_cka` makes it measurable: the same test images are
written as JPEG files at two qualities, each network reads them (QSAM mixing its branches from
each file's tables), and every analysis layer's activations at the two qualities are compared
with linear CKA (:func:`workbench.metrics.cka.cka`; 1 = the same representation up to rotation
and scale).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from workbench.activations.hooks import layer_outputs
from workbench.methods.qsam.data import encoded_files


def run_models(run_dir: str | os.PathLike) -> dict[str, tuple[dict, object]]:
    """``{name: (card, Network)}`` of a QSAM run and its baseline snapshots (eval mode)."""
    from workbench.training import list_snapshots
    from workbench.training.evaluation import load_run_network

    models = {"qsam": load_run_network(run_dir)}
    for snapshot in list_snapshots(run_dir):
        models[snapshot.name] = load_run_network(snapshot)
    return models


def quality_shift_cka(run_dir: str | os.PathLike, qualities=(90, 10), *, n_images: int = 200) -> pd.DataFrame:
    """Per-layer linear CKA between the activations of the same test images at two JPEG qualities.

    Parameters
    ----------
    run_dir : path
        A finished ``qsam`` run (its snapshots are the baselines).
    qualities : pair of int
    n_images : int
        The first ``n_images`` test images.

    Returns
    -------
    DataFrame
        Columns ``model, layer, depth, cka``.
    """
    from workbench.data.training import load_training_data
    from workbench.methods.qsam.train import load_files
    from workbench.metrics.cka import cka
    from workbench.training.loop import limited

    models = run_models(run_dir)
    card = models["qsam"][0]
    data = load_training_data(card["data"]["name"], augment=False)
    mean, std = data.preprocessing.mean, data.preprocessing.std
    test = limited(data.test, n_images)
    loaded = {q: load_files(encoded_files(test, q, mean, std), mean, std)[:2] for q in qualities}
    rows = []
    for name, (_, network) in models.items():
        acts = {q: layer_outputs(network.module, network.layers, loaded[q][0], tables=loaded[q][1])
                for q in qualities}
        for depth, layer in enumerate(network.layers):
            rows.append((name, layer, depth, cka(acts[qualities[0]][layer], acts[qualities[1]][layer])))
    return pd.DataFrame(rows, columns=["model", "layer", "depth", "cka"])


def read_results(run_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(accuracy_by_quality, mixing_weights)`` tables a QSAM run wrote."""
    from workbench.methods.qsam.train import ACCURACY_FILE, WEIGHTS_FILE

    run_dir = Path(run_dir)
    return pd.read_csv(run_dir / ACCURACY_FILE), pd.read_csv(run_dir / WEIGHTS_FILE)
