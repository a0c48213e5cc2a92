"""Helpers that list analysis layers from a network's module tree."""

from __future__ import annotations

from torch import nn


def children(module: nn.Module, prefix: str) -> list[str]:
    """Dotted names of the direct children of ``module.get_submodule(prefix)``."""
    parent = module.get_submodule(prefix) if prefix else module
    return [f"{prefix}.{name}" if prefix else name for name, _ in parent.named_children()]


def of_type(module: nn.Module, prefix: str, types: type | tuple[type, ...]) -> list[str]:
    """Dotted names of every submodule under ``prefix`` that is an instance of ``types``."""
    parent = module.get_submodule(prefix) if prefix else module
    return [
        f"{prefix}.{name}" if prefix else name
        for name, sub in parent.named_modules()
        if name and isinstance(sub, types)
    ]


def resnet_layers(module: nn.Module, first: tuple[str, ...]) -> tuple[str, ...]:
    """``first`` layers, then every residual block of layer1..layer4, then ``avgpool``."""
    blocks = [name for stage in ("layer1", "layer2", "layer3", "layer4")
              for name in children(module, stage)]
    return (*first, *blocks, "avgpool")
