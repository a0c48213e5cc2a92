"""The :class:`TrainingData` record, the dataset registry and the dispatching loader."""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.data.fetch import cache_dir
from workbench.errors import ValidationError
from workbench.models.preprocessing import Preprocessing

log = logging.getLogger(__name__)

#: Sub-folder of the data cache (``$WORKBENCH_DATA``) that holds the training datasets.
TRAINING_SUBDIR = "training"


@dataclass(frozen=True)
class TrainingData:
    """A labelled image-classification dataset ready for a training loop.

    Parameters
    ----------
    name : str
        The dataset's name, one of :func:`list_training_datasets`.
    train : torch.utils.data.Dataset
        Training split. Item ``i`` is ``(image, label)``: ``image`` a float32 tensor of shape
        (3, H, W), already normalised with ``preprocessing.mean``/``std``, augmented afresh at
        every access when the data was loaded with ``augment=True``; ``label`` a Python int in
        ``[0, num_classes)``. Its ``targets`` attribute lists every item's label.
    test : torch.utils.data.Dataset
        Held-out split, same items, never augmented (deterministic).
    num_classes : int
        Number of classes.
    classes : tuple of str
        Class names, indexed by label.
    preprocessing : Preprocessing
        Input size (H = W) and the RGB mean/std the images were normalised with: the
        preprocessing a network trained on this data declares in the model zoo.
    fingerprint : str
        sha256 hex digest identifying the data content and the split (see the package
        docstring for what each dataset hashes). Independent of ``augment`` and of any seed.
    description : str
        One line: source, split sizes, augmentation.
    """

    name: str
    train: torch.utils.data.Dataset
    test: torch.utils.data.Dataset
    num_classes: int
    classes: tuple[str, ...]
    preprocessing: Preprocessing
    fingerprint: str
    description: str


def _load_digits(root, augment, download):
    from workbench.data.training.digits import load_digits32

    return load_digits32(augment=augment)


def _load_cifar10(root, augment, download):
    from workbench.data.training.cifar import load_cifar

    return load_cifar("cifar10", root=root, augment=augment, download=download)


def _load_cifar100(root, augment, download):
    from workbench.data.training.cifar import load_cifar

    return load_cifar("cifar100", root=root, augment=augment, download=download)


def _load_imagenet(root, augment, download):
    from workbench.data.training.imagenet import load_imagenet

    return load_imagenet(root=root, augment=augment, download=download)


_LOADERS = {
    "cifar10": _load_cifar10,
    "cifar100": _load_cifar100,
    "digits32": _load_digits,
    "imagenet": _load_imagenet,
}


def list_training_datasets() -> list[str]:
    """Names accepted by :func:`load_training_data`, sorted.

    Examples
    --------
    >>> list_training_datasets()
    ['cifar10', 'cifar100', 'digits32', 'imagenet']
    """
    return sorted(_LOADERS)


def default_root(name: str) -> Path:
    """Where dataset ``name`` is looked for when no ``root`` is given.

    ``<cache>/training/<name>``, with ``<cache>`` the data cache of
    :func:`workbench.data.fetch.cache_dir` (``$WORKBENCH_DATA`` when set).
    """
    return cache_dir() / TRAINING_SUBDIR / name


def load_training_data(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    augment: bool = True,
    download: bool = False,
) -> TrainingData:
    """Load a training dataset with its fixed train/test split.

    Parameters
    ----------
    name : {"cifar10", "cifar100", "digits32", "imagenet"}
        The dataset (see the :mod:`workbench.data.training` docstring for sources, splits,
        on-disk layouts and normalisation).
    root : path-like, optional
        Folder holding the dataset files. Defaults to ``$WORKBENCH_DATA/training/<name>``
        (:func:`default_root`). Ignored by ``"digits32"``, which ships with scikit-learn.
    augment : bool, default: True
        Apply the dataset's random training augmentation to ``train`` items. All randomness
        comes from torch's global RNG of the process calling ``__getitem__``, so restoring
        ``torch.set_rng_state`` reproduces the stream. ``test`` is never augmented.
    download : bool, default: False
        CIFAR only: download the official archive into ``root`` when files are missing.
        Never needed (and ignored) for ``"digits32"``; ImageNet cannot be downloaded.

    Returns
    -------
    TrainingData

    Raises
    ------
    ValidationError
        Unknown ``name`` (the message lists the valid names and suggests the closest).
    DataError
        Files missing, truncated or not in the expected layout; the message names the file or
        folder and the expected layout.
    """
    if name not in _LOADERS:
        close = difflib.get_close_matches(str(name), list(_LOADERS), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValidationError(
            f"unknown training dataset {name!r} (valid names: "
            f"{', '.join(list_training_datasets())}){hint}"
        )
    data = _LOADERS[name](root, bool(augment), bool(download))
    log.info("loaded training data %s: %s", name, data.description)
    return data
