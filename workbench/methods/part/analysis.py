"""PART's analyses: part hit rate on the generated motifs, part pictures, layer-wise RSA against a category model.

- :func:`hit_rate`: the parts discovered at test time (``tau = 0.5``, from the backbone alone, so
  any ``part_net`` -- PART's or the baseline's -- can be asked) as pixel boxes; an image is a
  *hit* when the centre of its motif box lies inside one of its part boxes. *Chance* is the
  same rate with every image's part boxes compared with the motif box of another test image
  (each of ``shifts`` cyclic shifts of the test set, averaged): motif positions are drawn
  independently of the image, so this is the hit rate of boxes of the same sizes and places
  that know nothing of where the motif is.
- :func:`layer_rsa`: for each analysis layer of the global branch, the test images' pooled
  activations (mean over positions for conv maps (N, C, h, w) and token maps (N, L, d); the
  ``neck`` embedding as is), their correlation-distance RDM (:func:`workbench.metrics.rsa.rdm`)
  and Spearman's rho (:func:`workbench.metrics.rsa.spearman_upper`) with the category model
  RDM (0 for two images of one class, 1 otherwise).
- :func:`plot_parts`: test images with their part boxes (solid) and the motif box (dashed).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from workbench.activations.hooks import hooked
from workbench.errors import ValidationError


@torch.no_grad()
def part_boxes(module, images: torch.Tensor, *, tau: float = 0.5, parts: int = 4) -> np.ndarray:
    """Discovered part boxes (N, P, 4) in *pixels* (half-open ``x1, y1, x2, y2``) of images (N, 3, H, W)."""
    was = module.training
    module.eval()
    try:
        selection = module.discover(images, tau=tau, parts=parts)
    finally:
        module.train(was)
    h, w = selection.masks.shape[-2:]
    scale = np.array([images.shape[-1] / w, images.shape[-2] / h] * 2)
    return selection.boxes.numpy().astype(np.float64) * scale


def covers(boxes: np.ndarray, motif_boxes: np.ndarray) -> np.ndarray:
    """(N, P) bool: whether each part box (N, P, 4) contains the centre of the image's motif box (N, 4)."""
    cx = (motif_boxes[:, 0] + motif_boxes[:, 2]) / 2.0
    cy = (motif_boxes[:, 1] + motif_boxes[:, 3]) / 2.0
    return ((boxes[..., 0] <= cx[:, None]) & (cx[:, None] < boxes[..., 2])
            & (boxes[..., 1] <= cy[:, None]) & (cy[:, None] < boxes[..., 3]))


def hit_rate(module, dataset, *, tau: float = 0.5, parts: int = 4, limit: int | None = None, shifts: int = 5,
             batch_size: int = 256) -> dict[str, float]:
    """Part hit rate on a dataset with ``motif_boxes`` (see the module docstring).

    Returns
    -------
    dict
        ``hit_rate`` (fraction of images with a part covering the motif), ``chance`` (the same
        with mismatched motif boxes), ``part_hit_rate`` (fraction of parts covering it),
        ``mean_box_area`` (fraction of the image), ``images``.
    """
    motif = getattr(dataset, "motif_boxes", None)
    if motif is None or np.ndim(motif) != 2:
        raise ValidationError("hit_rate needs a dataset with motif_boxes (the generated fg_motifs task)")
    n = len(dataset) if not limit else min(int(limit), len(dataset))
    if n < 2:
        raise ValidationError(f"hit_rate needs at least 2 images, found {n}")
    boxes, size = [], None
    for start in range(0, n, batch_size):
        images = torch.stack([dataset[i][0] for i in range(start, min(n, start + batch_size))])
        size = images.shape[-1] * images.shape[-2]
        boxes.append(part_boxes(module, images, tau=tau, parts=parts))
    boxes = np.concatenate(boxes)
    motif = np.asarray(motif)[:n].astype(np.float64)
    hits = covers(boxes, motif)
    chance = np.mean([covers(boxes, np.roll(motif, s, axis=0)).any(1).mean() for s in range(1, shifts + 1)])
    area = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])).mean() / size
    return {"hit_rate": float(hits.any(1).mean()), "chance": float(chance), "part_hit_rate": float(hits.mean()),
            "mean_box_area": float(area), "images": int(n)}


