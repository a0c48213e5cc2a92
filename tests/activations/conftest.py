import numpy as np
import pytest
import torch

from workbench.models import create


@pytest.fixture(scope="session")
def images():
    """Seven small RGB images and one grayscale image (uint8 arrays of different sizes)."""
    rng = np.random.default_rng(0)
    rgb = [rng.integers(0, 256, (40 + i, 48, 3), dtype=np.uint8) for i in range(7)]
    return rgb + [rng.integers(0, 256, (36, 36), dtype=np.uint8)]


@pytest.fixture
def sew8():
    """SEW-ResNet-8 (random weights, seed 0) at 48 px: a fast spiking network."""
    return create("sew_resnet8").with_preprocessing(input_size=48)


@pytest.fixture
def cornet():
    return create("cornet_z").with_preprocessing(input_size=48)


class ForwardCounter:
    """Counts calls of a module's forward (a forward pre-hook)."""

    def __init__(self, module: torch.nn.Module):
        self.calls = 0
        self._handle = module.register_forward_pre_hook(self._count)

    def _count(self, *_):
        self.calls += 1


@pytest.fixture
def count_forward():
    return ForwardCounter
