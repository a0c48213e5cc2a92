"""Stimulus-permutation nulls of the metrics, computed from the statistics already held.

The null distribution of a score is what the metric gives when the neural side's stimulus
order is shuffled: ``metric(X, Y[pi])`` for ``P`` random permutations ``pi`` of the stimuli.
Nothing is extracted again and no metric is recomputed from scratch; each null reuses what
the observed score has already computed:

- **CKA** (every kernel): centring commutes with permuting the stimuli, so the permuted
  centred kernel of ``Y`` is ``Lc[pi][:, pi]`` and only the cross term
  ``<Kc, Lc[pi][:, pi]>`` changes (the self terms do not).
- **RSA**: ranking commutes with permuting, so the permuted RDM's centred ranks are the
  ranks of ``Y``'s RDM at ``[pi][:, pi]``; only their inner product with the layer's ranks
  changes (Spearman's rho of two fixed, centred rank vectors).

  Both are *quadratic forms* ``sum_ij A_ij B_{pi(i) pi(j)}`` of a layer-side matrix ``A`` and
  a neural-side matrix ``B``. :class:`PermutedQuadraticForms` evaluates them for many layers
  at once: each permuted ``B`` is gathered once, tile by tile of its upper triangle, and
  multiplied against every buffered layer in one matrix product per tile.
- **SVCCA**: the orthonormal basis of the centred, reduced model side ``Qx`` is fixed; a
  basis of the permuted neural side is the permuted basis ``Qy[pi]``, so each null score is
  the mean singular value of a small ``Qx^T Qy[pi]`` (k x k_y) (:class:`PermutedSVCCA`).
- **TSVD regression**: the leave-one-out ridge operator of the model's components (the hat
  matrix, its leverages) is fixed; only the targets ``Y[pi]`` change, and the sums that
  Pearson's r needs are ``3 (k + 1)`` fixed rows times ``Y[pi]`` (:class:`PermutedRegressions`).

  Both are products of layer-side rows with a permuted neural side: each batch of
  permutations builds ``Y[pi]`` once and multiplies it with the rows of every buffered layer
  in one product.

The same permutations (:func:`stimulus_permutations`, seeded) are used for every layer, so
nulls of different layers (and models) of one region are comparable.
"""

from __future__ import annotations

import warnings

import numpy as np

from workbench.errors import ValidationError
from workbench.metrics.blas import batch_workers, map_batches, single_threaded_blas
from workbench.metrics.derived import DerivedStats, prepare_pair

#: Bytes of permuted neural-side values gathered at once by :class:`PermutedQuadraticForms`
#: (a tile that stays in the caches; 2 MB, measured).
TILE_BYTES = 2 * 2**20
#: Bytes of buffered layer-side matrices before :class:`PermutedQuadraticForms`,
#: :class:`PermutedSVCCA` or :class:`PermutedRegressions` evaluates them.
BUFFER_BYTES = 128 * 2**20
#: Bytes of permuted neural side per batch of the SVCCA and regression nulls (4 MB, measured).
_BATCH_BYTES = 4 * 2**20
#: Held-out predictions whose spread is below this fraction of their norm are scored from the
#: predictions themselves (:class:`PermutedRegressions`): the sums lose such a spread to rounding.
_SPREAD_RTOL = 1e-6


def stimulus_permutations(n_stimuli: int, n_permutations: int, seed: int = 0) -> np.ndarray:
    """``n_permutations`` random permutations of ``range(n_stimuli)``, reproducible by ``seed``.

    Returns
    -------
    ndarray of shape (n_permutations, n_stimuli), int64
        Row ``p`` is one permutation ``pi``: the null pairs stimulus ``i`` of the model with
        stimulus ``pi[i]`` of the neural side. The same ``(n_stimuli, n_permutations, seed)``
        always gives the same rows.
    """
    n, p = int(n_stimuli), int(n_permutations)
    if n < 2:
        raise ValidationError(f"n_stimuli must be >= 2 to permute, found {n_stimuli}")
    if p < 1:
        raise ValidationError(f"n_permutations must be >= 1, found {n_permutations}")
    rng = np.random.default_rng(int(seed))
    return rng.permuted(np.tile(np.arange(n, dtype=np.int64), (p, 1)), axis=1)


