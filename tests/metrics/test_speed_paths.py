"""The fast paths of issue 18, point 5: each equals the direct computation it replaces.

- the block Krylov solver that skips the Rayleigh-Ritz checks that cannot succeed yet, against
  ``numpy.linalg.eigh``;
- ``average_ranks`` by one sort of (key, position) pairs packed into integers, against
  ``scipy.stats.rankdata``, with values that share a key (equal or 1 ulp apart) and ranges
  too wide for the keys;
- the upper triangle of the row correlations computed a block at a time, against the full
  matrix;
- linear CKA pairing the layer's uncentred Gram with the centred neural kernel, against the
  centred computation, including features with an offset too large for that shortcut;
- a GramStats that takes its first chunk as it is, against accumulated chunks;
- RDM ranks computed in a background thread (``DerivedStats.start``), against the same ranks
  computed in the calling thread, errors included;
- the responses' statistics prepared once per region in a sweep (``Target.derived``).
"""

import logging
import re

import numpy as np
import pytest
import scipy.stats

from workbench.errors import ValidationError
from workbench.metrics import compare, rsa
from workbench.metrics.derived import DerivedStats
from workbench.metrics.eigen import RESIDUAL_RTOL, _steps_to_converge, top_eigenpairs
from workbench.metrics.rsa import average_ranks, centred_rdm_ranks, start_rdm_ranks


def _benchmark_like_gram(n, seed):
    """A Gram matrix with the spectrum of benchmarks/bench_metrics.py's layers: 64 directions
    decaying as 1/rank over a noise bulk (eigenvalues 1/1400 to 1/700 of the largest)."""
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.normal(size=(n, n)))[0]
    spectrum = np.concatenate([5e7 / np.arange(1, 65), rng.uniform(3.5e4, 7e4, n - 64)])
    gram = (q * spectrum) @ q.T
    return (gram + gram.T) / 2


def test_krylov_with_skipped_checks_equals_numpy_eigh(caplog):
    # a benchmark-like spectrum (64 decaying directions over a noise bulk): the top 40 need
    # several Krylov steps, so some convergence checks are predicted and skipped
    gram = _benchmark_like_gram(640, seed=5)
    with caplog.at_level(logging.DEBUG, logger="workbench.metrics.eigen"):
        vals, vecs = top_eigenpairs(gram, 40, method="krylov", max_basis=540)
    found = re.search(r"in a basis of (\d+) \((\d+) checks\)", caplog.text)
    assert found, caplog.text  # converged, no fallback to eigh
    steps = int(found.group(1)) // 60  # block of 40 + 20
    assert int(found.group(2)) < steps  # some Rayleigh-Ritz checks were skipped
    want_vals, want_vecs = np.linalg.eigh(gram)
    want_vals, want_vecs = want_vals[::-1][:40], want_vecs[:, ::-1][:, :40]
    np.testing.assert_allclose(vals, want_vals, rtol=1e-10)
    np.testing.assert_allclose(np.abs(np.sum(vecs * want_vecs, axis=0)), 1.0, atol=1e-8)
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(40), atol=1e-12)
    residual = gram @ vecs - vecs * vals
    assert np.linalg.norm(residual, axis=0).max() <= RESIDUAL_RTOL * vals[0]


def test_steps_to_converge_follows_the_geometric_rate():
    # far from convergence, or a single check: check at the next step
    assert _steps_to_converge([], 1e-12) == 1
    assert _steps_to_converge([(1, 1e-2)], 1e-12) == 1
    assert _steps_to_converge([(1, 1e-2), (2, 1e-3)], 1e-12) == 1  # above 1e-4: not predicted
    # 1e-5 -> 1e-7 in one step: 1e-12 needs 2.5 more steps, checked one step early (after 2)
    assert _steps_to_converge([(2, 1e-5), (3, 1e-7)], 1e-12) == 2
    # rate 1e-2 per step over two steps, from 1e-6: 3 steps needed, checked after 2
    assert _steps_to_converge([(2, 1e-2), (4, 1e-6)], 1e-12) == 2
    # no progress: check at the next step (the basis budget then ends the iteration)
    assert _steps_to_converge([(2, 1e-6), (3, 1e-6)], 1e-12) == 1


def _one_ulp_apart(rng):
    base = rng.normal(size=3000)
    return rng.permutation(np.concatenate([base, np.nextafter(base, np.inf), np.nextafter(base, -np.inf), base]))


@pytest.mark.parametrize("case", ["distinct", "ties", "signed zeros", "constant", "one", "two", "one ulp apart",
                                  "widest range", "subnormal", "many positions"])
