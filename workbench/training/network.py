"""A trainable network from the model zoo, with one forward for every family.

:func:`build_network` builds a registered architecture with fresh, seeded weights in train
mode (``workbench.models.create`` builds it for analysis: eval mode, frozen). Spiking networks
(spikingjelly, multi-step mode) see the image repeated over T steps; their logits are the mean
over T, and their neuron states are reset after every forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from workbench.models.preprocessing import Preprocessing


@dataclass
class Network:
    """A zoo architecture being trained.

    Attributes
    ----------
    name : str
        Registry name of the architecture (``workbench models list``).
    kwargs : dict
        Keyword arguments it was built with (e.g. ``num_classes``); the model card keeps them.
    family : {"snn", "cnn", "vit"}
    module : nn.Module
        The network (its parameters are trained in place).
    layers : tuple of str
        Declared analysis layers.
    time_steps : int
        T for spiking networks, 1 otherwise.
    preprocessing : Preprocessing
        What the architecture declares untrained; a run replaces it with its data's.
    """

    name: str
    kwargs: dict[str, Any]
    family: str
    module: nn.Module
    layers: tuple[str, ...]
    time_steps: int
    preprocessing: Preprocessing = field(default_factory=Preprocessing)

    @property
    def is_spiking(self) -> bool:
        return self.family == "snn"

    def logits(self, images: torch.Tensor, module: nn.Module | None = None) -> torch.Tensor:
        """Class scores (N, classes) of images (N, C, H, W); ``module`` overrides (a DDP wrapper)."""
        module = self.module if module is None else module
        if not self.is_spiking:
            return module(images)
        from spikingjelly.activation_based import functional

        steps = images.unsqueeze(0).expand(self.time_steps, *images.shape)
        try:
            return module(steps).mean(0)
        finally:
            functional.reset_net(self.module)


def build_network(name: str, *, time_steps: int | None = None, seed: int | None = None, **kwargs) -> Network:
    """Build the zoo architecture ``name`` with fresh weights, trainable.

    Parameters
    ----------
    name : str
        A registered architecture.
    time_steps : int, optional
        T of a spiking network (default: the architecture's).
    seed : int, optional
        Seeds the initialisation (without touching the global RNG's state afterwards).
    **kwargs
        Passed to the architecture's factory (e.g. ``num_classes=10``).
    """
    from workbench.models.registry import build_architecture, model_family

    family = model_family(name)
    if seed is None:
        arch = build_architecture(name, **kwargs)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            arch = build_architecture(name, **kwargs)
    arch.module.train()
    steps = int(time_steps) if (time_steps is not None and family == "snn") else int(arch.time_steps)
    return Network(name, dict(kwargs), family, arch.module, tuple(arch.layers), steps, arch.preprocessing)
