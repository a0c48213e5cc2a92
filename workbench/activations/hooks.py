"""Forward hooks on layer specs, registered and removed by a context manager."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from workbench.errors import ValidationError
from workbench.models.layer_spec import absent_layers, parse_layer_spec


@contextlib.contextmanager
def hooked(module: nn.Module, layers: Iterable[str],
           on_output: Callable[[str, torch.Tensor], None]):
    """Call ``on_output(layer, tensor)`` whenever one of ``layers`` is computed, inside the block.

    Parameters
    ----------
    module : nn.Module
        The network (the module that is called).
    layers : iterable of str
        Layer specs (:mod:`workbench.models.layer_spec`): a dotted submodule path (its output),
        ``"<path>:input"``, ``"<path>:out[i]"`` or ``"<path>:call[k]"``.
    on_output : callable(layer, tensor)
        Receives each layer's tensor: a plain path's on every call of its module, a
        ``call[k]`` spec's once per forward pass of ``module`` (a negative ``k`` after the pass
        ends, as a copy).

    Raises
    ------
    ValidationError
        A spec is malformed or its path is not a submodule (checked before any hook is added),
        a hooked value is not a tensor, or a module ran fewer times than its ``call[k]`` asks.
    """
    layers = list(layers)
    absent = absent_layers(module, layers)
    if absent:
        raise ValidationError(f"layer(s) {absent} are not submodules of {type(module).__name__}")
    modules = dict(module.named_modules())
    handles = []
    calls: list[_NthCall] = []
    try:
        for layer in layers:
            spec = parse_layer_spec(layer)
            target = modules[spec.path]
            if spec.kind == "input":
                handles.append(target.register_forward_pre_hook(_input_hook(layer, on_output)))
            elif spec.kind == "call":
                calls.append(_NthCall(layer, spec.index, on_output))
                handles.append(target.register_forward_hook(calls[-1].hook))
            else:
                handles.append(target.register_forward_hook(_output_hook(layer, spec.index, on_output)))
        if calls:  # count calls per forward pass of the network
            handles.append(module.register_forward_pre_hook(lambda *_: _each(calls, "start")))
            handles.append(module.register_forward_hook(lambda *_: _each(calls, "finish")))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _each(calls: list[_NthCall], method: str) -> None:
    """Call ``method`` of every counter; returns None, so the hooked pass is unchanged."""
    for call in calls:
        getattr(call, method)()


def _tensor(layer: str, value, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ValidationError(
            f"layer {layer!r}: {what} is a {type(value).__name__}, expected a tensor; hook one of "
            "its submodules, or pick a tensor with a spec ':out[i]' or ':input'"
        )
    return value


def _output_hook(layer: str, element: int | None, on_output):
    """The forward hook of a plain path (``element=None``) or of an ``out[i]`` spec."""
    def hook(_module, _inputs, output):
        if element is None:
            on_output(layer, _tensor(layer, output, "the output"))
            return
        if not isinstance(output, (tuple, list)) or not -len(output) <= element < len(output):
            found = (f"a {type(output).__name__} of {len(output)}" if isinstance(output, (tuple, list))
                     else f"a {type(output).__name__}")
            raise ValidationError(f"layer {layer!r} asks for element {element} of a tuple/list output; "
                                  f"the module returned {found}")
        on_output(layer, _tensor(layer, output[element], f"element {element} of the output"))

    return hook


def _input_hook(layer: str, on_output):
    """The forward pre-hook of an ``input`` spec (it sees the input before the module runs)."""
    def hook(_module, inputs):
        if not inputs:
            raise ValidationError(f"layer {layer!r} reads the first positional input, but the module "
                                  "was called without one")
        on_output(layer, _tensor(layer, inputs[0], "the first positional input"))

    return hook


class _NthCall:
    """The output of call ``index`` of a module among its calls in one forward pass."""

    def __init__(self, layer: str, index: int, on_output):
        self.layer, self.index, self.on_output = layer, index, on_output
        self.count = 0
        self.last = collections.deque(maxlen=-index) if index < 0 else None

    def start(self) -> None:
        self.count = 0
        if self.last is not None:
            self.last.clear()

    def hook(self, _module, _inputs, output) -> None:
        output = _tensor(self.layer, output, "the output")
        if self.last is not None:  # kept (copied: later in-place ops may change it) until the end
            self.last.append(output.detach().clone())
        elif self.count == self.index:
            self.on_output(self.layer, output)
        self.count += 1

    def finish(self) -> None:
        needed = -self.index if self.index < 0 else self.index + 1
        if self.count < needed:
            raise ValidationError(f"layer {self.layer!r} asks for call {self.index}, but the module ran "
                                  f"{self.count} time(s) in this forward pass")
        if self.last is not None:
            self.on_output(self.layer, self.last[0])
            self.last.clear()


@torch.no_grad()
def layer_outputs(module: nn.Module, layers: Iterable[str], *inputs, **kwargs) -> dict[str, np.ndarray]:
    """Flattened outputs ``{layer: (N, features)}``, float64, of ``module(*inputs, **kwargs)``.

    One forward pass in eval mode (the module's training mode is restored after); for the
    small analyses of the methods' notebooks. Streamed statistics of large sets are
    :func:`workbench.activations.extract_stats`.
    """
    outputs: dict[str, np.ndarray] = {}
    was = module.training
    module.eval()
    try:
        with hooked(module, layers, lambda layer, out: outputs.__setitem__(
                layer, out.detach().flatten(1).double().numpy())):
            module(*inputs, **kwargs)
    finally:
        module.train(was)
    return outputs
