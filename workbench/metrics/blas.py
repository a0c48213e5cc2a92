"""Thread control for the small linear algebra that follows the Gram product.

numpy and scipy each load their own OpenBLAS with its own thread pool. Many small products
and factorisations (n x 40 matrices) that alternate between the two pools make their threads
contend and run 5-50x slower than on one thread (../shared/notes/environment.md). The large
operations (the Gram product, the n x n eigendecomposition) keep every thread; the small
ones run inside :func:`single_threaded_blas`.

Work without BLAS that releases the GIL (the sorts that rank RDMs) can run in two background
threads (:func:`submit_background`) while the calling thread does the linear algebra; the
large products then use one BLAS thread (:func:`large_product_threads`), as the cores are taken.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor


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


# -- background threads for work that releases the GIL without BLAS (sorts) ------------------
_lock = threading.Lock()
_pending = {}  # process id -> tasks queued or running (a forked child starts at 0)


@functools.lru_cache(maxsize=None)
def _pool(pid: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="workbench-metrics")


def _finished(_future, pid: int) -> None:
    with _lock:
        _pending[pid] -= 1


def submit_background(compute) -> Future:
    """Run ``compute()`` in one of two background threads (one pool per process, also after a
    fork); used by :meth:`workbench.metrics.derived.DerivedStats.start`."""
    pid = os.getpid()
    with _lock:
        _pending[pid] = _pending.get(pid, 0) + 1
    future = _pool(pid).submit(compute)
    future.add_done_callback(functools.partial(_finished, pid=pid))
    return future


def background_busy() -> bool:
    """Whether work submitted by :func:`submit_background` is still queued or running."""
    return _pending.get(os.getpid(), 0) > 0


def large_product_threads():
    """Thread limit for a large product: every BLAS thread, or one while background work runs.

    OpenBLAS threads wait for each other actively; on a machine whose cores are busy with
    background sorts, a multi-threaded product would wait for a descheduled thread.
    """
    return single_threaded_blas() if background_busy() else contextlib.nullcontext()


# -- the permutation nulls: independent batches on every core --------------------------------
@functools.lru_cache(maxsize=None)
def _batch_pool(pid: int, workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="workbench-batches")


def batch_workers() -> int:
    """Threads :func:`map_batches` uses: the cores this process may run on (at most 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def map_batches(compute, batches) -> list:
    """``[compute(b) for b in batches]``, the batches spread over :func:`batch_workers` threads.

    For numpy work that releases the GIL (gathers, products, batched SVDs) on independent
    batches: every BLAS library is limited to one thread for the duration (set here, in the
    calling thread, once), so that the threads do not oversubscribe the cores. Results keep
    the order of ``batches``; the first exception raised by a batch is raised here.
    """
    batches = list(batches)
    workers = min(batch_workers(), len(batches))
    with single_threaded_blas():
        if workers <= 1:
            return [compute(batch) for batch in batches]
        return list(_batch_pool(os.getpid(), workers).map(compute, batches))
