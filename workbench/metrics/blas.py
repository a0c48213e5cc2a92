"""Thread control for the small linear algebra that follows the Gram product.

numpy and scipy each load their own OpenBLAS with its own thread pool. Many small products
and factorisations (n x 40 matrices) that alternate between the two pools make their threads
contend and run 5-50x slower than on one thread (../shared/notes/environment.md). The large
operations (the Gram product, the n x n eigendecomposition) keep every thread; the small
ones run inside :func:`single_threaded_blas`.
"""

from __future__ import annotations

import contextlib
import functools


@functools.lru_cache(maxsize=1)
def _controller():
    # created on first use, once numpy's and scipy's BLAS libraries are both loaded
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas():
    """Limit every loaded BLAS library to one thread inside the block (about 25 us to enter)."""
    with _controller().limit(limits=1, user_api="blas"):
        yield
