"""Benchmark: extraction with all layers hooked and streamed into GramStats vs plain inference.

For each model, two cases run in separate subprocesses (so each has its own peak memory):

- ``plain``: preprocessing + ``model(x)`` over every batch (SNNs: input repeated over T, state
  reset after each batch), nothing hooked;
- ``extract``: :func:`workbench.activations.extract_stats` with every analysis layer hooked,
  streamed to disk and reduced to GramStats (no cache reuse);
- with ``--per-step``, also ``extract+steps``: ``extract_stats(per_step=True)``, the averaged
  and every time step's statistics from the same forward pass.

It reports images per second of the forward pass, the time of the Gram finalisation, the
ratio extract_stats (forward pass + all statistics, spill included) / plain inference
(target <= 1.2x), the same ratio in CPU time (user + system, all threads: on a machine that
other jobs load, wall times vary between the cases, CPU times much less), the peak resident
memory (``ru_maxrss``) of each case (target <= 3 GB for SEW-ResNet-18, T=4, 224 px, 640
images, 11 layers) and what holding the full activations of all layers would need. With
``--repeats N`` the cases alternate N times (plain, extract, plain, extract, ...) and the
medians are reported.

Stimuli: the 640 images of cowley2023_v4 session 210325, read directly from
``../shared/data/cowley_v4/images/images_210325.zip`` (zipfile + PIL).

Usage::

    python benchmarks/bench_extract.py                 # SEW-ResNet-18, 640 images
    python benchmarks/bench_extract.py --quick         # 64 images
    python benchmarks/bench_extract.py --models sew_resnet18 resnet18 vit_b_32
    python benchmarks/bench_extract.py --per-step --repeats 3
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

DEFAULT_ZIP = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cowley_v4" / "images" / "images_210325.zip"


def load_images(zip_path: Path, n: int):
    from PIL import Image

    with zipfile.ZipFile(zip_path) as zf:
        names = [f"image{i + 1:04d}.jpg" for i in range(n)]
        return [Image.open(io.BytesIO(zf.read(name))).convert("RGB") for name in names]


def _warm_up(model, images) -> None:
    """One untimed batch, so that both cases start with allocated buffers and loaded kernels."""
    from workbench.activations import extract

    extract(model, images, layers=[model.layers[-1]], batch_size=len(images))


def run_case(args) -> dict:
    import numpy as np
    import torch

    from workbench.activations import extract_stats
    from workbench.activations.extractor import resolve_settings
    from workbench.activations.stimuli import iter_batches
    from workbench.models import create

    torch.set_num_threads(args.threads)
    images = load_images(Path(args.zip), args.n_images)
    model = create(args.model)
    result = {"model": args.model, "case": args.case, "n_images": len(images),
              "batch_size": args.batch_size, "threads": args.threads,
              "time_steps": model.time_steps, "layers": len(model.layers)}
    _warm_up(model, images[: args.batch_size])
    start, cpu_start = time.perf_counter(), _cpu_s()
    if args.case == "plain":
        settings = resolve_settings(model, None, args.batch_size, None, "mean", "cpu")
        with torch.inference_mode():
            for _, x in iter_batches(images, model.preprocessing, settings.batch_size):
                if model.is_spiking:
                    from spikingjelly.activation_based import functional

                    functional.reset_net(model.module)
                    x = x.unsqueeze(0).repeat(model.time_steps, 1, 1, 1, 1)
                model.module(x)
        result["pass_s"] = time.perf_counter() - start
        result["total_s"] = result["pass_s"]
    else:
        timings = {}
        import workbench.activations.streaming as streaming

        original = streaming.FeatureSpill.gram_stats

        def timed_gram_stats(self):
            t0 = time.perf_counter()
            try:
                return original(self)
            finally:
                timings["gram_s"] = timings.get("gram_s", 0.0) + time.perf_counter() - t0

        streaming.FeatureSpill.gram_stats = timed_gram_stats
        if args.spill_dir:
            Path(args.spill_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=args.spill_dir) as cache:
            stats = extract_stats(model, images, batch_size=args.batch_size, cache=cache,
                                  per_step=args.case == "extract+steps")
        if args.case == "extract+steps":
            stats = stats[0]
        total = time.perf_counter() - start
        result["total_s"] = total
        result["gram_s"] = timings.get("gram_s", 0.0)
        result["pass_s"] = total - result["gram_s"]
        features = sum(s.n_features for s in stats.values())
        result["features_per_image"] = int(features)
        result["full_activations_gb"] = len(images) * features * 4 / 1e9
        result["full_activations_per_step_gb"] = result["full_activations_gb"] * model.time_steps
        result["gram_check"] = float(np.trace(stats[model.layers[-1]].gram))
    result["cpu_s"] = _cpu_s() - cpu_start
    result["images_per_s"] = len(images) / result["pass_s"]
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return result


def _cpu_s() -> float:
    """User + system CPU time of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _median_case(runs: list[dict]) -> dict:
    """The run with the median total time, with the medians of the timings."""
    out = dict(sorted(runs, key=lambda r: r["total_s"])[len(runs) // 2])
    for key in ("pass_s", "total_s", "cpu_s", "gram_s", "images_per_s"):
        if key in out:
            out[key] = statistics.median(r[key] for r in runs)
    out["peak_rss_gb"] = max(r["peak_rss_gb"] for r in runs)
    out["runs"] = len(runs)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["sew_resnet18"])
    parser.add_argument("--quick", action="store_true", help="64 images instead of 640")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--zip", default=str(DEFAULT_ZIP))
    parser.add_argument("--spill-dir", default=None, help="where the spill/cache goes (tmp)")
    parser.add_argument("--per-step", action="store_true",
                        help="also time extract_stats(per_step=True): averaged + per-step statistics")
    parser.add_argument("--repeats", type=int, default=1, help="alternate the cases this many times")
    parser.add_argument("--case", choices=("plain", "extract", "extract+steps"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--n-images", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # child process
        print(json.dumps(run_case(args)))
        return 0
    n = 64 if args.quick else 640
    cases = ("plain", "extract") + (("extract+steps",) if args.per_step else ())
    for model in args.models:
        runs = {case: [] for case in cases}
        for _ in range(args.repeats):
            for case in cases:
                cmd = [sys.executable, __file__, "--case", case, "--model", model, "--n-images", str(n),
                       "--batch-size", str(args.batch_size), "--threads", str(args.threads),
                       "--zip", args.zip] + (["--spill-dir", args.spill_dir] if args.spill_dir else [])
                out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                                     env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
                runs[case].append(json.loads(out.stdout.strip().splitlines()[-1]))
        rows = {case: _median_case(r) for case, r in runs.items()}
        plain, ext = rows["plain"], rows["extract"]
        print(f"{model}: {n} images, batch {args.batch_size}, {ext['layers']} layers, "
              f"T={ext['time_steps']}, {args.threads} threads, median of {args.repeats} alternating run(s)")
        print(f"  plain model(x):      {plain['images_per_s']:7.2f} img/s  "
              f"({plain['pass_s']:.1f} s, CPU {plain['cpu_s']:.1f} s)  peak RSS {plain['peak_rss_gb']:.2f} GB")
        for case in cases[1:]:
            row = rows[case]
            label = "extract_stats" if case == "extract" else "extract_stats(per_step)"
            print(f"  {label + ':':24s} forward pass {row['pass_s']:.1f} s, Gram finalisation "
                  f"{row['gram_s']:.1f} s, total {row['total_s']:.1f} s (CPU {row['cpu_s']:.1f} s)")
            print(f"    ratio to plain inference: {row['total_s'] / plain['total_s']:.2f}x wall "
                  f"(target <= 1.2x), {row['cpu_s'] / plain['cpu_s']:.2f}x CPU time;  "
                  f"peak RSS {row['peak_rss_gb']:.2f} GB (target <= 3 GB for sew_resnet18)")
        print(f"  full activations would need {ext['full_activations_gb']:.2f} GB (T-averaged, "
              f"{ext['features_per_image']:,} features/image), "
              f"{ext['full_activations_per_step_gb']:.2f} GB with every time step kept")
        print("  json:", json.dumps(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
