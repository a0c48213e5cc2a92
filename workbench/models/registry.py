"""The model zoo: a registry of small factory functions, in the timm style.

A factory is registered with :func:`register_model` and returns an :class:`Architecture`
(the network and its declared analysis layers and preprocessing). Users call
:func:`create`, which seeds random initialisation, loads weights, checks that every
declared layer is a real submodule, and returns a :class:`ModelWrapper`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from workbench.errors import ValidationError
from workbench.models.layer_spec import LAYER_SPEC_GRAMMAR, absent_layers
from workbench.models.preprocessing import Preprocessing
from workbench.models.weights import load_checkpoint, state_dict_hash, without_weights
from workbench.validation import check_choice, did_you_mean

FAMILIES = ("snn", "cnn", "vit")


@dataclass(frozen=True)
class Architecture:
    """What a factory returns.

    Parameters
    ----------
    module : nn.Module
        The network.
    layers : tuple of str
        Ordered analysis layers, from input to output: layer specs
        (:mod:`workbench.models.layer_spec`), i.e. dotted ``named_modules()`` paths, optionally
        with ``:input``, ``:out[i]`` or ``:call[k]``.
    preprocessing : Preprocessing
        How input images are prepared.
    time_steps : int, default: 1
        Number of simulation steps (T) a static image is repeated over; > 1 only for SNNs.
    channels_last : frozenset of str, default: empty
        Layers whose output is (N, H, W, C) rather than (N, C, H, W) (Swin stages).
    weights : str, optional
        How a factory that loads its own weights (a user's ``package.module:factory`` or
        entry point) describes them, e.g. ``"trained on digits, epoch 30"``; it becomes the
        model's weights label in scores. Zoo factories leave it None (:func:`create` labels
        their weights).
    """

    module: nn.Module
    layers: tuple[str, ...]
    preprocessing: Preprocessing = Preprocessing()
    time_steps: int = 1
    channels_last: frozenset = frozenset()
    weights: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its name, family, factory, one-line description, the study name it
    stands for (None if it is not one of the study's networks), its aliases, and whether its
    factory loads its own weights (``own_weights``: a user's factory or entry point, whose
    network :func:`create` labels by what it holds rather than as randomly initialised)."""

    name: str
    family: str
    factory: Callable[..., Architecture]
    description: str
    study: str | None = None
    aliases: tuple[str, ...] = ()
    own_weights: bool = False


_REGISTRY: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}  # alias -> registered name


