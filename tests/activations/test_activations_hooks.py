"""layer_outputs: the methods' small analyses read hooked layer outputs through it."""

import numpy as np
import pytest
import torch
from torch import nn

from workbench.activations.hooks import layer_outputs
from workbench.errors import ValidationError


class _Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(4 * 6 * 6, 2)

    def forward(self, x, scale=1.0):
        x = self.drop(self.conv(x) * scale)
        return self.head(x.flatten(1))


def test_outputs_equal_a_direct_forward_in_eval_mode_and_the_mode_is_restored():
    torch.manual_seed(0)
    net, x = _Scaled(), torch.randn(5, 3, 8, 8)
    net.train()
    out = layer_outputs(net, ["conv", "head"], x, scale=2.0)
    assert net.training  # restored
    net.eval()
    with torch.no_grad():
        conv = net.conv(x)
        head = net.head((conv * 2.0).flatten(1))  # dropout off in eval mode
    assert out["conv"].dtype == np.float64 and out["conv"].shape == (5, 4 * 6 * 6)
    np.testing.assert_allclose(out["conv"], conv.flatten(1).double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(out["head"], head.double().numpy(), rtol=1e-6)


def test_an_unknown_layer_is_named_before_anything_runs():
    with pytest.raises(ValidationError, match=r"\['nope'\] are not submodules of _Scaled"):
        layer_outputs(_Scaled(), ["conv", "nope"], torch.randn(1, 3, 8, 8))
