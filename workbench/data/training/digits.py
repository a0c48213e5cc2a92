"""``digits32``: scikit-learn's 8x8 handwritten digits, upsampled to 32x32 RGB, in memory."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from workbench.models.preprocessing import Preprocessing

#: Side of the upsampled images, in pixels.
SIZE = 32
#: Fraction of the 1,797 images held out as the test split (stratified by class).
TEST_FRACTION = 0.25
#: ``random_state`` of the split; fixed, independent of any training seed.
SPLIT_SEED = 0
#: Largest random translation of a training image, in pixels (each axis).
MAX_SHIFT = 2
#: Bumped whenever the recipe (scaling, upsampling, split) changes; part of the fingerprint.
RECIPE = "digits32/v1: load_digits/16, bilinear 8->32 align_corners=False, stratified 75/25 rs=0"


class ShiftedImages(torch.utils.data.Dataset):
    """Grey images held in memory, returned as 3-channel tensors, optionally randomly shifted.

    Parameters
    ----------
    images : torch.Tensor
        Float32, shape (N, 1, H, W), already normalised.
    labels : torch.Tensor
        Int64, shape (N,).
    max_shift : int, default: 0
        With ``s > 0`` each access translates the image by a uniform random integer offset in
        ``[-s, s]`` along each axis (two draws of ``torch.randint`` from the global RNG),
        filling the uncovered border with ``fill``. 0: no augmentation.
    fill : float, default: 0.0
        Value of the uncovered border, in the (normalised) units of ``images``.
    indices : array-like of int, optional
        Where each image comes from (for ``digits32``: its row in ``load_digits()``); kept
        as the ``indices`` attribute (an int64 ndarray) for provenance.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, max_shift: int = 0,
                 fill: float = 0.0, indices=None):
        if images.ndim != 4 or images.shape[1] != 1 or len(labels) != len(images):
            raise ValueError(
                f"images must have shape (N, 1, H, W) and labels (N,), found "
                f"{tuple(images.shape)} and {tuple(labels.shape)}"
            )
        self._images = images.contiguous()
        self._labels = labels
        self.targets = labels.tolist()
        self.indices = (np.arange(len(labels)) if indices is None
                        else np.asarray(indices, dtype=np.int64))
        self.max_shift = int(max_shift)
        self._size = tuple(images.shape[-2:])
        if self.max_shift > 0:
            s = self.max_shift
            self._padded = F.pad(self._images, (s, s, s, s), value=float(fill))

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index):
        if self.max_shift > 0:
            h, w = self._size
            top, left = torch.randint(0, 2 * self.max_shift + 1, (2,)).tolist()
            x = self._padded[index, :, top:top + h, left:left + w]
        else:
            x = self._images[index]
        return x.expand(3, -1, -1).contiguous(), self.targets[index]


def split_indices(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed stratified split: sorted train and test indices into the 1,797 digits."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(len(targets)), test_size=TEST_FRACTION,
                                   stratify=targets, random_state=SPLIT_SEED)
    return np.sort(train), np.sort(test)


def load_digits32(*, augment: bool = True):
    """Build the ``digits32`` :class:`~workbench.data.training.TrainingData`.

    Steps: ``sklearn.datasets.load_digits`` (1,797 images, 8x8, integer values 0..16) divided
    by 16 to [0, 1]; upsampled to 32x32 with ``F.interpolate(mode="bilinear",
    align_corners=False)`` in float64; the fixed stratified split of :func:`split_indices`
    (train 1,347, test 450); normalised with the mean and (population) std of every pixel of
    the train split (mean ~0.30522, std ~0.32354); grey replicated to 3 channels on access.
    Training augmentation: a random shift of up to :data:`MAX_SHIFT` px per axis over the
    blank background (raw value 0, i.e. ``-mean/std`` after normalisation).
    """
    from sklearn.datasets import load_digits

    from workbench.data.training.base import TrainingData

    bunch = load_digits()
    raw = np.asarray(bunch.images, dtype=np.float64)  # (1797, 8, 8), values 0..16
    targets = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = split_indices(targets)

    x = torch.from_numpy(raw / 16.0)[:, None]
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    train_pixels = x[torch.from_numpy(train_idx)].numpy()
    mean = float(train_pixels.mean())
    std = float(train_pixels.std())
    x = ((x - mean) / std).to(torch.float32)
    labels = torch.from_numpy(targets)

    fill = (0.0 - mean) / std
    shift = MAX_SHIFT if augment else 0
    tr = torch.from_numpy(train_idx)
    te = torch.from_numpy(test_idx)
    train = ShiftedImages(x[tr], labels[tr], max_shift=shift, fill=fill, indices=train_idx)
    test = ShiftedImages(x[te], labels[te], indices=test_idx)

    digest = hashlib.sha256(RECIPE.encode())
    for arr in (raw.astype("<f8"), targets.astype("<i8"), train_idx.astype("<i8"),
                test_idx.astype("<i8")):
        digest.update(repr(arr.shape).encode())
        digest.update(arr.tobytes())

    classes = tuple(str(c) for c in bunch.target_names)
    aug = (f"random shift up to {MAX_SHIFT} px over the blank background" if augment
           else "no augmentation")
    description = (
        f"scikit-learn digits ({len(targets):,} 8x8 images) upsampled to {SIZE}x{SIZE}, grey "
        f"as RGB; fixed stratified split train {len(train_idx):,} / test {len(test_idx):,} "
        f"(random_state={SPLIT_SEED}); train augmentation: {aug}"
    )
    return TrainingData(
        name="digits32",
        train=train,
        test=test,
        num_classes=len(classes),
        classes=classes,
        preprocessing=Preprocessing(input_size=SIZE, mean=(mean,) * 3, std=(std,) * 3),
        fingerprint=digest.hexdigest(),
        description=description,
    )
