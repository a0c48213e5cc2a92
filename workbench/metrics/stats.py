"""Sufficient statistics of a feature matrix, accumulable chunk by chunk over features.

Every metric in :mod:`workbench.metrics` needs only the stimulus-by-stimulus Gram matrix
``X @ X.T`` of the model features ``X`` (n_stimuli x n_features), their row sums and the
number of features. :class:`GramStats` holds exactly that, so a layer of 3,200 stimuli x
800,000 features can be scored without ever being held in memory: feed it column chunks.
"""

from __future__ import annotations

import os

import numpy as np

from workbench.errors import DataError, ValidationError
from workbench.validation import check_array, check_choice, check_finite

_DTYPES = {"float32": np.float32, "float64": np.float64}


class GramStats:
    """Gram matrix, row sums and feature count of a features matrix ``X``.

    Parameters
    ----------
    n_stimuli : int
        Number of rows (stimuli) of ``X``.
    dtype : {"float32", "float64"}, default: "float32"
        Precision in which each chunk's product is computed; products are accumulated in
        float64 either way.

    Attributes
    ----------
    gram : ndarray of shape (n_stimuli, n_stimuli), float64
        ``X @ X.T``.
    row_sums : ndarray of shape (n_stimuli,), float64
        ``X.sum(axis=1)``.
    n_features : int
        Number of columns of ``X`` seen so far.
    """

    def __init__(self, n_stimuli: int, dtype: str = "float32"):
        if int(n_stimuli) < 1:
            raise ValidationError(f"n_stimuli must be >= 1, found {n_stimuli}")
        check_choice(dtype, "dtype", _DTYPES)
        self.dtype = dtype
        self.gram = np.zeros((int(n_stimuli), int(n_stimuli)), dtype=np.float64)
        self.row_sums = np.zeros(int(n_stimuli), dtype=np.float64)
        self.n_features = 0

    @property
    def n_stimuli(self) -> int:
        return self.gram.shape[0]

    def update(self, chunk, *, name: str = "chunk") -> "GramStats":
        """Add the columns of ``chunk`` (n_stimuli x d_chunk) to the statistics; returns self.

        NaN or inf in ``chunk`` raise (``name`` is used in the message), as does a product
        that overflows; the statistics are left unchanged then.
        """
        chunk = check_array(chunk, name, min_cols=0, finite=False)
        if chunk.shape[0] != self.n_stimuli:
            raise ValidationError(
                f"{name} has {chunk.shape[0]} rows (shape={chunk.shape}); expected one row per "
                f"stimulus, {self.n_stimuli}"
            )
        if chunk.shape[1] == 0:
            return self
        chunk = chunk.astype(_DTYPES[self.dtype], copy=False)
        if chunk.strides[1] != chunk.itemsize:  # BLAS needs unit stride along the features
            chunk = np.ascontiguousarray(chunk)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow raises below
            product = chunk @ chunk.T
            row_sums = chunk.sum(axis=1, dtype=np.float64)
        # the diagonal holds each row's sum of squares: it is finite iff the row is (or the
        # squares overflowed), which spares a pass of np.isfinite over the whole chunk
        if not (np.isfinite(np.diagonal(product)).all() and np.isfinite(row_sums).all()):
            check_finite(chunk, name)
            raise ValidationError(
                f"{name}: {name} @ {name}.T overflows {self.dtype} (largest |value| "
                f"{np.abs(chunk).max():.3g}); rescale the features"
            )
        if self.n_features == 0:
            # the first chunk's statistics are taken as they are: adding them to the zeros of
            # __init__ would first map the untouched zero pages for reading and then copy each
            # 4 KB page on writing (0.1 s for 3,200 x 3,200)
            self.gram = product.astype(np.float64, copy=False)
            self.row_sums = row_sums
        else:
            self.gram += product
            self.row_sums += row_sums
        self.n_features += chunk.shape[1]
        return self

    @classmethod
    def from_array(cls, x, *, chunk_features: int | None = None, name: str = "X") -> "GramStats":
        """Statistics of a whole matrix ``x`` (n_stimuli x n_features), optionally in column chunks.

        The precision follows ``x``: float32 stays float32, anything else is float64.
        ``name`` is the argument's name in error messages.
        """
        x = check_array(x, name, finite=False)
        dtype = "float32" if x.dtype == np.float32 else "float64"
        stats = cls(x.shape[0], dtype=dtype)
        step = x.shape[1] if chunk_features is None else int(chunk_features)
        if step < 1:
            raise ValidationError(f"chunk_features must be >= 1, found {chunk_features}")
        try:
            for start in range(0, x.shape[1], step):
                stats.update(x[:, start : start + step], name=name)
        except ValidationError:
            check_finite(x, name)  # names the index in x rather than in the chunk
            raise
        return stats

    # -- derived quantities -------------------------------------------------------------
    def check_complete(self, name: str = "X") -> None:
        """Raise unless at least one feature was added."""
        if self.n_features == 0:
            raise ValidationError(f"{name} has no features: GramStats.update was never called")

    @property
    def mean(self) -> float:
        """Global mean of all entries of ``X``."""
        self.check_complete()
        return float(self.row_sums.sum() / (self.n_stimuli * self.n_features))

    @property
    def std(self) -> float:
        """Global standard deviation (ddof=0) of all entries of ``X``."""
        self.check_complete()
        n_values = self.n_stimuli * self.n_features
        var = np.trace(self.gram) / n_values - self.mean**2
        return float(np.sqrt(max(var, 0.0)))

    def zscored(self) -> "GramStats":
        """Statistics of ``(X - mean) / std`` with one global mean and std (ddof=0).

        This is the reference study's preprocessing of a layer's features, computed from
        the statistics alone. Raises if ``X`` is constant.
        """
        mean, std = self.mean, self.std
        if not std > 0:
            raise ValidationError("X is constant (global std = 0); it cannot be z-scored")
        d = self.n_features
        r = self.row_sums
        out = GramStats(self.n_stimuli, dtype="float64")
        # (G - mean (r_i + r_j) + mean^2 d) / std^2, a block of rows at a time (no n x n
        # temporaries; the same operations in the same order, so exactly symmetric)
        shift, scale = mean**2 * d, std**2
        for start in range(0, self.n_stimuli, 256):
            rows = slice(start, start + 256)
            block = np.add(r[rows, None], r[None, :], out=out.gram[rows])
            block *= -mean
            block += self.gram[rows]
            block += shift
            block /= scale
        out.row_sums = (r - mean * d) / std
        out.n_features = d
        out.dtype = self.dtype
        return out

    # -- persistence --------------------------------------------------------------------
    def write_npz(self, path: str | os.PathLike) -> None:
        """Write the statistics to ``path`` as ``.npz``, not atomically: write through
        :func:`workbench.storage.write_verified` (as the activation cache does) or
        :func:`workbench.storage.atomic_path`.
        """
        with open(path, "wb") as fh:
            np.savez(fh, gram=self.gram, row_sums=self.row_sums, n_features=np.int64(self.n_features),
                     dtype=np.str_(self.dtype))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GramStats":
        """Read statistics written by :meth:`write_npz`; a file that is not one raises DataError.

        A truncated file, or one whose members fail the zip CRC, is not readable; a file read
        back from the cache was also checked against its sha256 record first.
        """
        try:
            with np.load(path, allow_pickle=False) as npz:
                gram, row_sums = npz["gram"], npz["row_sums"]
                n_features, dtype = int(npz["n_features"]), str(npz["dtype"])
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise DataError(f"{path}: not a readable GramStats file ({type(exc).__name__}: {exc})") from exc
        if gram.ndim != 2 or gram.shape[0] != gram.shape[1] or row_sums.shape != gram.shape[:1]:
            raise DataError(
                f"{path}: gram {gram.shape} and row_sums {row_sums.shape} do not describe one "
                "n x n Gram matrix with n row sums"
            )
        stats = cls(gram.shape[0], dtype=dtype)
        stats.gram, stats.row_sums, stats.n_features = gram, row_sums, n_features
        return stats
