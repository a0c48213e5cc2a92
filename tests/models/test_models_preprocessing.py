"""Input preprocessing: grayscale to 3 channels, resizing, normalisation."""

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.errors import ValidationError
from workbench.models import Preprocessing


def test_constant_image_is_normalised_exactly():
    prep = Preprocessing(input_size=16, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    x = prep(np.full((20, 30, 3), 51, dtype=np.uint8))
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    v = 51 / 255
    expected = torch.tensor([(v - 0.5) / 0.5, (v - 0.25) / 0.25, v / 2.0])
    assert torch.allclose(x, expected[:, None, None].expand(3, 16, 16), atol=1e-6)


def test_grayscale_becomes_three_equal_channels():
    gray = np.random.default_rng(0).integers(0, 256, (24, 24), dtype=np.uint8)
    prep = Preprocessing(input_size=24, mean=(0.5,) * 3, std=(0.5,) * 3)
    for image in (gray, gray[:, :, None], Image.fromarray(gray, mode="L")):
        x = prep(image)
        assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
        assert torch.allclose(x[0], torch.from_numpy(gray / 255.0).float() * 2 - 1, atol=1e-6)


def test_pil_and_array_give_the_same_tensor():
    rgb = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    prep = Preprocessing(input_size=32)
    assert torch.equal(prep(rgb), prep(Image.fromarray(rgb)))
    rgba = np.concatenate([rgb, np.zeros((30, 40, 1), np.uint8)], axis=2)
    assert torch.equal(prep(rgba), prep(rgb))


def test_centre_crop_keeps_the_middle():
    image = np.zeros((40, 40, 3), np.uint8)
    image[10:30, 10:30] = 255
    x = Preprocessing(input_size=20, resize_size=40, mean=(0,) * 3, std=(1,) * 3)(image)
    assert torch.all(x == 1.0)


def test_bad_inputs_and_settings():
    with pytest.raises(ValidationError, match="dtype uint8.*found float64"):
        Preprocessing()(np.zeros((4, 4, 3)))
    with pytest.raises(ValidationError, match=r"found \(4, 4, 2\)"):
        Preprocessing()(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValidationError, match="resize_size=100 is smaller than input_size=224"):
        Preprocessing(resize_size=100)
    with pytest.raises(ValidationError, match="interpolation='cubic'"):
        Preprocessing(interpolation="cubic")


def test_identity_changes_with_settings():
    assert Preprocessing().identity() == Preprocessing().identity()
    assert Preprocessing(input_size=64).identity() != Preprocessing().identity()
