"""Representation analysis of a MADA run: the domain shift layer by layer, the anchors in 2-D, predictions.

- :func:`domain_shift_cka`: the same generated scenes drawn in the source style and in the
  target style (each in its random target condition) go through a network; every analysis
  layer's activations of the two versions are compared with linear CKA
  (:func:`workbench.metrics.cka.cka`). The paper argues that adaptation must undo the
  distortion of the target distribution: a higher CKA after adaptation is a representation that
  treats the two renderings of a scene more alike.
- :func:`descriptor_embedding`: the warm-up model's source and target descriptors, the source
  anchors and each strategy's selected images in a 2-D PCA of the flattened descriptors (absent
  classes filled with their class mean, as for k-means).
- :func:`example_predictions`: target test images, their labels and the predictions of the
  source-only and adapted networks.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from workbench.activations.hooks import layer_outputs
from workbench.errors import ValidationError
from workbench.methods.mada.train import MIOU_FILE, SELECTION_FILE, SUMMARY_FILE


def run_models(run_dir: str | os.PathLike) -> dict[str, tuple[dict, object]]:
    """``{name: (card, Network)}`` of a MADA run (under its selection's name) and its snapshots."""
    from workbench.training import list_snapshots, read_card
    from workbench.training.evaluation import load_run_network

    card = read_card(run_dir)
    models = {card["mada"]["selection"]: load_run_network(run_dir)}
    for snapshot in list_snapshots(run_dir):
        models[snapshot.name] = load_run_network(snapshot)
    return models


def read_results(run_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(summary, per_class, selection)`` tables a run wrote (see :mod:`.train`)."""
    run_dir = Path(run_dir)
    return (pd.read_csv(run_dir / SUMMARY_FILE), pd.read_csv(run_dir / MIOU_FILE),
            pd.read_csv(run_dir / SELECTION_FILE))


def paired_scenes(config, n_images: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The first ``n_images`` target-test layouts drawn in the source style and in the target style.

    Returns normalised images (N, 3, S, S) of each rendering and the target condition of each.
    """
    from workbench.methods.mada.data import generate_scenes

    size = int(config.image_size[0])
    src, _, _ = generate_scenes(config.scene_seed, "target_test", n_images, size, style="source")
    tgt, _, cond = generate_scenes(config.scene_seed, "target_test", n_images, size)
    return torch.from_numpy((src - 0.5) / 0.5), torch.from_numpy((tgt - 0.5) / 0.5), cond


def domain_shift_cka(run_dir: str | os.PathLike, *, n_images: int = 100, models=None) -> pd.DataFrame:
    """Per-layer linear CKA between the source- and target-style activations of the same scenes.

    Returns
    -------
    DataFrame
        ``model, depth, layer, cka`` for every network of the run (or those named in ``models``).
    """
    from workbench.training.evaluation import load_run_config
    from workbench.metrics.cka import cka
    from workbench.training import read_card

    card = read_card(run_dir)
    config = load_run_config(run_dir, card)
    if config.dataset != "scenes":
        raise ValidationError("domain_shift_cka draws paired renderings of generated scenes; "
                              f"the run's dataset is {config.dataset!r}")
    source, target, _ = paired_scenes(config, n_images)
    rows = []
    for name, (_, network) in run_models(run_dir).items():
        if models is not None and name not in models:
            continue
        a = layer_outputs(network.module, network.layers, source)
        b = layer_outputs(network.module, network.layers, target)
        for depth, layer in enumerate(network.layers):
            rows.append((name, depth, layer, float(cka(a[layer], b[layer]))))
    return pd.DataFrame(rows, columns=["model", "depth", "layer", "cka"])


def descriptor_embedding(run_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """2-D PCA of the warm-up model's descriptors, with the source anchors and the selections.

    Returns
    -------
    points : DataFrame
        ``domain`` (source / target), ``index``, ``x``, ``y``, ``condition`` and one boolean
        column per strategy (selected or not).
    anchors : DataFrame
        ``kind`` (source / centroid / target), ``x``, ``y`` of each anchor.
    """
    from sklearn.decomposition import PCA

    from workbench.methods.mada.anchors import fill_absent
    from workbench.methods.mada.data import load_domains
    from workbench.methods.mada.train import select_all
    from workbench.training.evaluation import load_run_config
    from workbench.training import read_card

    card = read_card(run_dir)
    config = load_run_config(run_dir, card)
    domains = load_domains(config)
    warm = run_models(run_dir)["source_only"][1]
    selection = pd.read_csv(Path(run_dir) / SELECTION_FILE)
    strategies = list(dict.fromkeys(selection.strategy))
    _, _, extra = select_all(config, warm.module, domains, [])
    (src, src_p), (tgt, tgt_p) = extra["source"], extra["target"]
    both = fill_absent(np.concatenate([src, tgt]), np.concatenate([src_p, tgt_p]))
    flat = both.reshape(len(both), -1)
    pca = PCA(n_components=2, random_state=0).fit(flat)
    xy = pca.transform(flat)
    points = pd.DataFrame({"domain": ["source"] * len(src) + ["target"] * len(tgt),
                           "index": list(range(len(src))) + list(range(len(tgt))),
                           "x": xy[:, 0], "y": xy[:, 1],
                           "condition": [-1] * len(src) + list(domains.target_conditions)})
    for strategy in strategies:
        chosen = set(selection[selection.strategy == strategy]["index"])
        points[strategy] = (points.domain == "target") & points["index"].isin(chosen)
    rows = []
    for kind, anchors in extra["anchors"].items():
        centres = pca.transform(anchors.centers.reshape(len(anchors), -1).astype(np.float64))
        rows += [(kind, float(x), float(y)) for x, y in centres]
    return points, pd.DataFrame(rows, columns=["kind", "x", "y"])


@torch.no_grad()
def example_predictions(run_dir: str | os.PathLike, *, n_images: int = 4, models=("source_only",)
                        ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(images (N, H, W, 3) in [0, 1], labels (N, H, W), {model: predictions (N, H, W)})``.

    The first ``n_images`` target test images; ``models`` plus the run's own model.
    """
    from workbench.methods.mada.data import load_domains
    from workbench.training.evaluation import load_run_config
    from workbench.training import read_card

    card = read_card(run_dir)
    config = load_run_config(run_dir, card)
    domains = load_domains(config)
    items = [domains.test[i] for i in range(min(n_images, len(domains.test)))]
    images = torch.stack([x for x, _ in items])
    labels = torch.stack([y for _, y in items]).numpy()
    mean = torch.tensor(domains.preprocessing.mean)[:, None, None]
    std = torch.tensor(domains.preprocessing.std)[:, None, None]
    shown = (images * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    networks = run_models(run_dir)
    wanted = [*models, card["mada"]["selection"]]
    predictions = {}
    for name in dict.fromkeys(wanted):
        if name in networks:
            module = networks[name][1].module.eval()
            predictions[name] = module(images).argmax(1).numpy()
    return shown, labels, predictions


@torch.no_grad()
def miou_by_condition(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Target-test mIoU of every network of a generated-scene run, per target condition.

    Returns
    -------
    DataFrame
        ``model, condition, images, miou``; condition ``all`` is the whole test set.
    """
    from workbench.methods.mada.data import TARGET_CONDITIONS, generate_scenes
    from workbench.methods.mada.metrics import confusion_matrix, mean_iou
    from workbench.training.evaluation import load_run_config
    from workbench.training import read_card

    card = read_card(run_dir)
    config = load_run_config(run_dir, card)
    if config.dataset != "scenes":
        raise ValidationError(f"miou_by_condition needs generated scenes; the run's dataset is {config.dataset!r}")
    images, labels, conditions = generate_scenes(config.scene_seed, "target_test", config.test_images,
                                                 int(config.image_size[0]))
    x = torch.from_numpy((images - 0.5) / 0.5)
    y = torch.from_numpy(labels.astype(np.int64))
    num_classes = len(card["mada"]["classes"])
    rows = []
    for name, (_, network) in run_models(run_dir).items():
        pred = network.module.eval()(x).argmax(1)
        groups = [("all", np.ones(len(y), bool))] + [(s.name, conditions == i) for i, (s, _) in
                                                     enumerate(TARGET_CONDITIONS)]
        for condition, mask in groups:
            if mask.any():
                cm = confusion_matrix(pred[torch.from_numpy(mask)], y[torch.from_numpy(mask)], num_classes)
                rows.append((name, condition, int(mask.sum()), mean_iou(cm)))
    return pd.DataFrame(rows, columns=["model", "condition", "images", "miou"])
