"""Training methods on this machine: the shared loop's overhead, and every method's claims.

``python benchmarks/bench_methods.py`` runs them all (hours on 2 cores); a part alone:
``overhead`` (the loop vs a bare PyTorch loop, benchmarks/bench_framework.py), ``lats``
(below), ``dst``, ``qsam``, ``savc``, ``mada``, ``part``, ``unidet`` (benchmarks/bench_<method>.py,
options passed through).

LATS part (issue 10): for each architecture (the small CNN and the small SEW-ResNet of the
tiny preset) and each seed, three pruning runs of the same length on digits32:

- ``lats``: the LATS threshold schedule to the final threshold ``D`` of that architecture;
- ``linear``: a linear threshold ramp, its final threshold chosen by bisection on seed 0 so
  that its final sparsity matches LATS's (the same value is then used for every seed, so
  sparsities differ a little between seeds; both are printed);
- ``oneshot``: global magnitude pruning, at the end of the dense phase, of exactly the fraction
  of the pruned layers that the LATS run of the same seed ended with, then fine-tuning with
  the mask fixed for the same number of steps.

All three share the tiny preset's recipe (dense epochs, then the pruning phase; cosine
learning rate; same data, seed, batch order). The table gives mean and sd over seeds of the
test accuracy and the final sparsity (all conv/linear weights), and the mean over seeds of the
paired accuracy difference LATS - baseline. Nothing is tuned per schedule beyond matching the
sparsity, and nothing to make LATS win.

Usage::

    python benchmarks/bench_methods.py lats                   # both architectures, seeds 0 1 2
    python benchmarks/bench_methods.py lats --archs small_cnn --seeds 0 1 2 3 4
    python benchmarks/bench_methods.py lats --out runs/bench_lats   # keep the run directories
    # one process per seed (a shared machine), the linear ramp's D given, then one table:
    python benchmarks/bench_methods.py lats --archs small_cnn --seeds 1 --linear-D small_cnn=0.0381132 --out DIR1
    python benchmarks/bench_methods.py lats-table DIR0 DIR1 DIR2

Runs are kept under ``--out`` (default: a temporary folder) and reused when rerun with the
same ``--out`` (a finished run directory is read, not retrained).

Result of 2026-12-03 (2-core machine shared with other training jobs; 3 seeds):

| arch | schedule | seeds | test acc (mean ± sd) | sparsity (mean ± sd) | LATS − this (paired) |
|---|---|---|---|---|---|
| small_cnn | lats | 3 | 98.00 ± 0.38 % | 90.55 ± 0.17 % | — |
| small_cnn | linear | 3 | 48.96 ± 16.58 % | 90.54 ± 0.09 % | +49.04 ± 16.56 pp |
| small_cnn | oneshot | 3 | 95.48 ± 0.64 % | 90.55 ± 0.17 % | +2.52 ± 0.56 pp |
| small_sew_resnet | lats | 3 | 55.41 ± 1.22 % | 88.08 ± 0.30 % | — |
| small_sew_resnet | oneshot | 3 | 39.19 ± 3.61 % | 88.08 ± 0.30 % | +16.22 ± 2.91 pp |
| small_sew_resnet | linear | 3 | 18.74 ± 8.12 % | 89.20 ± 0.09 % | +36.67 ± 8.80 pp |

The CNN's linear-ramp D (0.0381132) came from the threshold search on seed 0 (D = 0.042:
93.4 %, 0.0393: 91.6 %, 0.0381: 90.6 %); with LATS's own D = 0.042 the linear ramp reached
93.3 % sparsity and 52 / 36 / 20 % accuracy. The SEW-ResNet's linear D (0.0557) is one
secant step from its D = 0.066 run (93.0 % sparsity, 16.9 % accuracy, seed 0), not a search:
its sparsity is 1.1 points above LATS's. The SEW-ResNet's LATS D = 0.066 gave 88 %, short of
the 90 % aimed at, and the tiny recipe leaves the spiking network undertrained (55 % with
LATS): its numbers compare the schedules on a weak network.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

#: Final threshold of the LATS runs per architecture, chosen once (seed 0) so that the final
#: sparsity is >= 90 % under the tiny preset's recipe; the baselines are matched to it.
LATS_D = {"small_cnn": 0.042, "small_sew_resnet": 0.066}
#: Overrides of the tiny preset used by the benchmark (none: the preset itself).
BENCH_OVERRIDES: tuple[str, ...] = ()


def lats_run(out_dir: Path, arch: str, schedule: str, seed: int, *, D: float | None = None,
             target_sparsity: float | None = None, overrides: Sequence[str] = ()) -> dict:
    """Train (or read, if finished) one tiny-preset LATS run; return its summary row."""
    from workbench.training import train

    out_dir = Path(out_dir)
    sets = [f"arch={arch}", f"schedule={schedule}", "snapshots=false", *overrides]
    if D is not None:
        sets.append(f"D={D!r}")
    if target_sparsity is not None:
        sets.append(f"target_sparsity={target_sparsity!r}")
    start = time.perf_counter()
    if not (out_dir / "model_card.json").is_file():
        train("lats", out=out_dir, preset="tiny", overrides=sets, seed=seed, force=True)
    card = json.loads((out_dir / "model_card.json").read_text())
    return {"arch": arch, "schedule": schedule, "seed": seed, "D": D, "target_sparsity": target_sparsity,
            "test_acc": card["evaluation"]["test_acc"], "sparsity": card["sparsity"]["overall"],
            "sparsity_pruned": card["sparsity"]["pruned_overall"], "wall_s": time.perf_counter() - start,
            "run_dir": str(out_dir)}


def match_threshold(out_root: Path, arch: str, schedule: str, seed: int, target: float, D0: float, *,
                    overrides: Sequence[str] = (), max_runs: int = 3, tolerance: float = 0.0075,
                    slope: float = 0.4) -> tuple[float, list[dict]]:
    """Find the final threshold ``D`` at which ``schedule``'s final sparsity is ``target``.

    Sparsity grows with ``D``. The first try is ``D0``; the next ones are secant steps in
    ``log D`` (the first with the prior ``slope`` = d sparsity / d log D, then through the two
    latest runs). At most ``max_runs`` runs; stops within ``tolerance``; returns the ``D`` whose
    sparsity came closest, and every run's row.
    """
    rows = []
    D = D0
    for _ in range(max_runs):
        row = lats_run(out_root / f"{arch}_{schedule}_D{D:.6g}_s{seed}", arch, schedule, seed, D=D,
                       overrides=overrides)
        rows.append(row)
        if abs(row["sparsity"] - target) <= tolerance:
            break
        if len(rows) >= 2:
            a, b = rows[-2], rows[-1]
            if b["sparsity"] != a["sparsity"] and b["D"] != a["D"]:
                slope = max((b["sparsity"] - a["sparsity"]) / math.log(b["D"] / a["D"]), 0.05)
        step = (target - row["sparsity"]) / slope
        D = row["D"] * math.exp(min(max(step, -1.0), 1.0))
    best = min(rows, key=lambda r: abs(r["sparsity"] - target))
    return best["D"], rows


def lats_benchmark(out_root: str | os.PathLike, *, archs: Sequence[str] = ("small_cnn", "small_sew_resnet"),
                   seeds: Sequence[int] = (0, 1, 2), thresholds: dict[str, float] | None = None,
                   overrides: Sequence[str] = BENCH_OVERRIDES, calibration_runs: int = 3,
                   linear_D: dict[str, float] | None = None, log=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run LATS, the linear ramp and one-shot magnitude pruning at matched sparsity.

    Returns
    -------
    results : DataFrame
        One row per (arch, schedule, seed): test_acc, sparsity, sparsity_pruned, D,
        target_sparsity, wall_s, run_dir.
    calibration : DataFrame
        The linear ramp's threshold-search runs on seed 0.

    With ``linear_D[arch]`` given, the linear ramp uses that final threshold (no search) and
    the runs go seed by seed (lats, oneshot, linear), so that an interrupted benchmark leaves
    complete seeds.
    """
    out_root = Path(out_root)
    thresholds = {**LATS_D, **(thresholds or {})}
    rows, calibration = [], []

    def save() -> None:  # after every run, so that an interrupted benchmark leaves its rows
        pd.DataFrame(rows).to_csv(out_root / "lats_results.csv", index=False)
        pd.DataFrame(calibration).to_csv(out_root / "lats_calibration.csv", index=False)

    for arch in archs:
        if linear_D and arch in linear_D:
            for seed in seeds:
                row = lats_run(out_root / f"{arch}_lats_s{seed}", arch, "lats", seed, D=thresholds[arch],
                               overrides=overrides)
                target = round(row["sparsity_pruned"], 6)
                rows.append(row)
                save()
                log(f"{arch} lats seed {seed}: acc {row['test_acc']:.3f} sparsity {row['sparsity']:.3f}")
                for schedule, kwargs in (("oneshot", {"target_sparsity": target}), ("linear", {"D": linear_D[arch]})):
                    suffix = f"_D{linear_D[arch]:.6g}" if schedule == "linear" else ""
                    row = lats_run(out_root / f"{arch}_{schedule}{suffix}_s{seed}", arch, schedule, seed,
                                   overrides=overrides, **kwargs)
                    rows.append(row)
                    save()
                    log(f"{arch} {schedule} seed {seed}: acc {row['test_acc']:.3f} sparsity {row['sparsity']:.3f}")
            continue
        lats = {}
        for seed in seeds:
            row = lats_run(out_root / f"{arch}_lats_s{seed}", arch, "lats", seed, D=thresholds[arch],
                           overrides=overrides)
            lats[seed] = row
            rows.append(row)
            save()
            log(f"{arch} lats seed {seed}: acc {row['test_acc']:.3f} sparsity {row['sparsity']:.3f} ({row['wall_s']:.0f} s)")
        D_linear, cal = match_threshold(out_root, arch, "linear", seeds[0], lats[seeds[0]]["sparsity"],
                                        thresholds[arch], overrides=overrides, max_runs=calibration_runs)
        calibration += cal
        save()
        tries = ", ".join(f"D={r['D']:.4g}: {r['sparsity']:.3f}" for r in cal)
        log(f"{arch} linear: D = {D_linear:.5g} matches the LATS sparsity of seed {seeds[0]} ({tries})")
        for seed in seeds:
            row = lats_run(out_root / f"{arch}_linear_D{D_linear:.6g}_s{seed}", arch, "linear", seed,
                           D=D_linear, overrides=overrides)
            rows.append(row)
            save()
            log(f"{arch} linear seed {seed}: acc {row['test_acc']:.3f} sparsity {row['sparsity']:.3f}")
            target = round(lats[seed]["sparsity_pruned"], 6)
            row = lats_run(out_root / f"{arch}_oneshot_s{seed}", arch, "oneshot", seed, target_sparsity=target,
                           overrides=overrides)
            rows.append(row)
            save()
            log(f"{arch} oneshot seed {seed}: acc {row['test_acc']:.3f} sparsity {row['sparsity']:.3f}")
    return pd.DataFrame(rows), pd.DataFrame(calibration)


