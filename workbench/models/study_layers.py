"""The reference study's 81 networks and the layers it scores, read from a data file.

Huang et al. 2023 (AAAI-23, arXiv 2303.06060) score 12 SNNs, 43 CNNs and 26 ViTs. Their
official code (``Grasshlw/SNN-Neural-Similarity-Static``) lists the networks by family in
``similarity/misc.py`` and each network's layers in ``similarity/model_layers/<name>.json``;
``study/huang2023_layers.json`` transcribes both (the commit is in its ``"source"``), without
the last entry of each list (the logits, which the study never scores).

Each layer keeps the study's own fields: its module expression in the study's code (e.g.
``"features[3]"``), the output shape per stimulus it recorded, its type and its depth. A zoo
model declares these layers as specs (:mod:`workbench.models.layer_spec`);
:attr:`StudyLayer.spec` is the direct translation (``"features[3]"`` -> ``"features.3"``).

Examples
--------
>>> from workbench.models import study_layers
>>> study_layers("densenet169")[-1]  # doctest: +ELLIPSIS
StudyLayer(name='classifier', shape=(1664,), type='pool', depth=173, recorded_shape=(-1,))
>>> study_layers("densenet169")[-1].spec
'classifier:input'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from torch import nn

from workbench.errors import ValidationError
from workbench.validation import did_you_mean

STUDY_FILE = Path(__file__).with_name("study") / "huang2023_layers.json"
STUDY_FAMILIES = ("snn", "cnn", "vit")


@dataclass(frozen=True)
class StudyLayer:
    """One layer the study scores.

    Attributes
    ----------
    name : str
        The study's module expression, e.g. ``"layer1[0]"`` or ``"features.denseblock1"``.
    shape : tuple of int
        Output shape per stimulus (at one time step for an SNN), e.g. (64, 56, 56).
    type : str
        The study's layer type (``"conv"``, ``"relu"``, ``"pool"``, ``"sn"``, ``""`` ...).
    depth : int
        The study's depth of the layer in its network (4th field of its lists).
    recorded_shape : tuple of int
        The shape as the study's file records it: ``(-1,)`` where the study reads the module's
        input, whose size is then the first number of the previous layer's shape.
    """

    name: str
    shape: tuple[int, ...]
    type: str
    depth: int
    recorded_shape: tuple[int, ...]

    @property
    def reads_input(self) -> bool:
        """Whether the study reads the module's (pooled, flattened) input rather than its output."""
        return self.recorded_shape == (-1,)

    @property
    def spec(self) -> str:
        """The layer spec of the same module in a network with the study's module names."""
        path = re.sub(r"\[(\d+)\]", r".\1", self.name)
        return f"{path}:input" if self.reads_input else path


@lru_cache(maxsize=1)
def _study() -> dict:
    with open(STUDY_FILE, encoding="utf-8") as file:
        return json.load(file)


def study_source() -> dict:
    """Where the study's lists come from: ``{"study", "repository", "commit", ...}``."""
    return dict(_study()["source"])


def study_models(family: str | None = None) -> list[str]:
    """The study's network names, in its order (SNNs, CNNs, ViTs), optionally of one family."""
    if family is not None and family not in STUDY_FAMILIES:
        raise ValidationError(f"family={family!r} is not valid; expected one of {list(STUDY_FAMILIES)}")
    return [name for name, model in _study()["models"].items() if family in (None, model["family"])]


def _model(name: str) -> dict:
    models = _study()["models"]
    if name not in models:
        raise ValidationError(f"{name!r} is not one of the study's {len(models)} networks{did_you_mean(name, models)} "
                              f"(listed in {STUDY_FILE.name})")
    return models[name]


def study_family(name: str) -> str:
    """The study's family of network ``name``: ``"snn"``, ``"cnn"`` or ``"vit"``."""
    return _model(name)["family"]


def study_input_size(name: str) -> int:
    """The side, in pixels, of the images the study showed network ``name`` (224 or 299)."""
    return int(_model(name)["input_size"])


def study_layers(name: str) -> tuple[StudyLayer, ...]:
    """The layers the study scores for network ``name``, from input to output."""
    layers, previous = [], None
    for layer_name, shape, kind, depth in _model(name)["layers"]:
        recorded = tuple(int(n) for n in shape)
        resolved = (previous[0],) if recorded == (-1,) else recorded
        layers.append(StudyLayer(layer_name, resolved, kind, int(depth), recorded))
        previous = resolved
    return tuple(layers)


def study_specs(name: str, module: nn.Module | None = None,
                renames: dict[str, str] | None = None) -> tuple[str, ...]:
    """The layer specs of network ``name``'s study layers, in order.

    Parameters
    ----------
    name : str
        One of :func:`study_models`.
    module : nn.Module, optional
        Our network. With it, each study expression is resolved on the network (an attribute
        name, or ``[i]``: the i-th child of a container, as the study's code indexes
        ``nn.Sequential``) and written as that module's dotted path, so that containers whose
        children have other names (torchvision's RegNet ``block1-0``) map too. Without it:
        :attr:`StudyLayer.spec` (``[i]`` -> ``.i``).
    renames : dict of str to str, optional
        The spec for a study layer name whose module has another path in our network (e.g. a
        module that a newer library version renamed); it replaces the resolved spec.

    Raises
    ------
    ValidationError
        A rename names no study layer, or an expression does not resolve on ``module``.
    """
    renames = renames or {}
    layers = study_layers(name)
    unknown = sorted(set(renames) - {layer.name for layer in layers})
    if unknown:
        raise ValidationError(f"renames {unknown} are not study layers of {name}")
    paths = None if module is None else {id(sub): path for path, sub in module.named_modules()}
    specs = []
    for layer in layers:
        if layer.name in renames:
            specs.append(renames[layer.name])
        elif module is None:
            specs.append(layer.spec)
        else:
            path = paths[id(_resolve(module, layer.name, name))]
            specs.append(f"{path}:input" if layer.reads_input else path)
    return tuple(specs)


_STEP = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[([0-9]+)\]")


def _resolve(module: nn.Module, expression: str, name: str) -> nn.Module:
    """The submodule that the study's expression (``"features[3]"``, ``"layers[8][0]"``) names."""
    position, current = 0, module
    while position < len(expression):
        step = _STEP.match(expression, position)
        try:
            if step is None:
                raise LookupError
            if step[1] is not None:
                current = current.get_submodule(step[1])
            else:
                current = list(current.children())[int(step[2])]
        except (LookupError, AttributeError):
            raise ValidationError(f"{name}: the study's layer {expression!r} does not resolve on "
                                  f"{type(module).__name__} (at {expression[position:]!r})") from None
        position = step.end()
    return current
