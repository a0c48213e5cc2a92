"""Wall time of a small real sweep, serial against a local Dask cluster, in one run.

Each executor starts from a cold activation cache and an empty unit store, so both do the
same work: build each model, extract its activations for the dataset's stimuli, score every
layer. The local-cluster time includes starting and closing the cluster (worker processes
import torch themselves). A last row times a rerun of the finished sweep, which only loads
the committed units (its scores must be identical to the first run's). Serial and Dask scores
agree up to floating-point summation order: in-process torch uses every core's threads, a
Dask worker one thread (``OMP_NUM_THREADS=1``), so the largest difference is printed.

Usage::

    python benchmarks/bench_sweep.py                      # 4 small models x kriegeskorte2008_92
    python benchmarks/bench_sweep.py --workers 4 --models alexnet resnet18 sew_resnet8

Data come from ``$WORKBENCH_DATA_MIRROR`` (default ``../shared/data`` beside the clone when it
exists) into a temporary data cache; nothing is downloaded when the mirror is present.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ["alexnet", "cornet_z", "sew_resnet8", "resnet18"]


def timed_sweep(models, dataset, *, executor, store_dir, cache_dir):
    """Run the sweep with a given activation cache; return (seconds, scores)."""
    from workbench.analysis.sweeps import sweep

    os.environ["WORKBENCH_CACHE"] = str(cache_dir)  # read by this process and by new workers
    start = time.perf_counter()
    scores = sweep(models, [dataset], store_dir=store_dir, executor=executor, progress=False)
    return time.perf_counter() - start, scores


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--dataset", default="kriegeskorte2008_92")
    parser.add_argument("--workers", type=int, default=2, help="local cluster size (default: 2)")
    args = parser.parse_args(argv)

    mirror = REPO.parent / "shared" / "data"
    if "WORKBENCH_DATA_MIRROR" not in os.environ and (mirror / "SHA256SUMS").exists():
        os.environ["WORKBENCH_DATA_MIRROR"] = str(mirror)

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        tmp = Path(tmp)
        os.environ["WORKBENCH_DATA"] = str(tmp / "data")
        from workbench.data import load

        n_stimuli = len(load(args.dataset).stimuli)  # fetch once, outside the timings

        local = f"local:{args.workers}"
        rows = []
        serial_s, serial = timed_sweep(args.models, args.dataset, executor="serial",
                                       store_dir=tmp / "store-serial", cache_dir=tmp / "cache-serial")
        rows.append(("serial", serial_s))
        dask_s, on_dask = timed_sweep(args.models, args.dataset, executor=local,
                                      store_dir=tmp / "store-dask", cache_dir=tmp / "cache-dask")
        rows.append((local, dask_s))
        resumed_s, resumed = timed_sweep(args.models, args.dataset, executor="serial",
                                         store_dir=tmp / "store-serial", cache_dir=tmp / "cache-serial")
        rows.append(("serial rerun, all units committed", resumed_s))
        unit_seconds = {
            json.loads(path.read_text())["unit"]["model"]: json.loads(path.read_text())["elapsed_s"]
            for path in sorted((tmp / "store-serial" / "units").glob("*.commit.json"))
        }

    xr.testing.assert_identical(serial.drop_attrs(), resumed.drop_attrs())
    a, b = serial["score"].values, on_dask["score"].values
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        raise AssertionError("serial and Dask sweeps scored different cells")
    max_diff = float(np.nanmax(np.abs(a - b))) if np.isfinite(a).any() else 0.0
    if max_diff > 1e-3:
        raise AssertionError(f"serial and Dask scores differ by up to {max_diff:.2e}")

    print(f"sweep: {len(args.models)} models x {args.dataset} ({n_stimuli} stimuli), "
          f"{len(args.models)} units; {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}")
    print(f"models: {', '.join(args.models)}")
    for label, seconds in rows:
        print(f"  {label:<36} {seconds:8.1f} s")
    print("  serial compute time per unit: "
          + ", ".join(f"{model} {seconds:.1f} s" for model, seconds in unit_seconds.items()))
    print(f"  speed-up {local} over serial: {serial_s / dask_s:.2f}x; "
          f"largest |serial - Dask| score difference {max_diff:.1e}; rerun scores identical")


if __name__ == "__main__":
    main()
