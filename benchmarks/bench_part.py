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
from pathlib import Path

import numpy as np

from seeded_runs import add_seed_options, map_seeds, mean_sd, output_folder, run_tiny

LIMIT_S = 300.0


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_seed_options(parser, no_report_help="do not run (and time) the report of the first seed")
    args = parser.parse_args(argv)
    out = output_folder(args.out, "bench_part_")
    times = map_seeds(lambda s: run_tiny(
        "part", s, out, report=(s == args.seeds[0] and not args.no_report), extra=["--set", f"data_seed={s}"],
        overrides=args.overrides), args.seeds, args.jobs)
    results = {seed: collect(out / f"seed{seed}") for seed in args.seeds}
    changed = f" with {', '.join(args.overrides)}" if args.overrides else ""
    print(f"\nPART tiny preset (fg_motifs, data_seed = seed){changed}, seeds {args.seeds}, runs in {out}\n")
    print("| seed | acc PART | acc baseline | hit PART | chance PART | hit baseline backbone | chance baseline | "
          "train s |\n|---|---|---|---|---|---|---|---|")
    keys = ("acc_part", "acc_baseline", "hit_part", "chance_part", "hit_baseline", "chance_baseline", "train_s")
    for s in args.seeds:
        print(f"| {s} | " + " | ".join(f"{results[s][k]:.3f}" if k != "train_s" else f"{results[s][k]:.0f}"
                                       for k in keys) + " |")
    print("| mean ± sd | " + " | ".join(mean_sd([results[s][k] for s in args.seeds]) for k in keys) + " |")

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
    wall, cpu = times[args.seeds[0]]["wall_s"], times[args.seeds[0]]["cpu_s"]
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
