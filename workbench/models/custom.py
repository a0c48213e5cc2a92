"""Your own torch model: wrap any ``nn.Module`` with its analysis layers and preprocessing.

:func:`wrap_model` is the one call a user of THINGSvision's ``get_extractor_from_model``
expects: it returns the :class:`~workbench.models.ModelWrapper` that
:func:`workbench.activations.extract_stats`, :func:`workbench.activations.extract` and
:func:`workbench.analysis.score_layer` take, exactly like a zoo model from
:func:`workbench.models.create`.

To use such a model from the command line (``workbench score --models ...``), put a
factory that returns ``wrap_model(...)`` (or an :class:`~workbench.models.Architecture`)
in an importable module and name it ``package.module:factory``, or declare it in your
package's ``pyproject.toml`` (see :mod:`workbench.models.resolve`)::

    [project.entry-points."workbench.models"]
    my_net = "my_package.models:my_net"

Examples
--------
>>> import torchvision
>>> from workbench.models import wrap_model
>>> net = torchvision.models.alexnet()            # any nn.Module, your own weights loaded
>>> model = wrap_model(net, ["features.2", "features.5", "classifier.5"], input_size=224)
>>> model.layers
('features.2', 'features.5', 'classifier.5')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from torch import nn

from workbench.errors import ValidationError
from workbench.models.layer_spec import LAYER_SPEC_GRAMMAR, absent_layers
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import FAMILIES, Architecture, ModelWrapper, prepare_for_analysis
from workbench.validation import check_choice


def is_spiking(module: nn.Module) -> bool:
    """Whether ``module`` contains a spikingjelly neuron (then it is scored as an SNN)."""
    return any(type(m).__module__.startswith("spikingjelly.activation_based.neuron")
               for m in module.modules())


def wrap_model(
    module: nn.Module,
    layers: Sequence[str] | None = None,
    *,
    preprocessing: Preprocessing | None = None,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    name: str = "custom",
    family: str | None = None,
    time_steps: int | None = None,
    weights: str | None = None,
    channels_last: Sequence[str] = (),
) -> ModelWrapper:
    """Wrap any ``nn.Module`` with its analysis layers and preprocessing, in one call.

    The counterpart of THINGSvision's ``get_extractor_from_model``: the result is what
    :func:`workbench.models.create` returns for a zoo model, so extraction, the activation
    cache and scoring treat it the same way.

    Parameters
    ----------
    module : nn.Module
        The network, with your weights already loaded. It is put in eval mode and its
        parameters stop requiring gradients (in place).
    layers : sequence of str, optional
        Ordered analysis layers, from input to output, as layer specs
        (:mod:`workbench.models.layer_spec`): a dotted path of ``module.named_modules()``
        (e.g. ``"layer3.1"``, its output), or ``"<path>:input"``, ``"<path>:out[i]"``,
        ``"<path>:call[k]"``. Default: every direct child of ``module``.
    preprocessing : Preprocessing, optional
        How input images are prepared; default ``Preprocessing()`` (224 px, ImageNet mean
        and std) with ``input_size``, ``mean`` and ``std`` replaced where given.
    input_size : int, optional
        Side of the square input image, in pixels.
    mean, std : sequence of 3 floats, optional
        Per-channel normalisation of pixel values scaled to [0, 1].
    name : str, default: "custom"
        The model's name in logs, the activation cache's listing and scores.
    family : {"snn", "cnn", "vit"}, optional
        Default: ``"snn"`` when the network contains spikingjelly neurons, else ``"cnn"``.
    time_steps : int, optional
        Time steps T of a spiking network (default 4 for an SNN, 1 otherwise). SNNs are set
        to spikingjelly's multi-step mode.
    weights : str, optional
        How the weights are described in scores (e.g. ``"my_net.pth, epoch 30"``); default
        ``"custom (sha256 <first 12 hex digits of the state dict's sha256>)"``, read when asked
        (so it describes the weights the network holds then). A factory named on the command
        line gives its label here.
    channels_last : sequence of str, default: ()
        Layers whose output is (N, H, W, C) rather than (N, C, H, W).

    Returns
    -------
    ModelWrapper

    Raises
    ------
    ValidationError
        ``module`` is not an ``nn.Module``, a layer is not one of its submodules, layers
        repeat, or ``family`` / ``time_steps`` are not valid.
    """
    if not isinstance(module, nn.Module):
        raise ValidationError(f"module must be a torch.nn.Module, found {type(module).__name__}")
    layers = _checked_layers(module, layers, name)
    spiking = is_spiking(module)
    family = family or ("snn" if spiking else "cnn")
    check_choice(family, "family", FAMILIES)
    time_steps = _checked_time_steps(time_steps, family, name)
    preprocessing = _with_changes(preprocessing or Preprocessing(), input_size, mean, std)
    prepare_for_analysis(module, family if spiking else "cnn")  # multi-step mode for neurons only
    arch = Architecture(module, layers, preprocessing, time_steps, frozenset(channels_last))
    return ModelWrapper(name, family, arch, None if weights is None else str(weights))


def _checked_layers(module: nn.Module, layers: Sequence[str] | str | None, name: str) -> tuple[str, ...]:
    """The layer specs (default: every direct child), each on a submodule, without repeats."""
    if layers is None:
        layers = [child for child, _ in module.named_children()]
        if not layers:
            raise ValidationError(f"{name}: the module has no children; pass layers=[...] explicitly")
    elif isinstance(layers, str):
        layers = [layers]
    layers = tuple(layers)
    bad = absent_layers(module, layers)
    if bad:
        known = [n for n, _ in module.named_modules() if n][:20]
        raise ValidationError(
            f"{name}: layer(s) {bad} are not submodules of the {type(module).__name__}; expected layer "
            f"specs on dotted paths of module.named_modules(), e.g. {known} ({LAYER_SPEC_GRAMMAR})"
        )
    if not layers or len(set(layers)) != len(layers):
        raise ValidationError(f"{name}: layers must be a non-empty list without duplicates, found {list(layers)}")
    return layers


def _checked_time_steps(time_steps: int | None, family: str, name: str) -> int:
    """T: default 4 for an SNN and 1 otherwise; more than 1 only for an SNN."""
    if time_steps is None:
        time_steps = 4 if family == "snn" else 1
    if int(time_steps) < 1 or (family != "snn" and int(time_steps) != 1):
        raise ValidationError(
            f"{name}: time_steps={time_steps} is not valid for family {family!r}; expected >= 1, "
            "and 1 unless the model is a spiking network"
        )
    return int(time_steps)


def _with_changes(preprocessing: Preprocessing, input_size, mean, std) -> Preprocessing:
    """``preprocessing`` with the given input size, mean and std replacing its own."""
    changes = {k: v for k, v in (("input_size", input_size), ("mean", mean), ("std", std)) if v is not None}
    if not changes:
        return preprocessing
    changes = {k: tuple(v) if k in ("mean", "std") else int(v) for k, v in changes.items()}
    return dataclasses.replace(preprocessing, **changes)


def as_architecture(built, spec: str) -> tuple[Architecture, str | None]:
    """Normalise what a plugin factory returned: ``(Architecture, family or None)``.

    A factory may return an :class:`Architecture` or the :class:`ModelWrapper` of
    :func:`wrap_model` (whose family and weights label are kept).
    """
    if isinstance(built, ModelWrapper):
        return (Architecture(built.module, built.layers, built.preprocessing, built.time_steps,
                             built.channels_last, built.declared_weights), built.family)
    if isinstance(built, Architecture):
        return built, None
    if isinstance(built, nn.Module):
        raise ValidationError(
            f"model factory {spec!r} returned a bare {type(built).__name__}; return "
            "workbench.models.wrap_model(module, layers=[...]) so that its analysis layers and "
            "preprocessing are known"
        )
    raise ValidationError(
        f"model factory {spec!r} returned {type(built).__name__}; expected "
        "workbench.models.wrap_model(...) or a workbench.models.Architecture"
    )
