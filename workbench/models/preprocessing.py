"""How a model wants its input images: size, normalisation and interpolation.

A :class:`Preprocessing` is declared once per registered model (like timm's pretrained
config) and both the extractor and the cache key are derived from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from workbench.errors import ValidationError
from workbench.validation import check_choice

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_INTERPOLATIONS = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


@dataclass(frozen=True)
class Preprocessing:
    """Input preprocessing of a model.

    Parameters
    ----------
    input_size : int, default: 224
        Side of the square image the network receives, in pixels.
    mean, std : tuple of 3 floats, default: ImageNet statistics
        Per-channel normalisation applied to pixel values scaled to [0, 1].
    interpolation : {"bilinear", "bicubic", "nearest"}, default: "bilinear"
        Resampling used when resizing (antialiased for downscaling).
    resize_size : int or None, default: None
        ``None`` resizes the whole image to ``input_size`` x ``input_size`` (no pixel of the
        stimulus is lost, as in the reference study). An int resizes the shorter side to
        ``resize_size`` and takes the central ``input_size`` crop (ImageNet evaluation style).
    """

    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    resize_size: int | None = None

    def __post_init__(self):
        check_choice(self.interpolation, "interpolation", _INTERPOLATIONS)
        if int(self.input_size) < 1:
            raise ValidationError(f"input_size must be >= 1 pixel, found {self.input_size}")
        if self.resize_size is not None and self.resize_size < self.input_size:
            raise ValidationError(
                f"resize_size={self.resize_size} is smaller than input_size={self.input_size}; "
                "the centre crop needs resize_size >= input_size (or resize_size=None)"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValidationError(
                f"mean and std must hold 3 values with std > 0, found mean={self.mean}, std={self.std}"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def identity(self) -> str:
        """A short hash of the settings, for cache keys and report headers."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __call__(self, image) -> torch.Tensor:
        """Turn one image into a normalised float32 tensor of shape (3, input_size, input_size).

        Parameters
        ----------
        image : PIL.Image.Image or ndarray
            A PIL image (any mode), or a uint8 array of shape (H, W) (grayscale),
            (H, W, 1), (H, W, 3) or (H, W, 4) (alpha is dropped). Grayscale becomes 3 channels.
        """
        x = image_to_uint8_tensor(image)
        mode = _INTERPOLATIONS[self.interpolation]
        if self.resize_size is None:
            x = TF.resize(x, [self.input_size, self.input_size], interpolation=mode, antialias=True)
        else:
            x = TF.resize(x, [self.resize_size], interpolation=mode, antialias=True)
            x = TF.center_crop(x, [self.input_size, self.input_size])
        x = x.to(torch.float32).div_(255.0)
        return TF.normalize(x, list(self.mean), list(self.std))


def image_to_uint8_tensor(image) -> torch.Tensor:
    """Convert a PIL image or a uint8 array to a (3, H, W) uint8 tensor (grayscale -> RGB)."""
    if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL image
        arr = np.asarray(image.convert("RGB"))
    else:
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise ValidationError(
                f"image array must have dtype uint8 (pixel values 0-255), found {arr.dtype} "
                f"with shape {arr.shape}"
            )
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        elif arr.ndim == 3 and arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        elif arr.ndim == 3 and arr.shape[2] == 4:
            arr = arr[:, :, :3]
        elif not (arr.ndim == 3 and arr.shape[2] == 3):
            raise ValidationError(
                f"image array must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
                f"found {arr.shape}"
            )
    return torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1)
