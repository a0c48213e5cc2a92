"""The class-separation analysis that motivates SAVC: RSA against a category model, by pair type.

For embeddings of test images of base and novel classes, the model RDM is the correlation
distance :func:`workbench.metrics.rsa.rdm` and the category model is 0 for two images of the
same class, 1 otherwise. The RSA value of a set of image pairs is Spearman's rho (average ranks,
:func:`workbench.metrics.rsa.spearman`) between the two over those pairs:

- ``base_base``: pairs of two base images (same or different base class);
- ``novel_novel``: pairs of two novel images;
- ``base_novel``: every pair of one base and one novel image, *plus* every same-class pair
  (base or novel) -- the category model is constant (1) on base-novel pairs alone, so this
  measures whether base-novel pairs lie farther apart than images of one class do.

Higher is better separated.
"""

from __future__ import annotations

import numpy as np

from workbench.errors import ValidationError


def separation_rsa(embeddings, labels, num_base: int) -> dict[str, float]:
    """RSA between an embedding RDM and the category model, for the three pair types.

    Parameters
    ----------
    embeddings : array-like, shape (n_images, d)
    labels : array-like of int, shape (n_images,)
        Renumbered classes: ``< num_base`` are base classes, the others novel.
    num_base : int

    Returns
    -------
    dict
        ``base_base``, ``novel_novel``, ``base_novel``: Spearman's rho (NaN when a pair set has
        a constant category model, e.g. a single class).
    """
    from workbench.metrics.rsa import rdm, spearman

    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or len(x) != len(y):
        raise ValidationError(f"embeddings must be (n, d) and labels (n,); found {x.shape} and {y.shape}")
    model = rdm(x)
    category = (y[:, None] != y[None, :]).astype(np.float64)
    base = y < num_base
    upper = np.triu(np.ones_like(category, dtype=bool), k=1)
    same = category == 0
    sets = {"base_base": base[:, None] & base[None, :],
            "novel_novel": ~base[:, None] & ~base[None, :],
            "base_novel": (base[:, None] != base[None, :]) | same}
    return {name: spearman(model[upper & mask], category[upper & mask]) for name, mask in sets.items()}


def embed_test_images(run_dir, *, batch_size: int = 256):
    """Penultimate-layer embeddings of every test image of a finished SAVC run (or baseline snapshot).

    Returns
    -------
    embeddings : ndarray, shape (n_test, d)
        ``embedding`` layer output of the identity view (the analysed layer).
    labels : ndarray of int, shape (n_test,)
        Classes renumbered in session order (``< num_base``: base classes).
    num_base : int
    """
    from pathlib import Path

    import torch
    from torch.utils.data import DataLoader

    from workbench.methods.savc import fscil
    from workbench.methods.savc.train import run_data_and_split
    from workbench.training.evaluation import load_run_network

    run_dir = Path(run_dir)
    card, network = load_run_network(run_dir)
    data, split = run_data_and_split(run_dir, card)
    test = fscil.session_test_set(data.test, split, split.num_sessions)
    feats, labels = [], []
    with torch.no_grad():
        for images, y in DataLoader(test, batch_size=batch_size, shuffle=False):
            feats.append(network.module.features(images).numpy())
            labels.append(np.asarray(y))
    return np.concatenate(feats), np.concatenate(labels), split.num_base