def null_summary(null: np.ndarray, observed: float) -> tuple[float, float, float]:
    """Mean, 95th percentile and permutation p-value of a null distribution.

    Parameters
    ----------
    null : ndarray of shape (P,)
        Null scores; NaN entries (a permutation the metric could not score) are left out.
    observed : float
        The score with the stimuli in their true order.

    Returns
    -------
    (null_mean, null_p95, p_value) : tuple of float
        ``p_value = (1 + #{null >= observed}) / (1 + P)`` over the finite null scores: the
        one-sided test that the observed score is above chance, never 0 (at best
        ``1 / (1 + P)``). All NaN when ``observed`` is NaN or no null score is finite.
    """
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    if null.size == 0 or not np.isfinite(observed):
        return np.nan, np.nan, np.nan
    p_value = (1.0 + np.count_nonzero(null >= observed)) / (1.0 + null.size)
    return float(null.mean()), float(np.percentile(null, 95)), float(p_value)


# ---------------------------------------------------------------------------- CKA and RSA
def rank_matrix(ranks: np.ndarray, n_stimuli: int) -> np.ndarray:
    """Symmetric (n x n) matrix holding ``ranks`` (the upper triangle, row by row) twice, zero diagonal."""
    out = np.zeros((n_stimuli, n_stimuli))
    out[np.triu_indices(n_stimuli, k=1)] = ranks
    out += out.T
    return out


