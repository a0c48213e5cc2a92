"""PART's claims on the tiny preset (issue 14), mean and sd over seeds.

For each seed ``S``, one ``workbench train part --preset tiny --seed S --set data_seed=S`` run
trains the baseline (``snapshots/baseline``: the same backbone and global transformer, global
branch only) and PART on the same generated ``fg_motifs`` task and seed; the seeds vary the
task (glyphs, images, motif places), the initialisation, the data order and the thresholds.
Both networks are evaluated global-only. Claims:

1. PART's global-only test accuracy exceeds the baseline's.
2. The parts PART discovers at test time (tau = 0.5) cover the class-defining motif more often
   than chance (hit = the motif box's centre inside one of the 4 part boxes; chance = the same
   boxes scored against other test images' motif boxes, :func:`workbench.methods.part.analysis.hit_rate`).
   The hit rate of the same discovery run on the baseline's backbone is shown for comparison.
3. ``workbench train part --preset tiny --report`` takes <= 5 minutes (seed 0 is run with
   ``--report`` and timed end to end; only meaningful on a quiet machine, so the training CPU
   time is printed too).

Nothing is tuned to make PART win; a failed claim is printed as FAIL.

Usage::

    python benchmarks/bench_part.py                        # seeds 0 1 2, in parallel processes
    python benchmarks/bench_part.py --seeds 0 1 2 3 4 --out runs/bench_part --jobs 2
    python benchmarks/bench_part.py --set epochs=12 --no-report --out runs/bench_part_e12   # sensitivity

Runs are kept under ``--out`` (default: a temporary folder) and reused when rerun with the same
``--out`` (a finished run directory is read, not retrained; its time is then not re-measured).

Result of 2026-12-03 (``--seeds 0 1 2 --jobs 2``; 2-core AMD EPYC, AVX2):

| seed | acc PART | acc baseline | hit PART | chance PART | hit baseline backbone | chance baseline | train s |
|---|---|---|---|---|---|---|---|
| 0 | 0.823 | 0.875 | 0.810 | 0.617 | 0.785 | 0.526 | 199 |
| 1 | 0.762 | 0.723 | 0.815 | 0.504 | 0.650 | 0.413 | 199 |
| 2 | 0.865 | 0.818 | 0.935 | 0.616 | 0.772 | 0.424 | 215 |
| mean ± sd | 0.817 ± 0.051 | 0.805 ± 0.077 | 0.853 ± 0.071 | 0.579 ± 0.065 | 0.736 ± 0.075 | 0.454 ± 0.062 | 204 ± 9 |

| claim | measured | verdict |
|---|---|---|
| global-only test acc PART > baseline | +0.012 ± 0.056 (wins 2/3) | PASS (within noise) |
| PART's parts cover the motif more often than chance | hit - chance +0.274 ± 0.071 (wins 3/3) | PASS |
| tiny --report <= 300 s | 264 s wall, 260 s CPU (seed 0, 2 runs at once) | PASS |
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

LIMIT_S = 300.0


def _run(seed: int, out: Path, report: bool, overrides: list[str] = ()) -> tuple[float, float]:
    """``(wall s, CPU s of the child)`` of one run (NaN when reused)."""
    run_dir = out / f"seed{seed}"
    if (run_dir / "model_card.json").is_file() and (not report or (run_dir / "report.html").is_file()):
        return float("nan"), float("nan")
    cmd = [sys.executable, "-m", "workbench", "train", "part", "--preset", "tiny", "--seed", str(seed),
           "--set", f"data_seed={seed}", "--out", str(run_dir), "--force"] + (["--report"] if report else [])
    cmd += [arg for pair in overrides for arg in ("--set", pair)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.setdefault("WORKBENCH_DATA_MIRROR", "/work/shared/data")
    start = time.perf_counter()
    log = out / f"seed{seed}.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here: rusage of this child alone
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}:\n{log.read_text()[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def collect(run_dir: Path) -> dict[str, float]:
    """Accuracies (global-only) and hit rates of one run, read from its cards."""
    card = json.loads((run_dir / "model_card.json").read_text())
    base = json.loads((run_dir / "snapshots" / "baseline" / "model_card.json").read_text())
    part = card["part"]
    return {"acc_part": card["evaluation"]["test_acc"], "acc_baseline": base["evaluation"]["test_acc"],
            "hit_part": part["hit_rate"]["hit_rate"], "chance_part": part["hit_rate"]["chance"],
            "hit_baseline": part["baseline_hit_rate"]["hit_rate"],
            "chance_baseline": part["baseline_hit_rate"]["chance"],
            "box_area_part": part["hit_rate"]["mean_box_area"], "train_s": card["wall_time_s"]}


def _fmt(values) -> str:
    values = np.asarray(values, dtype=float)
    sd = values.std(ddof=1) if len(values) > 1 else float("nan")
    return f"{values.mean():.3f} ± {sd:.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=3, help="training processes at once (1 thread each)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run (a sensitivity check, not the claims' preset)")
    parser.add_argument("--no-report", action="store_true", help="do not run (and time) the report of the first seed")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_part_"))
    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        times = dict(zip(args.seeds, pool.map(
            lambda s: _run(s, out, report=(s == args.seeds[0] and not args.no_report), overrides=args.overrides),
            args.seeds)))
    results = {seed: collect(out / f"seed{seed}") for seed in args.seeds}
    changed = f" with {', '.join(args.overrides)}" if args.overrides else ""
    print(f"\nPART tiny preset (fg_motifs, data_seed = seed){changed}, seeds {args.seeds}, runs in {out}\n")
    print("| seed | acc PART | acc baseline | hit PART | chance PART | hit baseline backbone | chance baseline | "
          "train s |\n|---|---|---|---|---|---|---|---|")
    keys = ("acc_part", "acc_baseline", "hit_part", "chance_part", "hit_baseline", "chance_baseline", "train_s")
    for s in args.seeds:
        print(f"| {s} | " + " | ".join(f"{results[s][k]:.3f}" if k != "train_s" else f"{results[s][k]:.0f}"
                                       for k in keys) + " |")
    print("| mean ± sd | " + " | ".join(_fmt([results[s][k] for s in args.seeds]) for k in keys) + " |")

    def diffs(a, b):
        return [results[s][a] - results[s][b] for s in args.seeds]

    def paired(a, b):
        d = diffs(a, b)
        sd = np.std(d, ddof=1) if len(d) > 1 else float("nan")
        return f"{np.mean(d):+.3f} ± {sd:.3f} (wins {sum(x > 0 for x in d)}/{len(d)})"

    print("\n| claim | measured | verdict |\n|---|---|---|")
    ok = np.mean(diffs("acc_part", "acc_baseline")) > 0
    print(f"| global-only test acc PART > baseline | {paired('acc_part', 'acc_baseline')} | "
          f"{'PASS' if ok else 'FAIL'} |")
    ok = np.mean(diffs("hit_part", "chance_part")) > 0
    print(f"| PART's parts cover the motif more often than chance | hit - chance {paired('hit_part', 'chance_part')}"
          f" | {'PASS' if ok else 'FAIL'} |")
    wall, cpu = times[args.seeds[0]]
    if np.isnan(wall) or args.no_report:
        verdict = "not measured (reused run or --no-report)"
    else:
        verdict = "PASS" if wall <= LIMIT_S else f"FAIL on this machine (load {os.getloadavg()[0]:.1f})"
    what = "training only, " if args.no_report else ""
    print(f"| tiny --report <= {LIMIT_S:.0f} s | {wall:.0f} s wall, {cpu:.0f} s CPU ({what}seed {args.seeds[0]}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}, {args.jobs} runs at once) | {verdict} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
