"""Gram statistics accumulated on the extraction device (torch), batch by batch.

:class:`DeviceGram` keeps a layer's flattened activations on the device where the network
runs and extends the n x n Gram matrix with every batch of stimuli: the rows of batch ``k``
against every row so far, ``G[k, :k+1] = X_k @ X_{:k+1}.T``, mirrored into the upper
triangle (the batch's own block from its lower triangle, so that the matrix is exactly
symmetric). Only the finished n x n Gram matrix, the row sums and the feature count leave the
device (:meth:`DeviceGram.gram_stats`); nothing is spilled to the host unless the caller
asks for the activations themselves.

Precision. As in :meth:`workbench.metrics.GramStats.update` with ``dtype="float32"``: every
product is a float32 matrix product (TF32 is switched off for it, whatever the process set)
accumulated into float64, and the row sums are float64 sums, so the statistics equal the
numpy path's up to float32 rounding (a relative 1e-6 in the tests).

Memory. The device holds, per layer, the (n_stimuli, n_features) float32 activations and the
n x n float64 Gram matrix; :func:`device_layers` decides which layers fit a byte budget, the
others go through the host spill (:class:`workbench.activations.streaming.FeatureSpill`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from workbench.errors import ValidationError
from workbench.metrics.stats import GramStats

_ITEM = 4  # float32 bytes
#: Share of the device's free memory that device statistics may fill by default.
DEFAULT_DEVICE_SHARE = 0.5


@contextlib.contextmanager
def exact_float32_matmul() -> Iterator[None]:
    """Full float32 products on CUDA (no TF32), restoring the process's setting after."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


class DeviceGram:
    """One layer's Gram statistics, accumulated on ``device`` as row batches arrive.

    Parameters
    ----------
    n_stimuli, n_features : int
        Shape of the layer's flattened activation matrix ``X``.
    device : str or torch.device
        Where ``X``'s rows and the Gram matrix live (the network's device).
    name : str, default: "features"
        Used in error messages (e.g. ``"sew_resnet18 layer1.0"``).
    """

    def __init__(self, n_stimuli: int, n_features: int, device, *, name: str = "features"):
        self.n_stimuli, self.n_features = int(n_stimuli), int(n_features)
        self.name = name
        self.rows = 0
        with torch.inference_mode():  # as the extraction's tensors are, on any thread
            self._x = torch.empty((self.n_stimuli, self.n_features), dtype=torch.float32,
                                  device=device)
            self._gram = torch.zeros((self.n_stimuli, self.n_stimuli), dtype=torch.float64,
                                     device=device)
            self._row_sums = torch.zeros(self.n_stimuli, dtype=torch.float64, device=device)

    @staticmethod
    def nbytes(n_stimuli: int, n_features: int) -> int:
        """Device bytes one layer takes: its float32 rows and its float64 n x n Gram matrix."""
        return int(n_stimuli) * int(n_features) * _ITEM + int(n_stimuli) ** 2 * 8

    def append(self, batch: torch.Tensor) -> None:
        """Add the next ``b`` stimuli's rows, a (b, n_features) float32 tensor on the device."""
        b = batch.shape[0]
        if tuple(batch.shape[1:]) != (self.n_features,) or self.rows + b > self.n_stimuli:
            raise ValidationError(
                f"{self.name}: batch of shape {tuple(batch.shape)} does not fit rows "
                f"{self.rows}.. of a ({self.n_stimuli}, {self.n_features}) matrix")
        lo, hi = self.rows, self.rows + b
        with torch.inference_mode(), exact_float32_matmul():
            self._x[lo:hi] = batch
            cross = (self._x[lo:hi] @ self._x[:hi].T).to(torch.float64)
            block = cross[:, lo:]  # the batch against itself: symmetric, from its lower triangle
            cross[:, lo:] = torch.tril(block) + torch.tril(block, diagonal=-1).T
            self._gram[lo:hi, :hi] = cross
            self._gram[:lo, lo:hi] = cross[:, :lo].T
            self._row_sums[lo:hi] = self._x[lo:hi].sum(dim=1, dtype=torch.float64)
        self.rows = hi

    def gram_stats(self) -> GramStats:
        """The finished statistics as a host :class:`~workbench.metrics.GramStats`.

        Raises
        ------
        ValidationError
            Not every row was appended, or the activations hold NaN/inf or their products
            overflow float32 (the message names the layer).
        """
        if self.rows != self.n_stimuli:
            raise ValidationError(f"{self.name}: only {self.rows} of {self.n_stimuli} rows were "
                                  "appended")
        gram = self._gram.cpu().numpy()
        row_sums = self._row_sums.cpu().numpy()
        if not (np.isfinite(np.diagonal(gram)).all() and np.isfinite(row_sums).all()):
            finite = bool(torch.isfinite(self._x).all())
            raise ValidationError(
                f"{self.name}: " + ("the activations hold NaN or inf" if not finite else
                                    f"{self.name} @ {self.name}.T overflows float32; rescale "
                                    "the features"))
        stats = GramStats(self.n_stimuli, dtype="float32")
        stats.gram, stats.row_sums, stats.n_features = gram, row_sums, self.n_features
        return stats

    def discard(self) -> None:
        """Free the device memory."""
        self._x = self._gram = self._row_sums = None


def device_budget(device, device_bytes: int | None) -> int | None:
    """Bytes device statistics may take: ``device_bytes``, else :data:`DEFAULT_DEVICE_SHARE`
    of a CUDA device's free memory; None (no limit) for another device."""
    if device_bytes is not None:
        return int(device_bytes)
    device = torch.device(device)
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free * DEFAULT_DEVICE_SHARE)


def device_layers(sizes: dict, n_stimuli: int, budget: int | None) -> set:
    """The keys of ``sizes`` (key -> n_features) whose :class:`DeviceGram` fit ``budget``
    together, taken in order, a layer that does not fit in what is left being skipped (None:
    all of them)."""
    chosen, used = set(), 0
    for key, n_features in sizes.items():
        need = DeviceGram.nbytes(n_stimuli, n_features)
        if budget is None or used + need <= budget:
            chosen.add(key)
            used += need
    return chosen