def test_average_ranks_equals_scipy_rankdata(case):
    rng = np.random.default_rng(6)
    values = {
        "distinct": lambda: rng.normal(size=20_000),
        "ties": lambda: np.round(rng.normal(size=20_000), 2),
        "signed zeros": lambda: np.array([0.0, -0.0, 1.0, -1.0, 0.0, -0.0, 2.0]),
        "constant": lambda: np.full(50, 0.3),
        "one": lambda: np.array([4.0]),
        "two": lambda: np.array([2.0, -1.0]),
        "one ulp apart": lambda: _one_ulp_apart(rng),  # equal keys: ordered by value
        "widest range": lambda: np.array([1e308, -1e308, 0.0, 1e308, 5.0]),  # range overflows
        "subnormal": lambda: np.array([5e-324, 0.0, -5e-324, 1e-320, 5e-324]),
        # 2**21 positions leave 43 bits of key: near ties then share keys more often
        "many positions": lambda: np.round(rng.normal(size=2**21), 12),
    }[case]()
    np.testing.assert_array_equal(average_ranks(values), scipy.stats.rankdata(values, method="average"))


def test_upper_row_correlations_equal_the_full_matrix_and_raise_alike():
    from workbench.metrics.rsa import upper_triangle

    x = np.random.default_rng(12).normal(size=(700, 40)) + 3.0
    side = DerivedStats.from_input(x)
    np.testing.assert_array_equal(side.upper_row_correlations(block=64), upper_triangle(side.row_correlations()))
    np.testing.assert_allclose(side.upper_row_correlations(), np.corrcoef(x)[np.triu_indices(700, 1)], atol=1e-12)
    x[600] = -1.0
    flat = DerivedStats.from_input(x)
    with pytest.raises(ValidationError, match=r"stimulus \(row\) 600 has zero variance"):
        flat.upper_row_correlations()


def _direct_linear_cka(x, y):
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    return np.linalg.norm(xc.T @ yc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))


@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_linear_cka_pairs_the_uncentred_gram_unless_its_offset_is_too_large(offset):
    from workbench.metrics import cka
    from workbench.metrics.cka import pairing_kernel

    rng = np.random.default_rng(13)
    latent = rng.normal(size=(80, 4))
    x = latent @ rng.normal(size=(4, 300)) + rng.normal(size=(80, 300)) + offset
    y = latent @ rng.normal(size=(4, 20)) + rng.normal(size=(80, 20))
    side = DerivedStats.from_input(x)
    matrix, centred_squared = pairing_kernel(side)
    # the shortcut is taken for ordinary features and refused for a large common offset
    assert (matrix is side.gram) == (offset == 0.0)
    np.testing.assert_allclose(centred_squared, np.linalg.norm(side.centred_gram()) ** 2, rtol=1e-10)
    assert cka(side, y) == pytest.approx(_direct_linear_cka(x, y), rel=1e-9)
    assert cka(y, x) == pytest.approx(cka(x, y), rel=1e-9)


def test_gram_stats_take_the_first_chunk_as_it_is():
    from workbench.metrics import GramStats

    x = np.random.default_rng(14).normal(size=(50, 70)).astype(np.float32)
    whole = GramStats.from_array(x)
    chunked = GramStats.from_array(x, chunk_features=30)
    assert whole.gram.dtype == np.float64 and whole.gram.flags.c_contiguous
    direct = x.astype(np.float64) @ x.T.astype(np.float64)
    atol = 1e-5 * np.abs(direct).max()  # float32 products
    np.testing.assert_allclose(whole.gram, direct, atol=atol)
    np.testing.assert_allclose(chunked.gram, direct, atol=atol)
    np.testing.assert_allclose(chunked.row_sums, x.sum(axis=1, dtype=np.float64), rtol=1e-12)
    before = chunked.gram.copy()
    chunked.update(x[:, :5])
    np.testing.assert_allclose(chunked.gram - before, x[:, :5].astype(np.float64) @ x[:, :5].T, atol=atol)


def test_rdm_ranks_started_in_the_background_equal_the_direct_ranks():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 30))
    background, direct = DerivedStats.from_input(x), DerivedStats.from_input(x)
    start_rdm_ranks(background)
    ranks = centred_rdm_ranks(background)
    np.testing.assert_array_equal(ranks, centred_rdm_ranks(direct))
    want = scipy.stats.rankdata(1.0 - np.corrcoef(x)[np.triu_indices(40, k=1)])
    # ranks of correlations are the reversed ranks of dissimilarities, centred
    np.testing.assert_allclose(ranks, -(want - want.mean()), atol=1e-9)
    assert centred_rdm_ranks(background) is ranks  # cached: the future was consumed once
    start_rdm_ranks(background)  # known: nothing is started again
    assert centred_rdm_ranks(background) is ranks


