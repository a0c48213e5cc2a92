"""Training configs: one frozen dataclass per method, YAML presets beside it, strict overrides.

A method's config class extends :class:`TrainConfig`. A preset (``presets/<name>.yaml`` in the
method's package) holds field values; ``--set key=value`` overrides are parsed to each field's
declared type, strictly (``epochs=abc`` and ``augment=maybe`` are errors, not guesses). The
resolved config is written to ``config.yaml`` and its :func:`config_hash` goes into the model
card, so a run's weights are tied to the exact settings that produced them.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

from workbench.config import Config
from workbench.errors import ValidationError

#: Fields that say where or how fast a run executes, not what it computes: they may differ
#: between a run and its ``--resume`` and are left out of the config hash.
EXECUTION_FIELDS = ("device", "num_workers", "log_every", "checkpoint_every")


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """Fields every method shares (a method's config class adds its own).

    Typed, checked and parsed as every :class:`workbench.config.Config`; its
    :attr:`~workbench.config.Config.fingerprint` (:func:`config_hash`) leaves out
    :data:`EXECUTION_FIELDS` and includes the class name.

    Parameters
    ----------
    arch : str
        Model-zoo architecture trained (``workbench models list``), e.g. ``"small_cnn"``.
    arch_kwargs : dict
        Extra keyword arguments of the architecture's factory (``num_classes`` comes from the
        data), e.g. ``{norm: group}`` for ``small_cnn``.
    dataset : str
        Training dataset (:func:`workbench.data.training.list_training_datasets`).
    data_root : str or None
        Folder of a dataset that is not shipped (CIFAR, ImageNet); ``None``: the default cache.
    augment : bool
        Random training augmentation of the dataset.
    epochs : int
        Passes over the training set.
    batch_size : int
        Global batch size (split evenly over the processes of a torchrun launch).
    optimizer : {"sgd", "adamw"}
    lr, momentum, weight_decay : float
        Peak learning rate, SGD momentum (AdamW beta1), decoupled/L2 weight decay.
    nesterov : bool
        Nesterov momentum (SGD only).
    scheduler : {"cosine", "constant", "multistep", "cyclic"}
        Learning-rate schedule over all steps, after ``warmup_epochs`` of linear warm-up; updated
        every step. ``multistep`` multiplies the lr by ``gamma`` at each epoch in ``milestones``;
        ``cyclic`` is mmcv's ``cyclic`` policy with its default ratios: ``cycles`` equal cycles of
        ``epochs x steps_per_epoch // cycles`` steps, the first 40 % of each a cosine from 1 to
        10 times ``lr``, the rest a cosine from 10 down to 1e-4 times ``lr``.
    milestones : tuple of int
        Epochs at which ``multistep`` decays the lr.
    gamma : float
        ``multistep``'s decay factor.
    cycles : int
        ``cyclic``'s number of cycles.
    cyclic_momentum : float
        With ``cyclic``: the momentum (SGD's, AdamW's beta1) times this at each cycle's lr peak,
        a cosine from 1 to it over the rise and back to 1 over the fall (mmcv's ``cyclic``
        momentum policy, ``target_ratio=(cyclic_momentum, 1)``); 1: constant momentum.
    warmup_epochs : int
        Linear warm-up over this many epochs (factor ``(step + 1) / W`` for the first ``W =
        warmup_epochs x steps_per_epoch`` steps), the schedule starting after it.
    warmup_steps : int
        Linear warm-up counted in optimiser steps, as mmcv's ``warmup="linear"``: for ``step <
        warmup_steps`` the schedule's factor times ``r + (1 - r) * step / warmup_steps`` with ``r =
        warmup_start_factor`` (the lr ``r x lr`` at step 0). Exclusive with ``warmup_epochs``.
    warmup_start_factor : float
        ``r`` above, in (0, 1] (mmcv's ``warmup_ratio``); used by ``warmup_steps`` only.
    label_smoothing : float
    grad_clip : float
        Clip the gradients' global L2 norm to this value before every optimiser step (0: no
        clipping).
    time_steps : int
        T of spiking networks (the image is repeated T times); ignored for other families.
    seed : int
        Seeds initialisation, data order, augmentation and dropout.
    device : {"cpu", "cuda"}
    amp : {"auto", "bf16", "off"}
        Mixed precision: ``auto`` = bf16 autocast on CUDA, off on CPU.
    num_workers : int
        DataLoader worker processes (0: load in the training process).
    log_every : int
        Steps between two training rows of ``metrics.csv`` (means over those steps).
    checkpoint_every : int
        Steps between checkpoints (0: at the end of every epoch only).
    limit_train, limit_test : int
        Use only the first N samples of a split (0: all); for micro configs and smoke tests.
    max_steps : int
        Stop every :func:`~workbench.training.fit` (each phase of a method) after this many
        optimiser steps, evaluating the epoch cut short (0: no limit); the learning-rate
        schedule stays that of ``epochs``. ``--smoke`` sets it to 2.
    sync_batchnorm : bool
        Under torchrun, synchronise BatchNorm statistics over the processes (SyncBatchNorm,
        CUDA only; spikingjelly's multi-step BatchNorm kept multi-step). Default False:
        per-process statistics, as most reference codes train (DDP without SyncBatchNorm).
    best_metric : str
        Name of a test metric of the method's evaluation (e.g. ``"acc"``) whose best epoch the
        loop keeps (``checkpoints/best.pt``) and reports beside the final epoch, as
        ``best_test_<metric>`` and ``best_epoch``, for papers that report their best epoch on
        the test set ("": the final epoch only). Higher is better.
    """

    arch: str = "small_cnn"
    arch_kwargs: dict = dataclasses.field(default_factory=dict)
    dataset: str = "digits32"
    data_root: str | None = None
    augment: bool = True
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    scheduler: str = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    cycles: int = 1
    cyclic_momentum: float = 1.0
    warmup_epochs: int = 0
    warmup_steps: int = 0
    warmup_start_factor: float = 0.001
    label_smoothing: float = 0.0
    grad_clip: float = 0.0
    time_steps: int = 4
    seed: int = 0
    device: str = "cpu"
    amp: str = "auto"
    num_workers: int = 0
    log_every: int = 10
    checkpoint_every: int = 0
    limit_train: int = 0
    limit_test: int = 0
    max_steps: int = 0
    sync_batchnorm: bool = False
    best_metric: str = ""

    #: Allowed values of string fields (a subclass extends this with its own).
    CHOICES: typing.ClassVar[dict[str, tuple[str, ...]]] = {
        "optimizer": ("sgd", "adamw"),
        "scheduler": ("cosine", "constant", "multistep", "cyclic"),
        "device": ("cpu", "cuda"),
        "amp": ("auto", "bf16", "off"),
    }

    def __post_init__(self):
        super().__post_init__()
        self.check_minimum(1, "epochs", "batch_size", "log_every", "time_steps", "cycles")
        self.check_minimum(0, "warmup_epochs", "warmup_steps", "grad_clip", "num_workers", "checkpoint_every",
                           "limit_train", "limit_test", "max_steps")
        if self.warmup_epochs and self.warmup_steps:
            raise ValidationError(f"{self.label('warmup_steps')} is {self.warmup_steps} and "
                                  f"{self.label('warmup_epochs')} is {self.warmup_epochs}: a warm-up is counted in "
                                  "steps or in epochs, not both; set one of them to 0")
        if not 0 < self.cyclic_momentum <= 1:
            raise ValidationError(f"{self.label('cyclic_momentum')} must be in (0, 1], found {self.cyclic_momentum}")
        if not 0 < self.warmup_start_factor <= 1:
            raise ValidationError(f"{self.label('warmup_start_factor')} must be in (0, 1], "
                                  f"found {self.warmup_start_factor}")

    def fingerprint_payload(self) -> dict[str, Any]:
        """The class name and every field but :data:`EXECUTION_FIELDS`."""
        fields = {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS}
        return {"class": type(self).__name__, "fields": fields}


def build_config(cls, values: dict[str, Any], *, where: str) -> TrainConfig:
    """Instantiate ``cls`` from a mapping, naming ``where`` the values came from in errors."""
    return cls.from_dict(values, where=where)


def read_preset(cls, path: Path) -> dict[str, Any]:
    """Field values of a preset YAML file (a mapping of config keys)."""
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValidationError(f"preset {path} is not valid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise ValidationError(f"preset {path} must hold a mapping of config keys, found {type(values).__name__}")
    cls.check_fields(values, where=f"preset {path}")
    return values


def apply_overrides(cls, values: dict[str, Any], pairs: list[str]) -> dict[str, Any]:
    """``values`` updated by ``["key=value", ...]``, each parsed to the field's type."""
    return {**values, **cls.parse_overrides(pairs)}


def config_hash(config: TrainConfig) -> str:
    """The config's fingerprint: 16 hex digits of a sha256, :data:`EXECUTION_FIELDS` left out."""
    return config.fingerprint


def config_to_yaml(config: TrainConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def differing_keys(a: TrainConfig, b: TrainConfig, *, ignore=EXECUTION_FIELDS) -> list[str]:
    """Fields whose values differ between two configs (execution fields ignored)."""
    da, db = a.to_dict(), b.to_dict()
    return [k for k in da if k not in ignore and da[k] != db.get(k)]