def register_model(name: str, *, family: str, aliases: Iterable[str] = ()) -> Callable:
    """Decorator registering ``factory(pretrained: bool) -> Architecture`` under ``name``.

    The first line of the factory's docstring becomes the model's description. A model
    registered under the name of one of the reference study's networks
    (:func:`workbench.models.study_layers.study_models`) is that network: its family must be
    the study's, and :func:`model_study_name` returns the name.

    Parameters
    ----------
    name : str
        The model's name (for the study's networks, the study's name).
    family : {"snn", "cnn", "vit"}
    aliases : iterable of str, default: ()
        Other names of the same network (e.g. a shorter, older name); :func:`create` and the
        other functions accept them, :func:`list_models` lists ``name`` only.
    """
    from workbench.models.study_layers import study_family, study_models

    check_choice(family, "family", FAMILIES)
    aliases = tuple(aliases)
    study = name if name in study_models() else None
    if study is not None and study_family(name) != family:
        raise ValidationError(f"model {name!r} is the study's {study_family(name)} {name!r}; "
                              f"family={family!r} contradicts it")

    def decorator(factory: Callable[..., Architecture]) -> Callable[..., Architecture]:
        taken = [n for n in (name, *aliases) if n in _REGISTRY or n in _ALIASES]
        if taken or len(set(aliases) | {name}) != len(aliases) + 1:
            raise ValidationError(f"model name(s) {taken or list(aliases)} of {name!r} are already "
                                  "registered or repeated")
        doc = (factory.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = ModelEntry(name, family, factory, doc[0] if doc else "", study, aliases)
        _ALIASES.update(dict.fromkeys(aliases, name))
        return factory

    return decorator


def _is_run(name) -> bool:
    from workbench.training.model_card import is_run_directory

    return isinstance(name, (str, os.PathLike)) and is_run_directory(name)


def build_architecture(name: str, **kwargs) -> Architecture:
    """Call the factory of ``name`` (random initialisation from the global RNG), passing ``kwargs``.

    For training (:func:`workbench.training.build_network`); :func:`create` is for analysis.
    """
    entry = model_entry(name)
    try:
        return entry.factory(pretrained=False, **kwargs)
    except TypeError as exc:
        raise ValidationError(f"model {name!r} does not take the argument(s) {sorted(kwargs)}: {exc}") from None


def model_entry(name: str) -> ModelEntry:
    """The entry of a registered model, an alias, ``package.module:factory`` or ``timm:``/``torchvision:`` name."""
    _load_zoo()
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        from workbench.models.resolve import plugin_entry

        plugin = plugin_entry(name)  # package.module:factory, or a "workbench.models" entry point
        if plugin is not None:
            return plugin
        _check_not_a_path(name)
        raise ValidationError(
            f"unknown model {name!r}{did_you_mean(name, _REGISTRY)} (`workbench models list` shows all "
            f"{len(_REGISTRY)} models)"
        )
    return _REGISTRY[name]


def _check_not_a_path(name: str) -> None:
    """Raise, naming the run directory, when an unknown model ``name`` is meant as one: it
    contains a path separator or is an existing folder (a finished run is not unknown)."""
    from workbench.training.model_card import CARD_FILE

    if Path(name).is_dir():
        raise ValidationError(f"{name} is a folder but not a finished run directory: no {CARD_FILE} "
                              "(`workbench train` writes it when the run finishes)")
    if any(sep and sep in name for sep in (os.sep, os.altsep)):
        raise ValidationError(f"no run directory {name} (expected the --out folder of `workbench train`, "
                              f"holding {CARD_FILE})")


def list_models(family: str | None = None, pattern: str | None = None) -> list[str]:
    """Registered model names, sorted, optionally filtered by family and a shell-style pattern.

    Examples
    --------
    >>> list_models(family="snn", pattern="sew_*")  # doctest: +SKIP
    ['sew_resnet14', 'sew_resnet18', 'sew_resnet34', 'sew_resnet50', 'sew_resnet8']
    """
    _load_zoo()
    if family is not None:
        check_choice(family, "family", FAMILIES)
    return sorted(
        e.name
        for e in _REGISTRY.values()
        if (family is None or e.family == family)
        and (pattern is None or fnmatch.fnmatchcase(e.name, pattern))
    )


def model_family(name: str) -> str:
    """The family (``"snn"``, ``"cnn"`` or ``"vit"``) of a registered model or a run directory."""
    if _is_run(name):
        from workbench.training.model_card import read_card

        return read_card(name, verify_weights=False)["family"]
    return model_entry(name).family


def model_study_name(name: str) -> str | None:
    """The reference study's name of a registered model (or of an alias), or None if not one of its 81."""
    if _is_run(name):
        return None
    return model_entry(name).study


def model_aliases(name: str) -> tuple[str, ...]:
    """The other names a registered model is known by (:func:`register_model`)."""
    return model_entry(name).aliases


def model_description(name: str) -> str:
    """One-line description of a registered model or a run directory."""
    if _is_run(name):
        return model_info(name).description
    return model_entry(name).description


class ModelWrapper:
    """A created model: the network in eval mode with its analysis layers and preprocessing.

    Attributes
    ----------
    name, family : str
        Registry name and family.
    module : nn.Module
        The network, in eval mode (SNNs in spikingjelly's multi-step mode).
    layers : tuple of str
        Ordered analysis layers (dotted module paths, checked to exist).
    preprocessing : Preprocessing
    is_spiking : bool
    time_steps : int
        Default T (4 for the SNNs, 1 otherwise).
    weights : str
        ``"random(seed=<seed>)"``, ``"imagenet"``, the checkpoint path, the label a user's
        factory gave (:class:`Architecture` ``weights``), or, for a network given no label,
        ``"custom (sha256 <first 12 hex digits of weights_id>)"``.
    weights_id : str
        sha256 of the state dict as the network holds it now (:func:`state_dict_hash`; hashed
        again only after a tensor of it changed in place or was replaced).
    """

    def __init__(self, name: str, family: str, arch: Architecture, weights: str | None):
        self.name = name
        self.family = family
        self.module = arch.module
        self.layers = tuple(arch.layers)
        self.preprocessing = arch.preprocessing
        self.time_steps = int(arch.time_steps)
        self.channels_last = frozenset(arch.channels_last)
        self.declared_weights = weights  # None: described by its sha256 (`weights`)
        self.is_spiking = family == "snn"

    @property
    def weights(self) -> str:
        return self.declared_weights if self.declared_weights is not None else custom_weights_label(self.weights_id)

    @property
    def weights_id(self) -> str:
        state = tuple((name, t.data_ptr(), t._version, t.dtype, tuple(t.shape))
                      for name, t in self.module.state_dict().items())
        known = self.__dict__.get("_weights_hash")
        if known is None or known[0] != state:
            self._weights_hash = (state, state_dict_hash(self.module))
        return self._weights_hash[1]

    def with_preprocessing(self, **changes) -> "ModelWrapper":
        """A wrapper sharing this network with some preprocessing fields changed.

        Examples
        --------
        >>> small = create("cornet_z").with_preprocessing(input_size=64)  # doctest: +SKIP
        """
        clone = object.__new__(ModelWrapper)
        clone.__dict__.update(self.__dict__)
        clone.preprocessing = dataclasses.replace(self.preprocessing, **changes)
        return clone

    def check_layers(self, layers: Iterable[str] | str | None) -> tuple[str, ...]:
        """Return the requested layers (all declared ones for ``None``), each checked to exist.

        Any layer spec (:mod:`workbench.models.layer_spec`) whose path is a submodule is valid.
        """
        if layers is None:
            return self.layers
        if isinstance(layers, str):
            layers = [layers]
        layers = tuple(layers)
        if not layers:
            raise ValidationError(f"layers is empty; expected some of {list(self.layers)}")
        bad = absent_layers(self.module, layers)
        if bad:
            raise ValidationError(
                f"layer(s) {bad} not in {self.name}; expected one or more of {list(self.layers)} "
                f"(or any layer spec on model.module.named_modules(): {LAYER_SPEC_GRAMMAR})"
            )
        if len(set(layers)) != len(layers):
            raise ValidationError(f"layers contains duplicates: {list(layers)}")
        return layers

    def __repr__(self) -> str:
        return (
            f"ModelWrapper({self.name!r}, family={self.family!r}, weights={self.weights!r}, "
            f"{len(self.layers)} layers, T={self.time_steps}, input={self.preprocessing.input_size}px)"
        )


def custom_weights_label(weights_id: str) -> str:
    """The weights label of a network whose weights have no other description: its state
    dict's sha256 (``weights_id``), first 12 hex digits."""
    return f"custom (sha256 {weights_id[:12]})"


def create(name: str, weights: str | os.PathLike | None = None, *, seed: int = 0) -> ModelWrapper:
    """Build a registered model.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`; unknown names get close-match suggestions.
    weights : None, "imagenet" or path, default: None
        ``None``: random initialisation drawn from a generator seeded with ``seed`` (recorded
        as ``"random(seed=<seed>)"``), or, for a factory that loads its own weights
        (``package.module:factory``, an entry point), the weights it loaded (recorded as its
        label, :class:`Architecture` ``weights``, else ``"custom (sha256 <12 hex>)"``).
        ``"imagenet"``: the published weights (torchvision, timm; a local file for the SNNs);
        offline, a clear error names the file to download and where to put it. A path: a local checkpoint read with
        ``torch.load(weights_only=True)`` and loaded with strict key checking.
    seed : int, default: 0
        Seed of the random initialisation (also used before loading other weights, so any
        parameter not overwritten is reproducible).

    A run directory of ``workbench train`` may be given as ``name`` (with ``weights=None``):
    its card names the architecture, the weights (checked against their sha256) and the
    preprocessing it was trained with (:mod:`workbench.models.runs`).

    Returns
    -------
    ModelWrapper
    """
    if _is_run(name):
        return _create_from_run(name, weights, seed)
    entry = model_entry(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if weights is None:
            arch = entry.factory(pretrained=False)
            description = arch.weights if entry.own_weights else f"random(seed={int(seed)})"
        elif isinstance(weights, str) and weights == "imagenet":
            arch = entry.factory(pretrained=True)
            description = "imagenet"
        elif isinstance(weights, (str, os.PathLike)):
            arch = entry.factory(pretrained=False)
            load_checkpoint(arch.module, weights)
            description = str(Path(weights).resolve())
        else:
            raise ValidationError(
                f"weights={weights!r} is not valid; expected None, 'imagenet' or a checkpoint path"
            )
    prepare_for_analysis(arch.module, entry.family)
    wrapper = ModelWrapper(name, entry.family, arch, description)  # an alias keeps the name asked for
    _check_declared(name, arch)
    return wrapper


def prepare_for_analysis(module: nn.Module, family: str) -> None:
    """Eval mode, no gradients, and (``family == "snn"``) spikingjelly's multi-step mode, in place."""
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
    if family == "snn":
        from spikingjelly.activation_based import functional

        functional.set_step_mode(module, "m")


def _check_declared(name: str, arch: Architecture) -> None:
    """Every declared layer is a valid spec on a submodule (else a bug in the factory)."""
    try:
        absent = absent_layers(arch.module, arch.layers)
    except ValidationError as exc:
        raise RuntimeError(f"{name}: a declared layer is malformed: {exc}") from None
    if absent:
        raise RuntimeError(f"{name}: declared layers {absent} are not submodules of the network")


def _create_from_run(run_dir, weights, seed: int) -> ModelWrapper:
    from workbench.models.runs import run_architecture

    if weights is not None:
        raise ValidationError(f"{run_dir} is a training run, whose card names its own weights; "
                              f"weights={weights!r} cannot replace them (leave weights unset)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        card, arch = run_architecture(run_dir)
    prepare_for_analysis(arch.module, card["family"])
    return ModelWrapper(str(run_dir), card["family"], arch, f"run:{Path(run_dir).resolve()}")


def _load_zoo() -> None:
    """Import every public module of ``workbench.models``, whose decorators fill the registry.

    A new architecture module (e.g. a method's network) registers itself by being there.
    """
    import importlib
    import pkgutil

    import workbench.models as package

    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"workbench.models.{module.name}")



@dataclass(frozen=True)
class ModelInfo:
    """What a registered model declares, read without building its weights.

    ``study`` is the reference study's name of the network, or None if it is not one of its 81.
    """

    name: str
    family: str
    layers: tuple[str, ...]
    time_steps: int
    preprocessing: Preprocessing
    description: str
    study: str | None = None


def light_architecture(name) -> Architecture:
    """The architecture of a model (a registered name or a run directory) without its weights.

    Built on torch's ``meta`` device (no memory), or on the CPU where a factory cannot run there
    (torchvision's RegNets compute their widths with tensors), leaving the caller's random stream
    as it was. For reading module paths, layers and parameter shapes only.
    """
    if _is_run(name):
        from workbench.models.runs import run_architecture

        with without_weights():
            return run_architecture(name, load_weights=False)[1]
    entry = model_entry(name)
    try:
        with without_weights():
            return entry.factory(pretrained=False)
    except NotImplementedError:
        with torch.random.fork_rng(devices=[]):
            return entry.factory(pretrained=False)


def model_info(name: str) -> ModelInfo:
    """Declared layers, T and preprocessing of a model, built on torch's ``meta`` device (fast)."""
    if _is_run(name):
        from workbench.models.runs import run_architecture

        with without_weights():
            card, arch = run_architecture(name, load_weights=False)
        return ModelInfo(str(name), card["family"], tuple(arch.layers), int(arch.time_steps),
                         arch.preprocessing, f"{card['method']} run of {card['architecture']}")
    entry = model_entry(name)
    arch = light_architecture(name)
    _check_declared(name, arch)
    return ModelInfo(name, entry.family, tuple(arch.layers), int(arch.time_steps),
                     arch.preprocessing, entry.description, entry.study)
