"""MADA / MADAv2 (issue 13) on this machine: the issue's claims over >= 3 seeds, mean and sd.

Claims checked:

1. On the tiny preset at a 5 % budget, multi-anchor selection (MADA) gives a higher target
   mIoU than random selection and than single-centroid selection (paired over seeds: the mean
   difference is > 0; the number of seeds where it is, and whether the mean is within two
   standard errors of 0, are printed too).
2. MADAv2's score gives a target mIoU at least MADA's (mean paired difference >= 0).
3. ``workbench train mada --preset tiny --report`` takes <= 6 minutes on a 2-core machine, timed
   as a subprocess for the first seed. The machine is shared by several agents, so the wall
   time is printed with the load average at the start and with the CPU time the run used
   (user + sys of the child processes): on a quiet machine the wall time of a one-thread run
   is close to its CPU time.

Every seed runs the tiny preset as is (``--seed`` only, which also seeds the generated
domains); nothing is tuned to make MADA win. ``--set KEY=VALUE`` (repeatable) changes the preset
for every run: a variant, not the claims' preset. After the claims the benchmark prints, per
target condition and averaged over the seeds, the pool share, the mean MADA score (distance to
the nearest source anchor of the warm-up network; :func:`workbench.methods.mada.analysis.scores_by_condition`),
each strategy's picks and each network's mIoU (``miou_by_condition``).

Usage::

    python benchmarks/bench_mada.py                          # seeds 0 1 2
    python benchmarks/bench_mada.py --seeds 0 1 2 3 4 --jobs 2 --out runs/bench_mada
    python benchmarks/bench_mada.py --seeds 0 1 2 3 4 --out runs/bench_mada_ref \
        --set source_descriptors=label_and_prediction --set anchor_gradient_scaling=true

The timed first seed runs alone (with ``--report``); ``--jobs N`` then trains the other seeds
N at once. Runs have one thread (``OMP_NUM_THREADS=1``). Finished run directories under
``--out`` are read, not retrained.

Result of 2026-12-07 (``--seeds 0 1 2 3 4 --jobs 1``, the two variants side by side; 2-core AMD
EPYC shared with other jobs, load 8-13 after seed 0). Target-test mIoU, mean ± sd over the seeds:

| variant | source_only | self_training | random | centroid | mada | madav2 |
|---|---|---|---|---|---|---|
| tiny as is | 0.3699 ± 0.0290 | 0.2450 ± 0.0092 | 0.6771 ± 0.0427 | 0.6013 ± 0.0305 | 0.6042 ± 0.0657 | 0.6061 ± 0.0653 |
| + reference options | 0.3699 ± 0.0290 | 0.2705 ± 0.0219 | 0.6806 ± 0.0426 | 0.6115 ± 0.0513 | 0.5804 ± 0.0268 | 0.5912 ± 0.0382 |

("+ reference options": ``--set source_descriptors=label_and_prediction --set
anchor_gradient_scaling=true``, the paper preset's two reference options; per seed, tiny as is:
mada 0.6203 0.6989 0.5395 0.5439 0.6182, random 0.6175 0.7295 0.6886 0.6545 0.6955; with the
options: mada 0.5947 0.5930 0.5407 0.5662 0.6076, random 0.6180 0.7352 0.6891 0.6681 0.6928.)

Claims, paired over the 5 seeds (tiny as is / with the reference options):

- MADA > random FAILS in both: -0.0730 ± 0.0608 (MADA higher on 1/5 seeds) / -0.1002 ± 0.0505 (0/5).
- MADA > centroid: +0.0028 ± 0.0528 (2/5, within noise) / FAILS, -0.0310 ± 0.0387 (1/5, within noise).
- MADAv2 >= MADA holds only within noise: +0.0019 ± 0.0047 (2/5) / +0.0108 ± 0.0132 (4/5).
- ``--report`` run: 249 s wall, 56 s CPU (load 0.8 at its start; limit 360 s): holds.

Why MADA loses to random here: MADA puts 8, 1, 10, 10 and 8 of its 10 images (seeds 0-4) on
``dusk``, 23.5 % of the pool (7.6 of 10 with the reference options), random 3.4 on average.
That is its design on this task: ``dusk`` is the condition farthest from the source anchors and
the one the source-only network handles worst (lowest source-only mIoU on 4 of 5 seeds; seed 3:
``fog``). Per condition, mean over the seeds (tiny as is;
with the reference options the scores are 0.182 / 0.286 / 0.177, ``dusk`` again the farthest):

| condition | pool share | mean MADA score | picks mada / random | mIoU source_only | random | mada |
|---|---|---|---|---|---|---|
| day | 0.612 | 0.110 | 2.2 / 5.4 | 0.538 | 0.773 | 0.653 |
| dusk | 0.235 | 0.194 | 7.4 / 3.4 | 0.113 | 0.601 | 0.665 |
| fog | 0.153 | 0.136 | 0.4 / 1.2 | 0.206 | 0.450 | 0.315 |

``dusk`` has the highest mean score on 4 of 5 seeds in both variants (seed 1: ``day`` holds 8
of the top 10, 9 with the options).
MADA's images lift ``dusk`` above random's (+0.064), but ``day`` (about 60 % of the test images) and
``fog`` stay 0.12 and 0.14 under random, which draws every condition about in proportion. The
same holds the other way round: on seed 1 MADA picks 8 ``day`` images (9 with the options) and
its ``dusk`` mIoU is 0.547 (0.067 with the options) against random's 0.672 (0.683). On these
numbers it is the tiny task (three conditions, one far from the source, 10 images) that makes
the farthest-first rule lose: a budget that concentrates on one condition leaves the others
unadapted. The two reference options do not change this (they widen the gap). The other
differences of the README's table (masked distances, k-means fill, stage-2 pseudo-labels,
network) were not varied here. Compared with 2026-12-03 (same seeds) every strategy's mean moved
by <= 0.004 and each seed by <= 0.015, except MADAv2 (mean 0.5870 -> 0.6061; seed 1 0.6098 ->
0.6989, equal to MADA's), after the code changes of issue 29.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from seeded_runs import map_seeds, run_tiny

TIME_LIMIT_S = 360.0
MODELS = ("source_only", "self_training", "random", "centroid", "mada", "madav2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run (a variant of the tiny preset, not the claims' preset)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_mada_"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"runs in {out}", flush=True)
    timings = [run_tiny("mada", args.seeds[0], out, report=True, overrides=args.overrides)]
    timings += list(map_seeds(lambda s: run_tiny("mada", s, out, report=False, overrides=args.overrides),
                              args.seeds[1:], max(1, args.jobs)).values())

    frames = []
    for seed in args.seeds:
        frame = pd.read_csv(out / f"seed{seed}" / "miou_summary.csv")
        frames.append(frame.assign(seed=seed))
    table = pd.concat(frames).pivot(index="seed", columns="model", values="miou")
    table = table[[m for m in MODELS if m in table.columns]]
    print("\nTarget-test mIoU per seed (tiny preset, 5 % budget):")
    print(table.round(4).to_string())
    stats = pd.DataFrame({"mean": table.mean(), "sd": table.std(ddof=1)})
    print("\nmean and sd over seeds:")
    print(stats.round(4).to_string())

    def paired(a: str, b: str) -> tuple[float, float, int]:
        diff = table[a] - table[b]
        return float(diff.mean()), float(diff.std(ddof=1)), int((diff > 0).sum())

    print("\nClaims:")
    n = len(table)
    ok = True
    for a, b, strict in (("mada", "random", True), ("mada", "centroid", True), ("madav2", "mada", False)):
        mean, sd, wins = paired(a, b)
        held = mean > 0 if strict else mean >= 0
        ok &= held
        relation = ">" if strict else ">="
        se = sd / np.sqrt(n)
        noise = " (within noise: |mean| < 2 standard errors)" if abs(mean) < 2 * se else ""
        print(f"  {a} {relation} {b}: paired difference {mean:+.4f} +- {sd:.4f} (sd), {a} higher on {wins}/{n} seeds "
              f"-> {'HOLDS' if held else 'FAILS'}{noise}")
    first = timings[0]
    held = first["wall_s"] <= TIME_LIMIT_S
    print(f"  train --preset tiny --report <= {TIME_LIMIT_S:.0f} s: wall {first['wall_s']:.0f} s, CPU {first['cpu_s']:.0f} s "
          f"(one thread), load average at start {first['load_at_start']:.1f} -> "
          f"{'HOLDS' if held else 'FAILS on this (loaded) machine; CPU time ' + ('within' if first['cpu_s'] <= TIME_LIMIT_S else 'over') + ' the limit'}")
    for record in timings[1:]:
        print(f"  seed {record['seed']} (no report): wall {record['wall_s']:.0f} s, CPU {record['cpu_s']:.0f} s, "
              f"load {record['load_at_start']:.1f}")
    print_conditions(out, args.seeds)
    return 0 if ok else 1


def print_conditions(out: Path, seeds: list[int]) -> None:
    """Per target condition, mean over the seeds: pool share, MADA score and picks, each network's mIoU."""
    from workbench.methods.mada.analysis import miou_by_condition, scores_by_condition

    scores = pd.concat([scores_by_condition(out / f"seed{seed}") for seed in seeds])
    miou = pd.concat([miou_by_condition(out / f"seed{seed}") for seed in seeds])
    print("\nPer target condition, mean over seeds (MADA score: distance to the nearest source anchor):")
    print(scores.groupby("condition", sort=False).mean(numeric_only=True).round(3).to_string())
    table = miou.pivot_table(index="condition", columns="model", values="miou", aggfunc="mean", sort=False)
    print(table[[m for m in MODELS if m in table.columns]].round(3).to_string())


if __name__ == "__main__":
    sys.exit(main())
