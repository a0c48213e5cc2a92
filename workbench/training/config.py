"""Training configs: one frozen dataclass per method, YAML presets beside it, strict overrides.

A method's config class extends :class:`TrainConfig`. A preset (``presets/<name>.yaml`` in the
method's package) holds field values; ``--set key=value`` overrides are parsed to each field's
declared type, strictly (``epochs=abc`` and ``augment=maybe`` are errors, not guesses). The
resolved config is written to ``config.yaml`` and its :func:`config_hash` goes into the model
card, so a run's weights are tied to the exact settings that produced them.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import ValidationError

#: Fields that say where or how fast a run executes, not what it computes: they may differ
#: between a run and its ``--resume`` and are left out of the config hash.
EXECUTION_FIELDS = ("device", "num_workers", "log_every", "checkpoint_every")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Fields every method shares (a method's config class adds its own).

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
    scheduler : {"cosine", "constant", "multistep"}
        Learning-rate schedule over all steps, after ``warmup_epochs`` of linear warm-up; updated
        every step. ``multistep`` multiplies the lr by ``gamma`` at each epoch in ``milestones``.
    milestones : tuple of int
        Epochs at which ``multistep`` decays the lr.
    gamma : float
        ``multistep``'s decay factor.
    warmup_epochs : int
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
    warmup_epochs: int = 0
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

    #: Allowed values of string fields (a subclass extends this with its own).
    CHOICES: typing.ClassVar[dict[str, tuple[str, ...]]] = {
        "optimizer": ("sgd", "adamw"),
        "scheduler": ("cosine", "constant", "multistep"),
        "device": ("cpu", "cuda"),
        "amp": ("auto", "bf16", "off"),
    }

    def __post_init__(self):
        for name, value in dataclasses.asdict(self).items():
            _check_type(type(self), name, value)
        for name, choices in self.CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValidationError(f"config field {name!r} is {value!r}; expected one of {list(choices)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValidationError(f"config field {name!r} must be >= 1, found {getattr(self, name)}")
        for name in ("warmup_epochs", "grad_clip", "num_workers", "checkpoint_every", "limit_train", "limit_test"):
            if getattr(self, name) < 0:
                raise ValidationError(f"config field {name!r} must be >= 0, found {getattr(self, name)}")
        if self.log_every < 1 or self.time_steps < 1:
            raise ValidationError("config fields 'log_every' and 'time_steps' must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_type(cls, name: str, value: Any) -> None:
    expected = _field_types(cls)[name]
    if not _matches(value, expected):
        raise ValidationError(
            f"config field {name!r} is {value!r} ({type(value).__name__}); expected {_type_name(expected)}")


def _matches(value: Any, expected) -> bool:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list):
        return isinstance(value, (tuple, list))
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, expected)


def _type_name(expected) -> str:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(expected))
    return "None" if expected is type(None) else getattr(expected, "__name__", str(expected))


def parse_value(cls, name: str, text: str) -> Any:
    """Parse a ``--set`` value to the declared type of field ``name`` of ``cls``, strictly."""
    expected = _field_types(cls)[name]
    candidates = typing.get_args(expected) if typing.get_origin(expected) in (typing.Union, types.UnionType) else (expected,)
    lowered = text.strip().lower()
    if type(None) in candidates and lowered in ("none", "null", "~"):
        return None
    for kind in candidates:
        if kind is bool:
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
        elif kind is int:
            try:
                return int(text)
            except ValueError:
                pass
        elif kind is float:
            try:
                return float(text)
            except ValueError:
                pass
        elif kind is str:
            return text
        elif kind is dict or typing.get_origin(kind) is dict:
            loaded = yaml.safe_load(text)
            if isinstance(loaded, dict):
                return loaded
        elif typing.get_origin(kind) in (tuple, list):
            loaded = yaml.safe_load(text)
            if isinstance(loaded, list):
                return tuple(loaded)
    raise ValidationError(f"--set {name}={text!r}: expected {_type_name(expected)}")


def field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _unknown_key(cls, key: str, where: str) -> ValidationError:
    names = field_names(cls)
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValidationError(f"{where}: unknown config key {key!r}{hint} (valid keys: {', '.join(names)})")


def build_config(cls, values: dict[str, Any], *, where: str) -> TrainConfig:
    """Instantiate ``cls`` from a mapping, naming ``where`` the values came from in errors."""
    for key in values:
        if key not in field_names(cls):
            raise _unknown_key(cls, key, where)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return cls(**values)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}") from None


def read_preset(cls, path: Path) -> dict[str, Any]:
    """Field values of a preset YAML file (a mapping of config keys)."""
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValidationError(f"preset {path} is not valid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise ValidationError(f"preset {path} must hold a mapping of config keys, found {type(values).__name__}")
    for key in values:
        if key not in field_names(cls):
            raise _unknown_key(cls, key, f"preset {path}")
    return values


def apply_overrides(cls, values: dict[str, Any], pairs: list[str]) -> dict[str, Any]:
    """``values`` updated by ``["key=value", ...]``, each parsed to the field's type."""
    values = dict(values)
    for pair in pairs:
        if "=" not in pair:
            raise ValidationError(f"--set {pair!r}: expected KEY=VALUE")
        key, text = pair.split("=", 1)
        key = key.strip()
        if key not in field_names(cls):
            raise _unknown_key(cls, key, "--set")
        values[key] = parse_value(cls, key, text)
    return values


def config_hash(config: TrainConfig) -> str:
    """sha256 of the canonical JSON of the config's fields, :data:`EXECUTION_FIELDS` left out."""
    payload = {k: v for k, v in config.to_dict().items() if k not in EXECUTION_FIELDS}
    text = json.dumps({"class": type(config).__name__, "fields": payload}, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()


def config_to_yaml(config: TrainConfig) -> str:
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in config.to_dict().items()}
    return yaml.safe_dump(data, sort_keys=False)


def differing_keys(a: TrainConfig, b: TrainConfig, *, ignore=EXECUTION_FIELDS) -> list[str]:
    """Fields whose values differ between two configs (execution fields ignored)."""
    da, db = a.to_dict(), b.to_dict()
    return [k for k in da if k not in ignore and da[k] != db.get(k)]