def even_batches(total: int, largest: int) -> list[tuple[int, int]]:
    """``[(start, stop)]`` covering ``range(total)`` in batches of at most ``largest``, as even as
    possible and as many as a multiple of :func:`~workbench.metrics.blas.batch_workers` (so that
    every thread of :func:`~workbench.metrics.blas.map_batches` gets the same work)."""
    workers = batch_workers()
    count = -(-total // max(1, int(largest)))
    count = min(total, -(-count // workers) * workers)
    size = -(-total // max(1, count))
    return [(start, min(start + size, total)) for start in range(0, total, size)]


def _row_tiles(n: int, largest: int) -> list[tuple[int, int, int, int]]:
    """Consecutive rows of the upper triangle of an n x n matrix, grouped into tiles of at most
    ``largest`` pairs (at least one row each): ``[(first_row, stop_row, first_pair, n_pairs)]``."""
    tiles, row, first = [], 0, 0
    while row < n - 1:
        first_row, fill = row, 0
        while row < n - 1 and (fill == 0 or fill + n - 1 - row <= largest):
            fill += n - 1 - row
            row += 1
        tiles.append((first_row, row, first, fill))
        first += fill
    return tiles


class PermutedQuadraticForms:
    """``q[l, p] = sum_ij A_l[i, j] B[pi_p(i), pi_p(j)]`` for many layers ``l`` and permutations ``p``.

    One or more neural-side matrices ``B`` (symmetric n x n, by name) are fixed; layer-side
    matrices ``A_l`` (symmetric) are buffered with :meth:`add`, as their upper triangle (and
    diagonal), and evaluated together. The upper triangle of ``B[pi][:, pi]`` is gathered
    through the flat indices ``pi_i * n + pi_j``, in tiles of consecutive rows of the triangle
    (:data:`TILE_BYTES` of values for all the permutations of a batch, so that indices and
    values stay in a core's cache; 2-3x faster, measured, than whole permutations at a
    time), and each tile is multiplied against the same columns of every buffered layer:
    per layer, one ``(n (n - 1) / 2) x P`` product rather than ``P`` gathers. The indices of
    a tile are built once (a broadcast sum per row of the triangle) and shared by every ``B``.

    Parameters
    ----------
    bs : dict of str to ndarray of shape (n, n)
        Symmetric neural-side matrices, by name (e.g. ``{"rsa": ..., "cka": ...}``).
    perms : ndarray of shape (P, n), int
    capacity : int, optional
        Layers buffered per name before an evaluation; default as many as fit in
        :data:`BUFFER_BYTES` (at least 1).
    """

    def __init__(self, bs: dict, perms: np.ndarray, capacity: int | None = None):
        self.perms = np.asarray(perms)
        self.bs = {name: np.ascontiguousarray(b, dtype=np.float64) for name, b in bs.items()}
        n = self.perms.shape[1] if self.perms.ndim == 2 else -1
        for name, b in self.bs.items():
            if b.shape != (n, n):
                raise ValidationError(
                    f"B ({name}) must be n x n and perms P x n with the same n; found B {b.shape}, "
                    f"perms {self.perms.shape}"
                )
        self.n = n
        size = n * (n - 1) // 2
        fit = max(1, BUFFER_BYTES // (8 * max(size, 1)))
        self.capacity = fit if capacity is None else max(1, min(int(capacity), fit))
        self._upper = {name: None for name in self.bs}
        self._diag = {name: None for name in self.bs}
        self._keys: dict = {name: [] for name in self.bs}
        self.results: dict = {}

    def add(self, key, name: str, upper: np.ndarray, diag: np.ndarray | None = None) -> None:
        """Buffer one layer's ``A``: its upper triangle (row by row, ``n (n - 1) / 2`` values)
        and diagonal (None: zero); evaluates the buffers first when that of ``name`` is full."""
        if self._upper[name] is None:
            self._upper[name] = np.empty((self.capacity, self.n * (self.n - 1) // 2))
            self._diag[name] = np.empty((self.capacity, self.n))
        if len(self._keys[name]) == self.capacity:  # full: evaluate it (with the others) first
            self.flush()
        row = len(self._keys[name])
        self._upper[name][row] = upper
        self._diag[name][row] = 0.0 if diag is None else diag
        self._keys[name].append(key)

    def flush(self) -> None:
        """Evaluate every buffered layer against every permutation into :attr:`results`.

        The permutations are split into one batch per core
        (:func:`~workbench.metrics.blas.map_batches`), each evaluated tile by tile
        (:func:`_row_tiles`), in buffers of its own.
        """
        names = [name for name in self.bs if self._keys[name]]
        if not names:
            return
        n, n_perms = self.n, self.perms.shape[0]
        counts = {name: len(self._keys[name]) for name in names}
        values = {name: np.empty((counts[name], n_perms)) for name in names}
        flat = {name: self.bs[name].ravel() for name in names}
        diagonal = {name: np.diag(self.bs[name]).copy() for name in names}

        tiles = _row_tiles(n, max(n, TILE_BYTES // (8 * -(-n_perms // batch_workers()))))
        largest = max(fill for _, _, _, fill in tiles)

        def evaluate(batch):
            start, stop = batch
            perms = self.perms[start:stop]
            scaled = perms * n
            c = stop - start
            index_buffer = np.empty(c * largest, dtype=np.intp)
            gathered_buffer = np.empty(c * largest)
            forms = {name: np.zeros((counts[name], c)) for name in names}
            for first_row, stop_row, first, fill in tiles:
                # contiguous (c, fill) views: one row a permutation
                index = index_buffer[:c * fill].reshape(c, fill)
                gathered = gathered_buffer[:c * fill].reshape(c, fill)
                at = 0
                for row in range(first_row, stop_row):  # the flat indices pi_i * n + pi_j, i < j
                    np.add(perms[:, row + 1:], scaled[:, row:row + 1], out=index[:, at:at + n - 1 - row])
                    at += n - 1 - row
                for name in names:  # one index for every B
                    np.take(flat[name], index, out=gathered, mode="clip")  # "raise" buffers out
                    forms[name] += self._upper[name][:counts[name], first:first + fill] @ gathered.T
            for name in names:
                forms[name] *= 2.0  # both triangles
                forms[name] += self._diag[name][:counts[name]] @ diagonal[name][perms].T
                values[name][:, start:stop] = forms[name]

        map_batches(evaluate, even_batches(n_perms, n_perms))
        for name in names:
            for key, row in zip(self._keys[name], values[name]):
                self.results[(key, name)] = row
            self._keys[name] = []

    def pop(self, key, name: str) -> np.ndarray:
        """The P forms of layer ``key`` for ``name`` (evaluating the buffers first if needed)."""
        if (key, name) not in self.results:
            self.flush()
        return self.results.pop((key, name))


def permuted_quadratic_forms(a: np.ndarray, b: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """``sum_ij A[i, j] B[pi(i), pi(j)]`` for each permutation; ``A`` and ``B`` symmetric (n x n).

    Returns an ndarray of shape (P,).
    """
    from workbench.metrics.rsa import upper_triangle

    forms = PermutedQuadraticForms({"b": b}, perms, capacity=1)
    forms.add(0, "b", upper_triangle(a), np.diag(a))
    return forms.pop(0, "b")


def cka_parts(side: DerivedStats, kernel: str = "linear", debiased: bool = False, *,
              pairing: bool = False) -> tuple[np.ndarray, float]:
    """One side's matrix of CKA's Frobenius products (cached on ``side``) and its centred norm.

    The centred kernel (:func:`workbench.metrics.cka.centred_kernel`), or with ``pairing`` the
    matrix that pairs with the other side's centred kernel
    (:func:`workbench.metrics.cka.pairing_kernel`; the layer's uncentred Gram for linear CKA).
    A permutation keeps a kernel centred, so the permuted forms pair the same way.
    """
    from workbench.metrics.cka import centred_kernel, pairing_kernel

    matrix, squared = (pairing_kernel if pairing else centred_kernel)(side, kernel, debiased)
    return matrix, float(np.sqrt(squared))


def rsa_parts(side: DerivedStats) -> tuple[np.ndarray, float]:
    """The symmetric matrix of RSA's centred RDM ranks for one side and the ranks' norm."""
    from workbench.metrics.rsa import centred_rdm_ranks

    ranks = centred_rdm_ranks(side)
    return rank_matrix(ranks, side.n_stimuli), float(np.sqrt(np.dot(ranks, ranks)))


# ---------------------------------------------------------------------------- SVCCA, TSVD regression
def permuted_block(z: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """``z[pi]`` for each permutation ``pi`` in ``perms`` (c of them), side by side.

    Returns an ndarray of shape ``(n, c * m)``: columns ``j*m .. (j+1)*m`` are
    ``z[perms[j]]``, so that one matrix product serves a whole batch of permutations.
    """
    n, m = z.shape
    return np.ascontiguousarray(z[perms].transpose(1, 0, 2)).reshape(n, -1)


class _PermutedProducts:
    """Layer-side matrices ``A_l`` (n x a_l, buffered with :meth:`add`) times one permuted
    neural-side matrix ``Z[pi]`` (n x m), for many layers and permutations at once.

    Each batch of permutations builds ``Z[pi]`` once (:func:`permuted_block`, at most
    :data:`_BATCH_BYTES`, and at most 8 times that of products) and multiplies it with the
    rows of every buffered layer in one product, so that the block is read once for all
    layers while it is in the cache and the product is large enough to run at full speed. Subclasses turn each layer's
    ``A_l^T Z[pi]`` into its null scores (:meth:`_scores`).
    """

    def __init__(self, side: np.ndarray, perms: np.ndarray):
        self.side = np.ascontiguousarray(side, dtype=np.float64)
        self.perms = np.asarray(perms)
        if self.perms.ndim != 2 or self.perms.shape[1] != self.side.shape[0]:
            raise ValidationError(f"perms must have shape (P, {self.side.shape[0]}), found {self.perms.shape}")
        self._rows: list = []  # per layer: (key, A_l^T, what _scores needs)
        self._buffered = 0
        self.results: dict = {}

    def _add(self, key, rows: np.ndarray, extra) -> None:
        if self._buffered + rows.nbytes > BUFFER_BYTES:
            self.flush()
        self._rows.append((key, rows, extra))
        self._buffered += rows.nbytes

    def flush(self) -> None:
        """Evaluate every buffered layer against every permutation into :attr:`results`."""
        if not self._rows:
            return
        stacked = np.vstack([rows for _, rows, _ in self._rows])
        bounds = np.cumsum([0] + [rows.shape[0] for _, rows, _ in self._rows])
        n, m = self.side.shape
        out = np.empty((len(self._rows), self.perms.shape[0]))

        def evaluate(batch):
            start, stop = batch
            products = stacked @ permuted_block(self.side, self.perms[start:stop])  # (sum a_l, c * m)
            for layer, (_, _, extra) in enumerate(self._rows):
                out[layer, start:stop] = self._scores(products[bounds[layer]:bounds[layer + 1]], extra, start, stop)

        # at most _BATCH_BYTES of permuted side and _BATCH_BYTES * 8 of products per batch
        largest = min(_BATCH_BYTES // (8 * n * m), 8 * _BATCH_BYTES // (8 * stacked.shape[0] * m))
        map_batches(evaluate, even_batches(self.perms.shape[0], largest))
        for (key, _, _), row in zip(self._rows, out):
            self.results[key] = row
        self._rows, self._buffered = [], 0

    def pop(self, key) -> np.ndarray:
        """The P null scores of layer ``key`` (evaluating the buffers first if needed)."""
        if key not in self.results:
            self.flush()
        return self.results.pop(key)

    def _scores(self, products: np.ndarray, extra, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError


class PermutedSVCCA(_PermutedProducts):
    """SVCCA of fixed model-side bases against the permuted neural-side basis, for many layers.

    A basis of the permuted neural side is the permuted basis ``Qy[pi]``, so each null score
    is the mean singular value of the small ``Qx^T Qy[pi]`` (k_x x k_y).

    Parameters
    ----------
    basis_y : ndarray of shape (n, k_y)
        Orthonormal basis of the centred, reduced neural side (:func:`svcca_basis_y`).
    perms : ndarray of shape (P, n), int
    """

    def add(self, key, basis_x: np.ndarray) -> None:
        """Buffer one layer's orthonormal model-side basis (n x k_x, :func:`svcca_basis`)."""
        self._add(key, np.ascontiguousarray(basis_x.T), None)

    def _scores(self, products, extra, start, stop):
        kx, ky = products.shape[0], self.side.shape[1]
        cross = products.reshape(kx, stop - start, ky).transpose(1, 0, 2)  # (c, k_x, k_y)
        # the singular values are the square roots of the eigenvalues of the smaller Gram
        # matrix of each cross product: symmetric eigenvalues, about 1.4x faster than an SVD
        gram = cross @ cross.transpose(0, 2, 1) if kx <= ky else cross.transpose(0, 2, 1) @ cross
        values = np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0.0, 1.0))
        return values.mean(axis=1)


class PermutedRegressions(_PermutedProducts):
    """TSVD regression of fixed model components against permuted targets, for many layers.

    Per layer, the leave-one-out ridge operator of its components (with an unpenalised
    intercept) is factored once: the design ``Z = [1, components]``, ``F = S Z^T y`` (the
    fitted values are ``Z F``) and ``d = 1 / (1 - h)`` from the leverages ``h``. The held-out
    predictions of targets ``y`` are ``p = (1 - d) y + d Z F``, so the three sums Pearson's r
    needs are

    - ``p . y = sum((1 - d) y^2) + (Z^T (d y)) . F``,
    - ``sum(p) = sum((1 - d) y) + (Z^T d) . F``,
    - ``p . p = sum((1 - d)^2 y^2) + 2 (Z^T ((1 - d) d y)) . F + F . (Z^T D^2 Z) F``:

    the layer's ``3 (k + 1)`` rows ``[S Z^T; (d Z)^T; ((1 - d) d Z)^T]`` times each batch of
    permuted targets, and weighted sums of ``y`` and ``y^2`` that are the permuted weights
    times the unpermuted targets (``sum_i w_i y[pi(i)] = sum_l w[pi^-1(l)] y[l]``); no n-row
    array of predictions is formed. The targets are centred first: with an unpenalised
    intercept, shifting a column shifts its predictions alike, and Pearson's r ignores both.

    Parameters
    ----------
    targets : ndarray of shape (n, m)
        The neural responses (unpermuted).
    perms : ndarray of shape (P, n), int
    """

    def __init__(self, targets: np.ndarray, perms: np.ndarray):
        targets = np.asarray(targets, dtype=np.float64)
        super().__init__(targets - targets.mean(axis=0), perms)
        self.squares = self.side * self.side
        self.y_norms = np.sqrt(self.squares.sum(axis=0))
        self.inverse = np.empty_like(self.perms)
        n = self.side.shape[0]
        np.put_along_axis(self.inverse, self.perms, np.arange(n), axis=1)  # inverse[p, perms[p, i]] = i

    def add(self, key, operator: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Buffer one layer's leave-one-out ridge operator ``(design, solved, 1 - leverage)``
        of its TSVD components (:func:`workbench.metrics.regression.loo_ridge_operator`)."""
        design, solved, one_minus = operator
        with single_threaded_blas():
            d = 1.0 / one_minus
            rows = np.vstack([solved, (design * d[:, None]).T, (design * ((1.0 - d) * d)[:, None]).T])
            curvature = (design * (d * d)[:, None]).T @ design  # Z^T D^2 Z, (q, q)
        extra = (operator, np.stack([1.0 - d, (1.0 - d) ** 2]), design.T @ d, curvature)
        self._add(key, np.ascontiguousarray(rows), extra)

    def _scores(self, products, extra, start, stop):
        operator, weights, through, curvature = extra
        n, m = self.side.shape
        c, q = stop - start, through.size
        once, twice = (w[self.inverse[start:stop]] for w in weights)  # (c, n) each
        f, g_d, g_cross = products[:q], products[q:2 * q], products[2 * q:]
        dots = (once @ self.squares).ravel() + np.einsum("ij,ij->j", g_d, f)
        sums = (once @ self.side).ravel() + through @ f
        norms2 = ((twice @ self.squares).ravel() + 2.0 * np.einsum("ij,ij->j", g_cross, f)
                  + np.einsum("ij,ij->j", curvature @ f, f))
        p_norms = np.sqrt(np.maximum(norms2 - sums * sums / n, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = dots / (p_norms * np.tile(self.y_norms, c))
        # these sums lose the spread of nearly constant predictions to rounding: such columns
        # are computed from their predictions (NaN where these are constant)
        suspect = np.flatnonzero(~(p_norms > _SPREAD_RTOL * np.sqrt(np.abs(norms2))))
        if suspect.size:
            block = permuted_block(self.side, self.perms[start:stop])
            for column in suspect:
                r[column] = _held_out_r(block[:, column], operator)
        return r.reshape(c, m).mean(axis=1)


def _held_out_r(y: np.ndarray, operator) -> float:
    """Pearson r of one centred target with its held-out predictions; NaN when they are constant."""
    from workbench.metrics.regression import loo_ridge_predictions

    predictions = loo_ridge_predictions(operator, y)
    squares = predictions @ predictions
    predictions -= predictions.mean()
    p_norm = np.sqrt(predictions @ predictions)
    if p_norm <= 1e-12 * np.sqrt(squares):
        return np.nan
    return float(predictions @ y / (p_norm * np.sqrt(y @ y)))


def svcca_basis(side: DerivedStats, k: int | None) -> np.ndarray:
    """:func:`workbench.metrics.svcca.centred_basis` without its rank warning (the score has
    given it, and has usually built and cached the basis too)."""
    from workbench.metrics.svcca import RankDeficiencyWarning, centred_basis

    with warnings.catch_warnings(), single_threaded_blas():
        warnings.simplefilter("ignore", RankDeficiencyWarning)
        return centred_basis(side, k)


def svcca_basis_y(y: DerivedStats, n_components: int = 40, reduce_y: bool = True) -> np.ndarray:
    """The centred orthonormal basis of the neural side that SVCCA compares, as it builds it."""
    return svcca_basis(y, n_components if reduce_y and y.n_features > n_components else None)


# ---------------------------------------------------------------------------- one pair
def permutation_null(
    X,
    Y,
    metric: str,
    n_permutations: int = 100,
    *,
    seed: int = 0,
    perms: np.ndarray | None = None,
    n_components: int = 40,
    reduce_y: bool = True,
    alpha: float = 1.0,
    kernel: str = "linear",
    debiased: bool = False,
) -> np.ndarray:
    """The stimulus-permutation null of one metric on one pair: ``metric(X, Y[pi])`` for each ``pi``.

    Computed from the statistics of ``X`` and ``Y`` (see the module's notes), equal to a loop
    that permutes the rows of ``Y`` and calls the metric, to rounding.

    Parameters
    ----------
    X, Y : as for :func:`workbench.metrics.compare` (arrays, GramStats or DerivedStats)
    metric : {"svcca", "tsvd_regression", "rsa", "cka"}
    n_permutations : int, default: 100
        Ignored when ``perms`` is given.
    seed : int, default: 0
        Seed of :func:`stimulus_permutations`.
    perms : ndarray of shape (P, n), optional
        The permutations to use (e.g. shared across layers).
    n_components, reduce_y, alpha, kernel, debiased
        The metric's parameters, as in :func:`workbench.metrics.compare`.

    Returns
    -------
    ndarray of shape (P,)
        Null scores, one per permutation, in the order of ``perms``.

    Raises
    ------
    ValidationError
        The metric cannot score the pair itself (the reason), or an unknown metric.
    """
    from workbench.metrics.compare import compare
    from workbench.metrics.regression import tsvd_loo_operator

    x, y = prepare_pair(X, Y)
    parameters = {"n_components": n_components, "reduce_y": reduce_y, "alpha": alpha, "kernel": kernel,
                  "debiased": debiased}
    # the pair itself first: an unknown metric or a pair it cannot score raises its reason
    compare(x, y, [metric], errors="raise", **parameters)
    if perms is None:
        perms = stimulus_permutations(x.n_stimuli, n_permutations, seed)
    perms = np.asarray(perms)
    if perms.ndim != 2 or perms.shape[1] != x.n_stimuli:
        raise ValidationError(f"perms must have shape (P, {x.n_stimuli}), found {perms.shape}")
    if metric in ("svcca", "tsvd_regression"):
        k = x.check_n_components(n_components)
        if metric == "svcca":
            nulls = PermutedSVCCA(svcca_basis_y(y, k, reduce_y), perms)
            nulls.add(0, svcca_basis(x, k))
        else:
            nulls = PermutedRegressions(y.require_array("tsvd_regression"), perms)
            nulls.add(0, tsvd_loo_operator(x, k, alpha))
        return nulls.pop(0)
    if metric == "rsa":
        (a, norm_a), (b, norm_b) = rsa_parts(x), rsa_parts(y)
        return permuted_quadratic_forms(a, b, perms) / (2.0 * norm_a * norm_b)
    (a, norm_a), (b, norm_b) = cka_parts(x, kernel, debiased, pairing=True), cka_parts(y, kernel, debiased)
    return permuted_quadratic_forms(a, b, perms) / (norm_a * norm_b)
