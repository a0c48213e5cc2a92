"""JPEG versions of a training dataset's images, encoded with Pillow on access.

:class:`JpegVersions` wraps a split of :func:`workbench.data.training.load_training_data`: item
``i`` is ``(versions, label)`` with ``versions`` (Q, 3, H, W), the base item's image (augmented
by the base dataset when it was loaded with ``augment=True``: one draw, shared by every version)
encoded and decoded at each quality of ``qualities`` and normalised back. The pixels are
recovered from the normalised image as ``round(clip(x * std + mean, 0, 1) * 255)`` (uint8 RGB);
quality ``None`` is the uncompressed version (that uint8 image, not encoded).

Deterministic: the JPEG codec is, and any randomness is the base dataset's (torch's global RNG).
With ``cache=True`` (only for a base split without augmentation) every item is encoded once.

:class:`JointAugment` augments the decoded versions afterwards, as the reference code does
(encode first, then reflect-pad, flip, crop; one draw for every version), and
:class:`MetaPairs` pairs each stage-2 item with an independently drawn meta-test image.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from workbench.errors import ValidationError
from workbench.methods.qsam.jpeg import decode, encode_jpeg


def to_pixels(image: torch.Tensor, mean, std) -> np.ndarray:
    """uint8 (H, W, 3) pixels of a normalised float image (3, H, W)."""
    m = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.as_tensor(std, dtype=torch.float32)[:, None, None]
    x = (image.float() * s + m).clamp(0.0, 1.0)
    return (x * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy().copy()


def from_pixels(pixels: np.ndarray, mean, std) -> torch.Tensor:
    """Normalised float32 image (3, H, W) of uint8 (H, W, 3) pixels."""
    m = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.as_tensor(std, dtype=torch.float32)[:, None, None]
    x = torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0
    return (x - m) / s


class JpegVersions(torch.utils.data.Dataset):
    """Every item of ``base`` at each JPEG quality of ``qualities`` (see the module docstring).

    Parameters
    ----------
    base : Dataset
        Items ``(normalised float image (3, H, W), int label)``.
    qualities : sequence of int or None
        JPEG qualities 1..100; ``None`` for the uncompressed version.
    mean, std : sequence of 3 floats
        The normalisation of ``base`` (``TrainingData.preprocessing``).
    cache : bool, default: False
        Keep each encoded item (only valid when ``base`` is deterministic).
    """

    def __init__(self, base, qualities, mean, std, *, cache: bool = False):
        qualities = tuple(None if q is None else int(q) for q in qualities)
        bad = [q for q in qualities if q is not None and not 1 <= q <= 100]
        if not qualities or bad:
            raise ValidationError(f"qualities must be a non-empty list of JPEG qualities in 1..100 (or None), "
                                  f"found {list(qualities)}")
        self.base, self.qualities = base, qualities
        self.mean, self.std = tuple(mean), tuple(std)
        self.targets = list(getattr(base, "targets", [base[i][1] for i in range(len(base))]))
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.base)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(Q, 3, H, W) versions of one normalised image."""
        pixels = to_pixels(image, self.mean, self.std)
        out = []
        for quality in self.qualities:
            decoded = pixels if quality is None else decode(encode_jpeg(pixels, quality))[0]
            out.append(from_pixels(decoded, self.mean, self.std))
        return torch.stack(out)

    def __getitem__(self, index):
        if self._cache is not None and index in self._cache:
            return self._cache[index], self.targets[index]
        image, label = self.base[index]
        versions = self.encode(image)
        if self._cache is not None:
            self._cache[index] = versions
        return versions, int(label)


class SelectVersions(torch.utils.data.Dataset):
    """Items ``(versions[indices], label)`` of a :class:`JpegVersions` (shares its cache)."""

    def __init__(self, versions: JpegVersions, indices):
        self.versions, self.indices = versions, list(indices)
        self.qualities = tuple(versions.qualities[i] for i in self.indices)
        self.targets = versions.targets

    def __len__(self) -> int:
        return len(self.versions)

    def __getitem__(self, index):
        items, label = self.versions[index]
        return items[self.indices], label


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes (lossless) of uint8 RGB pixels (H, W, 3)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def encoded_files(base, quality: int | None, mean, std) -> list[bytes]:
    """Each image of ``base`` as the file a user would hand over: JPEG bytes, or PNG bytes for ``None``."""
    files = []
    for i in range(len(base)):
        pixels = to_pixels(base[i][0], mean, std)
        files.append(encode_png(pixels) if quality is None else encode_jpeg(pixels, quality))
    return files


def reflect_flip_crop(versions: torch.Tensor, pad: int, top: int, left: int, flip: bool) -> torch.Tensor:
    """One draw of the reference's stage-1 augmentation, applied to every version alike.

    ``versions`` (Q, 3, H, W) (already JPEG-decoded and normalised) are reflect-padded by
    ``pad`` pixels, flipped horizontally if ``flip``, and cropped back to H x W at
    (``top``, ``left``) of the padded image: the order of the reference code (LiMaPKU/QSAM:
    encode, ``Pad(4, reflect)``, ``RandomHorizontalFlip``, ``RandomCrop(32)``). Reflection and
    flips commute with the per-channel normalisation, so this equals augmenting the decoded
    pixels and normalising afterwards.
    """
    h, w = versions.shape[-2:]
    x = F.pad(versions, (pad, pad, pad, pad), mode="reflect") if pad else versions
    if flip:
        x = x.flip(-1)
    return x[..., top:top + h, left:left + w]


class JointAugment(torch.utils.data.Dataset):
    """Items ``(reflect_flip_crop(versions, pad, ...), label)`` of a dataset of JPEG versions.

    Each item draws from torch's global RNG, in this order, ``top`` and ``left`` (``randint``
    in ``[0, 2 pad]``) and the flip (``rand < 0.5``); the draw is shared by the Q versions.
    """

    def __init__(self, versions, pad: int = 4):
        self.versions, self.pad = versions, int(pad)
        self.qualities = versions.qualities
        self.targets = versions.targets

    def __len__(self) -> int:
        return len(self.versions)

    def __getitem__(self, index):
        items, label = self.versions[index]
        top = int(torch.randint(0, 2 * self.pad + 1, size=()))
        left = int(torch.randint(0, 2 * self.pad + 1, size=()))
        flip = bool(torch.rand(1) < 0.5)
        return reflect_flip_crop(items, self.pad, top, left, flip), label


class MetaPairs(torch.utils.data.Dataset):
    """Stage 2's items from two datasets of versions, as the reference's separate loaders draw them.

    Item ``i`` is ``(cat(train_versions[i], test_versions[j]), tensor([label_i, label_j]))``
    with ``j`` drawn uniformly from torch's global RNG: the meta-train and the meta-test image
    of a step are independent draws from the training set (the reference code iterates one
    shuffled loader per quality, its meta-train and meta-test loaders separately).
    """

    def __init__(self, train_versions, test_versions):
        if len(train_versions) != len(test_versions):
            raise ValidationError(f"MetaPairs: the two datasets differ in length ({len(train_versions)} "
                                  f"and {len(test_versions)})")
        self.train_versions, self.test_versions = train_versions, test_versions
        self.qualities = tuple(train_versions.qualities) + tuple(test_versions.qualities)
        self.targets = train_versions.targets

    def __len__(self) -> int:
        return len(self.train_versions)

    def __getitem__(self, index):
        other = int(torch.randint(0, len(self.test_versions), size=()))
        first, label = self.train_versions[index]
        second, other_label = self.test_versions[other]
        return torch.cat([first, second]), torch.tensor([int(label), int(other_label)])