def test_a_background_error_is_raised_by_the_caller_and_not_cached():
    x = np.random.default_rng(8).normal(size=(20, 10))
    x[3] = 2.0  # a stimulus with zero variance: its correlations are undefined
    side = DerivedStats.from_input(x)
    start_rdm_ranks(side)
    for _ in range(2):  # the same error each time, from the calling thread
        with pytest.raises(ValidationError, match=r"X: stimulus \(row\) 3 has zero variance"):
            centred_rdm_ranks(side)


def test_cached_waits_for_a_started_value_and_computes_it_once():
    side = DerivedStats.from_input(np.random.default_rng(9).normal(size=(10, 4)))
    calls = []
    side.start("key", lambda: calls.append("background") or 41)
    assert side.cached("key", lambda: calls.append("caller") or 42) == 41
    assert side.cached("key", lambda: calls.append("caller") or 42) == 41
    assert calls == ["background"]


def test_compare_with_background_ranks_equals_each_metric_alone():
    rng = np.random.default_rng(10)
    latent = rng.normal(size=(60, 5))
    x = latent @ rng.normal(size=(5, 200)) + rng.normal(size=(60, 200))
    y = latent @ rng.normal(size=(5, 30)) + rng.normal(size=(60, 30))
    scores = compare(x, y, n_components=8)
    for name in scores:
        assert scores[name] == compare(x, y, [name], n_components=8)[name]
    assert scores["rsa"] == pytest.approx(
        scipy.stats.spearmanr(1 - np.corrcoef(x)[np.triu_indices(60, 1)],
                              1 - np.corrcoef(y)[np.triu_indices(60, 1)]).statistic, abs=1e-12)
    # a zero-variance stimulus: RSA alone is NaN with its reason, the others are computed
    x[5] = 1.0
    with pytest.warns(UserWarning, match=r"rsa could not be computed"):
        partial = compare(x, y, n_components=8)
    assert np.isnan(partial["rsa"]) and "stimulus (row) 5 has zero variance" in partial.reasons["rsa"]
    assert np.isfinite([partial[m] for m in ("svcca", "tsvd_regression", "cka")]).all()
    with pytest.raises(ValidationError, match="zero variance"):
        rsa(x, y)


def test_sweep_target_prepares_the_responses_once():
    from workbench.analysis import Protocol
    from workbench.analysis.cells import Target, score_region
    from workbench.metrics import GramStats

    rng = np.random.default_rng(11)
    latent = rng.normal(size=(30, 3))
    y = latent @ rng.normal(size=(3, 12)) + rng.normal(size=(30, 12))
    target = Target("responses", y, reduce_y=False)
    protocol = Protocol(svcca_n_components=4, tsvd_n_components=4)
    metrics = ["svcca", "tsvd_regression", "rsa", "cka"]
    for seed in range(3):  # three layers against one region
        x = latent @ np.random.default_rng(seed).normal(size=(3, 50)) + rng.normal(size=(30, 50))
        got = score_region(GramStats.from_array(x), target, metrics, protocol)
        fresh = Target("responses", y, reduce_y=False)  # nothing prepared
        np.testing.assert_array_equal(got, score_region(GramStats.from_array(x), fresh, metrics, protocol))
        direct = compare(x, y, metrics, n_components=4, reduce_y=False)
        np.testing.assert_allclose(got, [direct[m] for m in metrics], rtol=1e-9)
    prepared = target.derived()
    assert prepared is target.derived() and "rdm_ranks" in prepared._cache
    assert target.take(np.arange(10)).derived() is not prepared  # a subsample has its own


def test_large_products_use_one_blas_thread_while_background_work_runs():
    import threading

    from threadpoolctl import threadpool_info

    from workbench.metrics.blas import background_busy, large_product_threads, submit_background

    def blas_threads():
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    release = threading.Event()
    future = submit_background(lambda: release.wait(10) and 7)
    try:
        assert background_busy()
        with large_product_threads():
            assert blas_threads() == {1}
    finally:
        release.set()
    assert future.result() == 7
    for _ in range(100):  # the done callback runs just after the result is set
        if not background_busy():
            break
        threading.Event().wait(0.01)
    assert not background_busy()
    before = blas_threads()
    with large_product_threads():  # nothing in the background: the limit is left alone
        assert blas_threads() == before
