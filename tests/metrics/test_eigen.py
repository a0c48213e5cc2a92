"""top_eigenpairs: the block Krylov path equals the dense eigendecomposition."""

import logging

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from workbench.errors import ValidationError
from workbench.metrics.eigen import top_eigenpairs
from workbench.metrics.rsa import average_ranks


def _dense_top(gram, k):
    vals, vecs = np.linalg.eigh(gram)
    return vals[::-1][:k], vecs[:, ::-1][:, :k]


def _structured_gram(n, d, rank, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, rank)) / np.arange(1, rank + 1) @ rng.normal(size=(rank, d))
    x += 0.05 * rng.normal(size=(n, d))
    return x @ x.T


@pytest.mark.parametrize("k", [1, 10, 25])
def test_krylov_equals_dense_eigh(k, caplog):
    gram = _structured_gram(400, 300, 40, seed=k)
    with caplog.at_level(logging.DEBUG, logger="workbench.metrics.eigen"):
        vals, vecs = top_eigenpairs(gram, k, method="krylov", max_basis=260)
    assert "block Krylov: top" in caplog.text  # converged, no fallback
    want_vals, want_vecs = _dense_top(gram, k)
    np.testing.assert_allclose(vals, want_vals, rtol=1e-10)
    # eigenvectors up to sign: |<v, w>| = 1 and orthonormal
    np.testing.assert_allclose(np.abs(np.sum(vecs * want_vecs, axis=0)), 1.0, atol=1e-9)
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(k), atol=1e-12)


def test_krylov_falls_back_to_eigh_when_it_does_not_converge(caplog):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3000))  # a flat spectrum: Krylov cannot separate the top 20
    gram = x @ x.T
    with caplog.at_level(logging.INFO, logger="workbench.metrics.eigen"):
        vals, vecs = top_eigenpairs(gram, 20, method="krylov", max_basis=80)
    assert "did not converge" in caplog.text
    want_vals, want_vecs = _dense_top(gram, 20)
    np.testing.assert_allclose(vals, want_vals, rtol=1e-12)
    np.testing.assert_allclose(np.abs(np.sum(vecs * want_vecs, axis=0)), 1.0, atol=1e-8)


def test_eigh_and_auto_paths_and_bad_method():
    gram = _structured_gram(120, 50, 10, seed=3)
    for method in ("eigh", "auto"):
        vals, _ = top_eigenpairs(gram, 5, method=method)
        np.testing.assert_allclose(vals, scipy.linalg.eigvalsh(gram)[::-1][:5], rtol=1e-12)
    with pytest.raises(ValidationError, match=r"method='lanczos' is not valid; expected one of"):
        top_eigenpairs(gram, 5, method="lanczos")


@pytest.mark.parametrize("decimals", [None, 1])
def test_average_ranks_equals_scipy_rankdata(decimals):
    values = np.random.default_rng(4).normal(size=5000)
    if decimals is not None:
        values = np.round(values, decimals)  # many ties
    np.testing.assert_array_equal(average_ranks(values), scipy.stats.rankdata(values, method="average"))
