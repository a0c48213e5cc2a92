"""DST (issue 11) on this machine: the claims, over seeds, on the tiny preset.

For each seed, one ``workbench train dst --preset tiny --seed S`` run, which trains the DSNN by
DST (loss CE(spike head) + CE(AAP head)) and, from the same initial weights with the same data
order and augmentation, the same FSNN on its spike head alone (``snapshots/spike_only``).
Claims checked (issue 11):

1. accuracy: the DST-trained spike head (the FSNN, AAP removed) is at least as accurate as
   spike-only training: mean and sd over seeds of both test accuracies, of the DSNN's (AAP
   kept), and of the paired difference DST - spike-only;
2. gradients: the early blocks of the DST-trained FSNN receive larger gradient norms during
   training than those of the spike-only baseline: per part of the spike stream (stem, every
   block, fc), the mean over seeds of the ratio of the mean gradient norms (DST / spike-only),
   its sd, and on how many seeds it is > 1; "early" = the blocks of the first two stages;
3. time: ``workbench train dst --preset tiny --report`` <= 5 minutes on 2 cores
   (``--time-report``: one run of seed 0 with its report, timed alone, before the seeds;
   the machine's 1-minute load average at its start is printed beside it).

Nothing is tuned per seed or to make DST win: the tiny preset is used as it is.

Usage::

    python benchmarks/bench_dst.py                         # seeds 0 1 2, one process after another
    python benchmarks/bench_dst.py --jobs 3 --out runs/bench_dst   # seeds in parallel, 1 thread each
    python benchmarks/bench_dst.py --time-report --out runs/bench_dst

Runs are kept under ``--out`` (default: a temporary folder) and read, not retrained, when the
benchmark is rerun with the same ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from seeded_runs import map_seeds, output_folder, run_tiny

#: Limit of claim 3, seconds.
REPORT_LIMIT_S = 300.0


def seed_row(run_dir: Path, seed: int) -> tuple[dict, pd.Series]:
    """Accuracies of one seed's run, and its per-part gradient-norm ratio."""
    card = json.loads((run_dir / "model_card.json").read_text())
    ev = card["evaluation"]
    row = {"seed": seed, "fsnn_dst": ev["test_acc"], "spike_only": ev["test_acc_spike_only"],
           "dsnn": ev["test_acc_dsnn"], "train_s": card["wall_time_s"]}
    row["diff"] = row["fsnn_dst"] - row["spike_only"]
    return row, pd.Series(card["gradient_norms"]["ratio"], name=seed)


def summarise(rows: list[dict], ratios: list[pd.Series]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-seed accuracy table with mean and sd rows, and the gradient-ratio table."""
    acc = pd.DataFrame(rows).set_index("seed")
    stats = pd.DataFrame({"mean": acc.mean(), "sd": acc.std(ddof=1)}).T
    acc = pd.concat([acc, stats])
    ratio = pd.concat(ratios, axis=1)
    grad = pd.DataFrame({"ratio_mean": ratio.mean(axis=1), "ratio_sd": ratio.std(axis=1, ddof=1),
                         "seeds_above_1": (ratio > 1).sum(axis=1), "seeds": ratio.shape[1]})
    return acc, grad


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=None, help="where the runs are kept (default: a temporary folder)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel (1 thread each if > 1)")
    parser.add_argument("--time-report", action="store_true",
                        help="first time `workbench train dst --preset tiny --report` (seed 0) alone")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override of the tiny preset (for trying the benchmark quickly; not for claims)")
    args = parser.parse_args(argv)
    out = output_folder(Path(args.out) if args.out else None, "bench_dst_")
    overrides = tuple(args.overrides)
    timing = None
    if args.time_report:  # alone, on every thread, in its own folder (out/report/seed0)
        timing = run_tiny("dst", 0, out / "report", report=True, overrides=overrides, threads=None)
    threads = 1 if args.jobs > 1 else None
    map_seeds(lambda s: run_tiny("dst", s, out, report=False, overrides=overrides, threads=threads),
              args.seeds, max(1, args.jobs))
    rows, ratios = [], []
    for seed in args.seeds:
        row, ratio = seed_row(out / f"seed{seed}", seed)
        rows.append(row)
        ratios.append(ratio)
    acc, grad = summarise(rows, ratios)
    pd.set_option("display.width", 160)
    print(f"DST tiny preset, seeds {args.seeds}, runs in {out}" + (f" (overrides {list(overrides)})" if overrides else ""))
    print("\nTest accuracy of the final epoch (digits32, 450 test images; no best-epoch selection): FSNN "
          "trained by DST (AAP removed), same FSNN trained spike-only, DSNN (AAP kept)")
    print(acc.round(4).to_string())
    mean = acc.loc["mean"]
    verdict = "holds" if mean["diff"] >= 0 else "FAILS"
    wins = int((acc.drop(["mean", "sd"])["diff"] >= 0).sum())
    print(f"claim 1 (DST spike head >= spike-only): {verdict}: mean difference {mean['diff']:+.4f} "
          f"(sd {acc.loc['sd', 'diff']:.4f}); DST >= spike-only on {wins}/{len(args.seeds)} seeds")
    print("\nGradient norm per part of the spike stream, mean over training steps, ratio DST / spike-only")
    print(grad.round(3).to_string())
    early = [p for p in grad.index if p.startswith(("layer1.", "layer2."))]
    early_mean = float(grad.loc[early, "ratio_mean"].mean())
    verdict = "holds" if (grad.loc[early, "ratio_mean"] > 1).all() else "FAILS"
    per_block = ", ".join(f"{p} {grad.loc[p, 'ratio_mean']:.2f}" for p in early)
    print(f"claim 2 (early blocks {early} get larger gradients under DST): {verdict}: mean ratio over them "
          f"{early_mean:.3f}; per block {per_block}")
    if timing is not None:
        wall, load = timing["wall_s"], timing["load_at_start"]
        if np.isnan(wall):
            print("\nclaim 3: the timed run existed already; rerun with a new --out to time it")
        else:
            verdict = "holds" if wall <= REPORT_LIMIT_S else "FAILS"
            print(f"\nclaim 3 (train --preset tiny --report <= {REPORT_LIMIT_S:.0f} s): {verdict}: {wall:.0f} s "
                  f"(1-min load average at start {load:.1f} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
