"""Forward hooks, registered and removed by a context manager."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from workbench.errors import ValidationError


@contextlib.contextmanager
def hooked(module: nn.Module, layers: Iterable[str],
           on_output: Callable[[str, torch.Tensor], None]):
    """Call ``on_output(layer, output)`` whenever one of ``layers`` runs, inside the block.

    Parameters
    ----------
    module : nn.Module
        The network.
    layers : iterable of str
        Dotted submodule paths (``module.get_submodule``).
    on_output : callable(layer, tensor)
        Receives each hooked module's output tensor.

    Raises
    ------
    ValidationError
        A name is not a submodule (checked before any hook is added), or a hooked module
        returns something other than a tensor.
    """
    layers = list(layers)
    modules = dict(module.named_modules())
    absent = [layer for layer in layers if layer not in modules]
    if absent:
        raise ValidationError(f"layer(s) {absent} are not submodules of {type(module).__name__}")
    handles = []

    def make_hook(layer: str):
        def hook(_module, _inputs, output):
            if not isinstance(output, torch.Tensor):
                raise ValidationError(
                    f"layer {layer!r} returned {type(output).__name__}, expected a tensor; "
                    "hook one of its submodules instead"
                )
            on_output(layer, output)

        return hook

    try:
        for layer in layers:
            handles.append(modules[layer].register_forward_hook(make_hook(layer)))
        yield
    finally:
        for handle in handles:
            handle.remove()


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
