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

``--per-layer`` times instead what a sweep spends on one layer against one region, the
region's statistics prepared once (its RDM ranks and truncated SVD, ``Target.derived``):
the layer's Gram statistics from a float32 array (:meth:`GramStats.from_array`, what
``extract_stats`` accumulates), the protocol's z-scoring and ``score_region`` with the four
metrics, against one float32 ``X @ X.T`` of the same layer; the two alternate ``--repeats``
times in one process and the best of each is kept (the machine may be shared). Target:
layer / gram <= 1.3. Layers are those of ``benchmarks/bench_metrics.py`` (seeded latent +
noise), plus one of the 92 stimuli of the default dataset::

    python benchmarks/bench_sweep.py --per-layer --repeats 5

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

from seeded_runs import use_data_mirror

DEFAULT_MODELS = ["alexnet", "cornet_z", "sew_resnet8", "resnet18"]


def timed_sweep(models, dataset, *, executor, store_dir, cache_dir):
    """Run the sweep with a given activation cache; return (seconds, scores)."""
    from workbench.analysis.sweeps import sweep

    os.environ["WORKBENCH_CACHE"] = str(cache_dir)  # read by this process and by new workers
    start = time.perf_counter()
    scores = sweep(models, [dataset], store_dir=store_dir, executor=executor, progress=False)
    return time.perf_counter() - start, scores


LAYER_SHAPES = ((92, 100_000), (118, 100_000), (1000, 50_000), (3200, 20_000))


def per_layer_ratios(shapes=LAYER_SHAPES, repeats: int = 3, seed: int = 0) -> list[dict]:
    """Per-layer time inside a sweep (statistics, z-scoring, all metrics) over one Gram product."""
    from bench_metrics import N_COMPONENTS, _latent, layer_chunk, responses

    from workbench.analysis import Protocol
    from workbench.analysis.cells import Target, prepare, score_region
    from workbench.analysis.sweeps import SWEEP_METRICS
    from workbench.metrics import GramStats

    protocol = Protocol(svcca_n_components=N_COMPONENTS, tsvd_n_components=N_COMPONENTS)
    rows = []
    for n, d in shapes:
        latent = _latent(n, seed)
        x = layer_chunk(latent, d, seed, 0)
        target = Target("responses", responses(latent, seed), reduce_y=True)
        metrics = list(SWEEP_METRICS)
        first = score_region(prepare(GramStats.from_array(x), protocol), target, metrics, protocol)
        gram_times, layer_times = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            x @ x.T
            gram_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            scores = score_region(prepare(GramStats.from_array(x), protocol), target, metrics, protocol)
            layer_times.append(time.perf_counter() - t0)
            np.testing.assert_array_equal(scores, first)
        rows.append({"n": n, "d": d, "gram": min(gram_times), "layer": min(layer_times),
                     "scores": dict(zip(metrics, scores.tolist())),
                     "runs": {"gram": gram_times, "layer": layer_times}})
        row = rows[-1]
        print(f"  {f'{n} x {d}':>14} gram {row['gram']:7.3f} s  layer {row['layer']:7.3f} s  "
              f"layer/gram {row['layer'] / row['gram']:5.2f}   runs: gram "
              + ", ".join(f"{t:.3f}" for t in gram_times) + "; layer "
              + ", ".join(f"{t:.3f}" for t in layer_times), flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-layer", action="store_true",
                        help="time one layer inside a sweep against one Gram product, then stop")
    parser.add_argument("--repeats", type=int, default=3, help="alternated runs with --per-layer")
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--dataset", default="kriegeskorte2008_92")
    parser.add_argument("--workers", type=int, default=2, help="local cluster size (default: 2)")
    args = parser.parse_args(argv)
    if args.per_layer:
        print(f"per layer inside a sweep (score_region, the region prepared once) vs one float32 Gram "
              f"product; best of {args.repeats} alternated runs; target layer/gram <= 1.3")
        per_layer_ratios(repeats=args.repeats)
        return

    use_data_mirror()

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