def lats_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds per (arch, schedule), and the paired difference to LATS."""
    stats = results.groupby(["arch", "schedule"], sort=False).agg(
        seeds=("seed", "count"), acc_mean=("test_acc", "mean"), acc_sd=("test_acc", "std"),
        sparsity_mean=("sparsity", "mean"), sparsity_sd=("sparsity", "std"))
    diffs = []
    for (arch, schedule), _ in stats.iterrows():
        part = results[results.arch == arch].pivot_table(index="seed", columns="schedule", values="test_acc")
        d = (part["lats"] - part[schedule]) if schedule != "lats" else pd.Series([np.nan])
        diffs.append((d.mean(), d.std()))
    stats["lats_minus_this_mean"] = [d[0] for d in diffs]
    stats["lats_minus_this_sd"] = [d[1] for d in diffs]
    return stats


def format_lats_table(stats: pd.DataFrame) -> str:
    lines = ["| arch | schedule | seeds | test acc (mean ± sd) | sparsity (mean ± sd) | LATS − this (paired, mean ± sd) |",
             "|---|---|---|---|---|---|"]
    for (arch, schedule), r in stats.iterrows():
        diff = ("—" if schedule == "lats" else
                f"{100 * r.lats_minus_this_mean:+.2f} ± {100 * r.lats_minus_this_sd:.2f} pp")
        lines.append(f"| {arch} | {schedule} | {int(r.seeds)} | {100 * r.acc_mean:.2f} ± {100 * r.acc_sd:.2f} % | "
                     f"{100 * r.sparsity_mean:.2f} ± {100 * r.sparsity_sd:.2f} % | {diff} |")
    return "\n".join(lines)


def _pairs(items) -> list[tuple[str, float]]:
    pairs = []
    for item in items or ():
        arch, _, value = item.partition("=")
        pairs.append((arch, float(value)))
    return pairs


def run_lats_part(args) -> int:
    import torch

    if args.out:
        out_root = Path(args.out)
        out_root.mkdir(parents=True, exist_ok=True)
        context = None
    else:
        context = tempfile.TemporaryDirectory(prefix="bench_lats_")
        out_root = Path(context.name)
    try:
        thresholds = dict(_pairs(args.D))
        started = time.perf_counter()
        results, calibration = lats_benchmark(out_root, archs=args.archs, seeds=args.seeds,
                                              thresholds=thresholds, overrides=args.set or (),
                                              calibration_runs=args.calibration_runs,
                                              linear_D=dict(_pairs(args.linear_D)))
        stats = lats_table(results)
        print(f"\nLATS vs baselines on digits32, tiny preset, {len(args.seeds)} seeds "
              f"({time.perf_counter() - started:.0f} s, torch threads {torch.get_num_threads()}):\n")
        print(format_lats_table(stats))
        print("\nper run:")
        print(results.drop(columns=["run_dir"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    finally:
        if context is not None:
            context.cleanup()
    return 0


#: Benchmarks of the other methods, each a script of its own run through this one.
METHOD_BENCHMARKS = {"dst": "bench_dst", "qsam": "bench_qsam", "savc": "bench_savc", "mada": "bench_mada",
                     "part": "bench_part", "unidet": "bench_unidet"}


def run_overhead(args) -> int:
    from bench_framework import framework_overhead

    r = framework_overhead(args.epochs, args.repeats)
    print(f"framework overhead ({args.epochs} epochs of digits32 on small_cnn, batch 64, median of {args.repeats}):")
    print(f"  bare PyTorch loop {r['bare_s']:.2f} s   workbench fit {r['framework_s']:.2f} s   "
          f"ratio {r['ratio']:.3f}   (target <= 1.10)")
    return 0


def run_method_benchmark(name: str, argv: list[str]) -> int:
    import importlib

    return importlib.import_module(METHOD_BENCHMARKS[name]).main(argv)


def main(argv=None) -> int:
    """``bench_methods.py PART [options]``; without a part: the overhead, then every method's claims."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in METHOD_BENCHMARKS:
        return run_method_benchmark(argv[0], argv[1:])
    if not argv:
        status = main(["overhead"]) or main(["lats"])
        for name in METHOD_BENCHMARKS:
            status = status or run_method_benchmark(name, [])
        return status
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Other methods: " + ", ".join(
                                         f"`{k} [options]` (benchmarks/{v}.py)" for k, v in METHOD_BENCHMARKS.items()))
    sub = parser.add_subparsers(dest="part", required=True)
    overhead = sub.add_parser("overhead", help="the shared loop's time over a bare PyTorch loop (target <= 1.10)")
    overhead.add_argument("--epochs", type=int, default=2)
    overhead.add_argument("--repeats", type=int, default=3)
    overhead.set_defaults(func=run_overhead)
    lats = sub.add_parser("lats", help="LATS vs linear ramp vs one-shot magnitude pruning at matched sparsity")
    lats.add_argument("--archs", nargs="+", default=["small_cnn", "small_sew_resnet"])
    lats.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    lats.add_argument("--D", nargs="+", metavar="ARCH=D", help=f"final LATS threshold per arch (default {LATS_D})")
    lats.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="extra overrides of the tiny preset")
    lats.add_argument("--out", help="keep (and reuse) the run directories here")
    lats.add_argument("--linear-D", nargs="+", metavar="ARCH=D",
                      help="final threshold of the linear ramp per arch (no search; runs go seed by seed)")
    lats.add_argument("--calibration-runs", type=int, default=3,
                      help="most runs of the linear ramp's threshold search (default 3)")
    lats.set_defaults(func=run_lats_part)
    table = sub.add_parser("lats-table", help="print the LATS table from the lats_results.csv of earlier --out folders")
    table.add_argument("dirs", nargs="+", metavar="DIR")
    table.set_defaults(func=lambda a: print(format_lats_table(lats_table(pd.concat(
        [pd.read_csv(Path(d) / "lats_results.csv") for d in a.dirs], ignore_index=True)))) or 0)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
