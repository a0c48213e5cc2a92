"""``workbench train M --preset P --smoke``: every phase of a preset for 2 steps, on CPU, on generated files.

A smoke run checks that a recipe runs end to end before it is given a GPU budget: the preset's
architecture, input resolution, phases, baselines and losses stay as they are, and only how
long and where it runs changes (:func:`smoke_values`):

- ``max_steps`` = :data:`SMOKE_STEPS`: every :func:`~workbench.training.fit` (each phase,
  each baseline) stops after 2 optimiser steps and evaluates the epoch it cut short;
- ``device`` cpu, ``num_workers`` 0, ``amp`` off, ``log_every`` 1, ``checkpoint_every`` 0;
- every batch size (``batch_size`` and each ``*_batch_size`` field) :data:`SMOKE_BATCH`;
- ``limit_test`` :data:`SMOKE_TEST_ITEMS` (unless ``--set``; image classification data): each
  evaluation sees a few test images (Large-UniDet holds out one image per dataset instead);
- a field the preset leaves unset (``None``) that the method needs gets the config class's
  default (LATS's ``D``);
- ``arch_kwargs`` that ask for pretrained weights (``pretrained_backbone``, any ``pretrained*``)
  are set false, and a ``*_weights`` field set to ``imagenet`` (SAVC's ``backbone_weights``)
  is unset: nothing is downloaded, the architecture is the same, its weights random.
- a config class's ``SMOKE_VALUES`` (a class attribute) last: what its method needs to fit a
  CPU beyond the above (MADA: one image per adaptation stream, no baselines).

The data are written by :mod:`workbench.data.training.smoke` into a temporary folder, in the
real dataset's on-disk format, and the config's paths point there (:func:`write_smoke_data`).
``--set`` overrides apply after the smoke values (``--set batch_size=4`` wins).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from workbench.errors import ValidationError

#: Optimiser steps of every fit (phase) of a smoke run.
SMOKE_STEPS = 2
#: Every batch size of a smoke run (2: BatchNorm in training mode needs more than one sample).
SMOKE_BATCH = 2
#: Test images each evaluation of the shared loop sees.
SMOKE_TEST_ITEMS = 4
#: Execution fields a smoke run fixes.
SMOKE_FIXED = {"device": "cpu", "num_workers": 0, "amp": "off", "log_every": 1, "checkpoint_every": 0,
               "max_steps": SMOKE_STEPS}


def smoke_values(cls, values: dict[str, Any]) -> dict[str, Any]:
    """Preset ``values`` (a mapping of ``cls``'s fields) with the smoke run's settings."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {**values, **SMOKE_FIXED}
    for name in fields:
        if name == "batch_size" or name.endswith("_batch_size"):
            out[name] = SMOKE_BATCH
    for name, value in values.items():
        default = fields[name].default
        if value is None and default is not dataclasses.MISSING and default is not None:
            out[name] = default
    for name, value in values.items():
        if name.endswith("_weights") and value == "imagenet":
            out[name] = None
    if out.get("arch_kwargs"):
        out["arch_kwargs"] = {k: False if k.startswith("pretrained") else v for k, v in out["arch_kwargs"].items()}
    return {**out, **getattr(cls, "SMOKE_VALUES", {})}


def write_smoke_data(config, folder: str | os.PathLike) -> dict[str, Any]:
    """Generate ``config.dataset`` in its on-disk format under ``folder``; the config fields pointing there.

    Returns
    -------
    dict
        ``{"data_root": ...}``, and ``split_dir`` when the config reads a few-shot split
        (SAVC's ``split_dir``); ``source_root`` and ``target_root`` for MADA's GTA5 -> Cityscapes;
        ``sources`` and ``label_map`` for Large-UniDet's COCO + OpenImages + Vistas.

    Raises
    ------
    ValidationError
        The dataset has no smoke generator (the message lists those that have one).
    """
    from workbench.data.training import smoke

    folder = Path(folder)

    def classification(root: Path) -> dict[str, Any]:
        values = {"data_root": str(root), "limit_test": config.limit_test or SMOKE_TEST_ITEMS}
        if getattr(config, "split_dir", None):  # SAVC's few-shot sessions over the generated training split
            values["split_dir"] = str(_write_split(config.dataset, str(root), folder / "split"))
        return values

    def gta5_cityscapes() -> dict[str, Any]:  # MADA: a source and a target folder
        # the fewest images that run every phase: one source batch, a target pool of 2 (1 selected at
        # any budget, 1 left for stage 2's pseudo-labels), 1 test image
        source, target = smoke.write_gta5_cityscapes(folder, source=SMOKE_BATCH, target=2, val=1)
        return {"source_root": str(source), "target_root": str(target)}

    def detection() -> dict[str, Any]:  # Large-UniDet: annotation files and a label map
        sources, label_map = smoke.write_detection_sources(folder)
        return {"sources": sources, "label_map": str(label_map)}

    writers = {
        "imagenet": lambda: classification(smoke.write_imagenet(folder)),
        "cifar10": lambda: classification(smoke.write_cifar(folder, "cifar10", train_per_class=2)),
        "cifar100": lambda: classification(smoke.write_cifar(folder, "cifar100", train_per_class=2)),
        # SAVC's session evaluation sees every test image of the seen classes: one test image per 10 classes
        "cub200": lambda: classification(smoke.write_cub200(
            folder, test_every=10 if getattr(config, "split_dir", None) else 1)),
        "gta5_cityscapes": gta5_cityscapes,
        "coco+openimages+vistas": detection,
    }
    if config.dataset not in writers:
        raise ValidationError(f"--smoke: no generator of the dataset {config.dataset!r} (config field 'dataset'); "
                              f"--smoke can generate {sorted(writers)}")
    return writers[config.dataset]()


def _write_split(dataset: str, root: str, folder: Path) -> Path:
    from workbench.data.training import load_training_data
    from workbench.data.training.smoke import write_fscil_split

    train = load_training_data(dataset, root=root, augment=False).train
    return write_fscil_split(folder, dataset, train.targets, getattr(train, "paths", None))
