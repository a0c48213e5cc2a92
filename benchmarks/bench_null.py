"""What the chance level costs: a sweep's scoring time with and without 100 permutations.

Two measurements, each printing the ratio that the issue bounds (at most +50 % scoring time):

1. **Synthetic unit** (no model, no data): the sweep's per-unit scoring loop
   (:func:`workbench.analysis.cells.score_region` for every layer, the nulls through
   :class:`workbench.analysis.nulls.UnitNulls`) on ``--layers`` z-scored layers of
   ``--stimuli`` x ``--features`` against ``--neuroids`` responses, P=0 against P=100.
2. **A real sweep** (``workbench score --models MODEL --datasets cowley2023_v4``, random
   weights) with a warm activation cache, so that extraction is not timed twice: the time
   inside ``score_region`` and inside the nulls is summed, and the whole sweep is timed with
   ``permutations=0`` and with the default 100.

Usage::

    python benchmarks/bench_null.py                      # both; resnet18 on cowley2023_v4
    python benchmarks/bench_null.py --synthetic-only
    python benchmarks/bench_null.py --models sew_resnet18 resnet18

Data come from ``$WORKBENCH_DATA_MIRROR`` (default ``../shared/data`` beside the clone).

Results of 2026-12-03 (2-core AMD EPYC, AVX2; ``python benchmarks/bench_null.py``, three runs
in a quiet hour, after the nulls of all a model's layers were evaluated together and SVCCA's
singular values came from batched ``eigvalsh``)::

    synthetic unit: 11 layers of 640 x 2000, 50 neuroids, 4 metrics (best of 3)
      scoring without null   0.557 s   with 100 permutations   0.868 s   ratio 1.56 (+56 % scoring time; target <= +50 %)
    sweep: resnet18 x cowley2023_v4, random weights, warm activation cache; 44 cells with a null
      P=0        sweep    2.91 s   in score_region    0.57 s   in the nulls    0.00 s
      P=100      sweep    3.32 s   in score_region    0.60 s   in the nulls    0.41 s
      P=0 again  sweep    3.15 s   in score_region    0.65 s   in the nulls    0.00 s
      nulls / scoring time: 0.69 (+69 %; target <= +50 %); whole sweep 1.14x of P=0

and in two other runs +48 % (before the eigvalsh change) and +63 % (synthetic), +68 % and
+78 % (sweep). Before the
nulls were batched: +121 % and +96-123 %. At 640 stimuli and 11 layers the nulls are about
0.1 s of TSVD regression products (3 (k + 1) rows per layer against each permuted block, 8.7
GFLOP at ~43 GFLOP/s per core), 0.03 s of SVCCA products, 0.05 s of batched 40 x 40
eigenvalue problems, 0.09 s of CKA/RSA gathers and ~0.1 s of the rest; the +50 % target would
need the arithmetic itself to shrink, not its overhead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from seeded_runs import use_data_mirror


@contextlib.contextmanager
def timers():
    """Sum the seconds spent in score_region and in the nulls (UnitNulls.add / write)."""
    from workbench.analysis import nulls, sweeps

    spent = {"score": 0.0, "null": 0.0}
    originals = (sweeps.score_region, nulls.UnitNulls.add, nulls.UnitNulls.write)

    def timed(function, key):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start
        return wrapper

    sweeps.score_region = timed(originals[0], "score")
    nulls.UnitNulls.add = timed(originals[1], "null")
    nulls.UnitNulls.write = timed(originals[2], "null")
    try:
        yield spent
    finally:
        sweeps.score_region, nulls.UnitNulls.add, nulls.UnitNulls.write = originals


def synthetic(n_stimuli: int, n_features: int, n_neuroids: int, n_layers: int, permutations: int, repeats: int):
    """Seconds of the scoring loop of one unit, without and with the nulls (best of ``repeats``)."""
    from workbench.analysis import Protocol
    from workbench.analysis.nulls import UnitNulls
    from workbench.analysis.cells import Target, derive, score_region
    from workbench.analysis.sweeps import SWEEP_METRICS
    from workbench.metrics import GramStats

    rng = np.random.default_rng(0)
    latent = rng.normal(size=(n_stimuli, 20))
    layers = [GramStats.from_array((latent @ rng.normal(size=(20, n_features))
                                    + rng.normal(size=(n_stimuli, n_features))).astype(np.float32)).zscored()
              for _ in range(n_layers)]
    y = latent @ rng.normal(size=(20, n_neuroids)) + rng.normal(size=(n_stimuli, n_neuroids))
    targets = [Target("responses", y, False)]
    metrics = list(SWEEP_METRICS)

    def run(protocol):
        nulls = UnitNulls(targets, metrics, protocol, n_layers) if protocol.permutations else None
        start = time.perf_counter()
        for i, x in enumerate(layers):
            xd = derive(x)
            full = score_region(xd, targets[0], metrics, protocol)
            if nulls is not None:
                nulls.add(i, 0, xd, full)
        if nulls is not None:
            part = {name: _Holder(np.full((1, n_layers, 1, len(metrics)), np.nan))
                    for name in ("null_mean", "null_p95", "p_value")}
            part["score"] = _Holder(np.zeros((1, n_layers, 1, len(metrics))))
            nulls.write(part)
        return time.perf_counter() - start

    off, on = Protocol(permutations=0), Protocol(permutations=permutations)
    run(off)  # warm-up (imports, thread pools)
    times = {"off": [], "on": []}
    for _ in range(repeats):  # alternate, so that load on the machine hits both alike
        times["off"].append(run(off))
        times["on"].append(run(on))
    return min(times["off"]), min(times["on"])


class _Holder:
    """Stands in for a DataArray in :meth:`UnitNulls.write` (it reads and writes ``.values``)."""

    def __init__(self, values):
        self.values = values


def real_sweep(models, dataset: str, permutations: int):
    """Warm-cache sweeps with P=0 and P=``permutations``; (total, score, null) seconds for each."""
    from workbench.analysis import Protocol, sweep

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-null-") as tmp:
        tmp = Path(tmp)
        os.environ["WORKBENCH_CACHE"] = str(tmp / "cache")
        os.environ["WORKBENCH_DATA"] = str(tmp / "data")
        sweep(models, [dataset], protocol=Protocol(permutations=0), progress=False)  # fills the cache
        for label, p in (("P=0", 0), (f"P={permutations}", permutations), ("P=0 again", 0)):
            with timers() as spent:
                start = time.perf_counter()
                scores = sweep(models, [dataset], protocol=Protocol(permutations=p), progress=False)
                total = time.perf_counter() - start
            results[label] = (total, spent["score"], spent["null"])
            if p:
                finite = np.isfinite(scores["p_value"].values)
                results["cells"] = int(finite.sum())
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet18"])
    parser.add_argument("--dataset", default="cowley2023_v4")
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--stimuli", type=int, default=640)
    parser.add_argument("--features", type=int, default=2000)
    parser.add_argument("--neuroids", type=int, default=50)
    parser.add_argument("--layers", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--synthetic-only", action="store_true")
    args = parser.parse_args(argv)
    use_data_mirror()

    print(f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    off, on = synthetic(args.stimuli, args.features, args.neuroids, args.layers, args.permutations, args.repeats)
    print(f"synthetic unit: {args.layers} layers of {args.stimuli} x {args.features}, {args.neuroids} neuroids, "
          f"4 metrics (best of {args.repeats})")
    print(f"  scoring without null {off:7.3f} s   with {args.permutations} permutations {on:7.3f} s   "
          f"ratio {on / off:.2f} (+{100 * (on / off - 1):.0f} % scoring time; target <= +50 %)")
    if args.synthetic_only:
        return
    results = real_sweep(args.models, args.dataset, args.permutations)
    print(f"sweep: {', '.join(args.models)} x {args.dataset}, random weights, warm activation cache; "
          f"{results.pop('cells')} cells with a null")
    for label, (total, score, null) in results.items():
        print(f"  {label:<10} sweep {total:7.2f} s   in score_region {score:7.2f} s   in the nulls {null:7.2f} s")
    base = min(results["P=0"][0], results["P=0 again"][0])
    total, score, null = results[f"P={args.permutations}"]
    print(f"  nulls / scoring time: {null / score:.2f} (+{100 * null / score:.0f} %; target <= +50 %); "
          f"whole sweep {total / base:.2f}x of P=0")


if __name__ == "__main__":
    main()
