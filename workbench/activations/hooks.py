"""Forward hooks, registered and removed by a context manager."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

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
