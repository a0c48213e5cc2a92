"""The :class:`TrainingData` record, the dataset registry and the dispatching loader."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.data.fetch import cache_dir
from workbench.errors import ValidationError
from workbench.models.preprocessing import Preprocessing
from workbench.validation import did_you_mean

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


#: Every training dataset the package and the methods use: name -> ``"module:function"`` of its
#: loader, imported on first use. A loader takes the keyword arguments ``root``, ``augment`` and
#: ``download`` where it has them, plus its own keyword options (an image size, a generator's
#: seed and sizes); the generated sets of a method live in that method's package.
_LOADERS = {
    "cifar10": "workbench.data.training.cifar:load_cifar10",
    "cifar100": "workbench.data.training.cifar:load_cifar100",
    "cub200": "workbench.data.training.cub200:load_cub200",
    "digits32": "workbench.data.training.digits:load_digits32",
    "fg_motifs": "workbench.methods.part.data:load_motif_task",
    "fgvc_aircraft": "workbench.data.training.fine_grained:load_fgvc_aircraft",
    "imagenet": "workbench.data.training.imagenet:load_imagenet",
    "mada_scenes": "workbench.methods.mada.data:load_scenes",
    "mini_imagenet": "workbench.data.training.mini_imagenet:load_mini_imagenet",
    "stanford_cars": "workbench.data.training.fine_grained:load_stanford_cars",
}
_COMMON = ("root", "augment", "download")


def list_training_datasets() -> list[str]:
    """Names accepted by :func:`load_training_data`, sorted.

    Examples
    --------
    >>> list_training_datasets()  # doctest: +NORMALIZE_WHITESPACE
    ['cifar10', 'cifar100', 'cub200', 'digits32', 'fg_motifs', 'fgvc_aircraft', 'imagenet',
     'mada_scenes', 'mini_imagenet', 'stanford_cars']
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
    **options,
) -> TrainingData:
    """Load a training dataset with its fixed train/test split.

    Parameters
    ----------
    name : str
        One of :func:`list_training_datasets` (see the :mod:`workbench.data.training` docstring
        for sources, splits, on-disk layouts, normalisation and each dataset's options).
    root : path-like, optional
        Folder holding the dataset files. Defaults to ``$WORKBENCH_DATA/training/<name>``
        (:func:`default_root`). Ignored by the generated datasets and ``"digits32"``, which
        ships with scikit-learn.
    augment : bool, default: True
        Apply the dataset's random training augmentation to ``train`` items. All randomness
        comes from torch's global RNG of the process calling ``__getitem__``, so restoring
        ``torch.set_rng_state`` reproduces the stream. ``test`` is never augmented.
    download : bool, default: False
        CIFAR only: download the official archive into ``root`` when files are missing.
        Ignored by the other datasets.
    **options
        The dataset's own keyword options, e.g. ``size`` of ``"cub200"`` or ``seed`` of
        ``"fg_motifs"`` (the loader's keyword parameters).

    Returns
    -------
    TrainingData
        Or, for the segmentation domains ``"mada_scenes"``, MADA's ``DomainData`` with the
        same fields (name, train, test, preprocessing, fingerprint, description) and more.

    Raises
    ------
    ValidationError
        Unknown ``name`` (the message lists the valid names and suggests the closest), or an
        option the dataset does not take (the message lists those it takes).
    DataError
        Files missing, truncated or not in the expected layout; the message names the file or
        folder and the expected layout.
    """
    if name not in _LOADERS:
        raise ValidationError(
            f"unknown training dataset {name!r}{did_you_mean(name, _LOADERS)} (valid names: "
            f"{', '.join(list_training_datasets())})"
        )
    module, function = _LOADERS[name].split(":")
    loader = getattr(importlib.import_module(module), function)
    accepted = inspect.signature(loader).parameters
    unknown = sorted(set(options) - set(accepted) - set(_COMMON))
    if unknown:
        takes = sorted(set(accepted) - set(_COMMON))
        raise ValidationError(f"training dataset {name!r} takes no option(s) {unknown}; its options: {takes}")
    if download and "download" not in accepted:
        raise ValidationError(f"training dataset {name!r} cannot be downloaded (download=True); place its "
                              f"files under root (default {default_root(name)}) as its loader's docstring says")
    common = {"root": root, "augment": bool(augment), "download": bool(download)}
    data = loader(**{k: v for k, v in common.items() if k in accepted}, **options)
    log.info("loaded training data %s: %s", name, data.description)
    return data