def _pooled(output: torch.Tensor) -> torch.Tensor:
    if output.dim() == 4:
        return output.mean((2, 3))
    if output.dim() == 3:
        return output.mean(1)
    return output.flatten(1)


@torch.no_grad()
def layer_embeddings(module, layers: Sequence[str], dataset, *, limit: int | None = None,
                     batch_size: int = 256) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Pooled activations ``{layer: (N, features)}`` of the first ``limit`` items, and their labels."""
    n = len(dataset) if not limit else min(int(limit), len(dataset))
    outputs: dict[str, list] = {name: [] for name in layers}
    labels = []
    was = module.training
    module.eval()
    try:
        with hooked(module, layers, lambda name, out: outputs[name].append(_pooled(out).double().numpy())):
            for start in range(0, n, batch_size):
                items = [dataset[i] for i in range(start, min(n, start + batch_size))]
                module(torch.stack([x for x, _ in items]))
                labels.extend(int(y) for _, y in items)
    finally:
        module.train(was)
    return {name: np.concatenate(v) for name, v in outputs.items()}, np.asarray(labels)


def category_rsa(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """Spearman's rho between the correlation-distance RDM of ``embeddings`` (N, d) and the category model."""
    from workbench.metrics.rsa import rdm, spearman_upper

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        raise ValidationError("category_rsa needs images of at least 2 classes")
    category = (labels[:, None] != labels[None, :]).astype(np.float64)
    return spearman_upper(rdm(np.asarray(embeddings, dtype=np.float64)), category, names=("model RDM", "category RDM"))


def layer_rsa(run_dirs: dict[str, str | os.PathLike], *, limit: int | None = 400) -> pd.DataFrame:
    """RSA with the category model of every analysis layer of each run (``{label: run_dir}``).

    Returns
    -------
    DataFrame
        Columns ``network, layer, depth, rsa``, one row per network and declared layer.
    """
    from workbench.methods.part.train import load_run

    rows = []
    for label, folder in run_dirs.items():
        card, network, data, _ = load_run(folder)
        feats, labels = layer_embeddings(network.module, card["layers"], data.test, limit=limit)
        for depth, layer in enumerate(card["layers"]):
            rows.append({"network": label, "layer": layer, "depth": depth, "rsa": category_rsa(feats[layer], labels)})
    return pd.DataFrame(rows)


def plot_parts(module, dataset, indices: Sequence[int], *, tau: float = 0.5, parts: int = 4, mean=(0.5,) * 3,
               std=(0.5,) * 3, title: str = "", axes=None):
    """Draw test images with their discovered part boxes (solid) and motif boxes (dashed, when known)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    images = torch.stack([dataset[i][0] for i in indices])
    boxes = part_boxes(module, images, tau=tau, parts=parts)
    motif = getattr(dataset, "motif_boxes", None)
    if axes is None:
        _, axes = plt.subplots(1, len(indices), figsize=(1.8 * len(indices), 2.1))
    axes = np.atleast_1d(axes)
    colours = plt.get_cmap("tab10")
    m = torch.tensor(mean)[:, None, None]
    s = torch.tensor(std)[:, None, None]
    for ax, image, b, idx in zip(axes, images, boxes, indices):
        ax.imshow((image * s + m).clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
        for p, (x1, y1, x2, y2) in enumerate(b):
            ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, lw=1.5, color=colours(p)))
        if motif is not None:
            x1, y1, x2, y2 = motif[idx]
            ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, lw=1.2, ls="--", color="white"))
        ax.set_xticks([]); ax.set_yticks([])
    if title:
        axes[0].set_ylabel(title)
    return axes
