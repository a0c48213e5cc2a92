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
- :func:`scores_by_condition`: each target condition's MADA scores (distance to the nearest
  source anchor) and how many images each strategy picked from it (why MADA's budget goes to
  one condition on the tiny task).
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


def warm_up_descriptors(run_dir: str | os.PathLike) -> tuple[object, object, dict, pd.DataFrame]:
    """``(config, domains, extra, selection)`` of a run: its config and domains, what
    :func:`.train.select_all` computes from its warm-up (``source_only``) network (``anchors``,
    ``source`` and ``target`` descriptors with their masks), and its selection table."""
    from workbench.methods.mada.data import load_domains
    from workbench.methods.mada.train import select_all
    from workbench.training import read_card
    from workbench.training.evaluation import load_run_config, load_run_network

    config = load_run_config(run_dir, read_card(run_dir))
    domains = load_domains(config)
    _, warm = load_run_network(Path(run_dir) / "snapshots" / "source_only")
    _, _, extra = select_all(config, warm.module, domains, [])
    return config, domains, extra, pd.read_csv(Path(run_dir) / SELECTION_FILE)


def scores_by_condition(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Per target condition of a generated-scene run: its pool share, its MADA scores, each strategy's picks.

    The MADA score of a target-pool image is its descriptor's distance to the nearest source
    anchor of the warm-up network (:func:`.anchors.selection_scores`), recomputed from the run's
    files; the picks are counted in ``selection.csv``.

    Returns
    -------
    DataFrame
        One row per condition (``TARGET_CONDITIONS`` order): ``condition``, ``images`` (in the
        pool), ``pool_share``, ``mean_score``, ``median_score``, ``top_share`` (its share of the
        pool's ``budget`` highest scores), and ``selected_<strategy>`` (images each strategy picked).
    """
    from workbench.methods.mada.anchors import budget_count, selection_scores
    from workbench.methods.mada.data import TARGET_CONDITIONS

    config, domains, extra, selection = warm_up_descriptors(run_dir)
    conditions = np.asarray(domains.target_conditions)
    if (conditions < 0).all():
        raise ValidationError(f"scores_by_condition needs generated scenes (target conditions); {run_dir} has none")
    scores = selection_scores("mada", *extra["target"], source_anchors=extra["anchors"]["source"])
    top = np.argsort(-scores, kind="stable")[:budget_count(len(scores), config.budget)]
    rows = []
    for index, (style, _) in enumerate(TARGET_CONDITIONS):
        mask = conditions == index
        own = scores[mask] if mask.any() else np.full(1, np.nan)
        row = {"condition": style.name, "images": int(mask.sum()), "pool_share": float(mask.mean()),
               "mean_score": float(own.mean()), "median_score": float(np.median(own)),
               "top_share": float((conditions[top] == index).mean())}
        for strategy, picks in selection.groupby("strategy", sort=False):
            row[f"selected_{strategy}"] = int((picks.condition == index).sum())
        rows.append(row)
    return pd.DataFrame(rows)


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

    _, domains, extra, selection = warm_up_descriptors(run_dir)
    strategies = list(dict.fromkeys(selection.strategy))
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
