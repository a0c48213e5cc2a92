"""Run a toy sweep serially; the kill test SIGKILLs this process part-way.

Usage: python execution_kill_script.py STORE_DIR LOG_PATH N_UNITS SLEEP_S [--no-dask]

``--no-dask`` makes ``import dask`` / ``import distributed`` fail, as on a machine without
Dask, to show that the serial executor does not need it.
"""

import sys

if "--no-dask" in sys.argv:
    sys.modules["dask"] = None  # any later `import dask...` raises ImportError
    sys.modules["distributed"] = None

import functools  # noqa: E402

from execution_toy import logged_compute, make_units  # noqa: E402

from workbench.analysis.execution import run_units  # noqa: E402

if __name__ == "__main__":
    store_dir, log_path, n_units, sleep_s = sys.argv[1:5]
    run_units(
        make_units(int(n_units)),
        functools.partial(logged_compute, log_path=log_path, sleep_s=float(sleep_s)),
        store_dir,
        progress=False,
    )
