"""Training methods: one subpackage per paper, all on the shared loop of :mod:`workbench.training`.

A method is a frozen config dataclass (extending :class:`~workbench.training.TrainConfig`),
YAML presets beside it (``presets/tiny.yaml`` for this CPU, ``presets/paper.yaml`` for the
paper's recipe, ``presets/micro.yaml`` for the seconds-long run the test suite trains), ``train(config, run) -> TrainOutcome`` and ``evaluate(run_dir) -> dict``.
Each subpackage registers a :class:`MethodSpec` in its ``__init__``; the subpackages are
discovered on first use, like the model zoo's families.

Examples
--------
>>> from workbench.methods import list_methods, get_method
>>> list_methods()  # doctest: +SKIP
['lats']
>>> get_method("lats").presets()  # doctest: +SKIP
['micro', 'paper', 'tiny']
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import ValidationError
from workbench.validation import did_you_mean


@dataclass(frozen=True)
class MethodSpec:
    """What a method registers.

    Attributes
    ----------
    name : str
        CLI name (``workbench train NAME``).
    paper : str
        Citation line: authors, year, title, venue, arXiv id.
    summary : str
        One line: what the method does.
    config_cls : type
        Its config dataclass (a :class:`~workbench.training.TrainConfig` subclass).
    train : callable
        ``train(config, run) -> TrainOutcome``.
    evaluate : callable
        ``evaluate(run_dir) -> dict[str, float]`` of a finished run.
    presets_dir : Path
        Folder of the method's ``<preset>.yaml`` files.
    notebook : str
        Report notebook, relative to the notebooks folder (``methods/<name>.ipynb``).
    """

    name: str
    paper: str
    summary: str
    config_cls: type
    train: Callable
    evaluate: Callable
    presets_dir: Path
    notebook: str = ""

    def presets(self) -> list[str]:
        return sorted(p.stem for p in Path(self.presets_dir).glob("*.yaml"))

    def preset_path(self, preset: str) -> Path:
        available = self.presets()
        if preset not in available:
            raise ValidationError(f"unknown preset {preset!r} of method {self.name!r}; expected one of {available}"
                                  f"{did_you_mean(preset, available)}")
        return Path(self.presets_dir) / f"{preset}.yaml"


_METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method to the registry (called from the method's package ``__init__``)."""
    if spec.name in _METHODS:
        raise ValidationError(f"method name {spec.name!r} is already registered")
    _METHODS[spec.name] = spec
    return spec


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            importlib.import_module(f"{__name__}.{module.name}")


def list_methods() -> list[str]:
    """Registered method names, sorted."""
    _discover()
    return sorted(_METHODS)


def get_method(name: str) -> MethodSpec:
    """The registered method ``name``; unknown names get close-match suggestions."""
    _discover()
    if name not in _METHODS:
        raise ValidationError(f"unknown method {name!r}{did_you_mean(name, _METHODS)}; "
                              f"expected one of {sorted(_METHODS)}")
    return _METHODS[name]


__all__ = ["MethodSpec", "get_method", "list_methods", "register_method"]
