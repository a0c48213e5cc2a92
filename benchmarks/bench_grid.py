"""Benchmark: how long the whole ``huang2023`` grid (81 models x 3 datasets) takes on this machine.

Measured here, on whatever device is present (``--device``, default CUDA when available):

1. **Two small zoo models, one real dataset.** ``--models`` (default ``resnet18`` and
   ``sew_resnet18``) on the first ``--images`` stimuli of ``cowley2023_v4`` (from the mirror,
   ``$WORKBENCH_DATA_MIRROR``, default ``../shared/data``): images per second of the
   extraction (forward pass + every analysis layer's Gram statistics, no cache) and of the
   plain forward pass, and the seconds of the whole unit (extraction + every layer scored
   against V4 with the study preset's metrics and protocol, its additions included).
2. **Rates of this device.** The forward pass in FLOP/s (the reference models' counted FLOPs
   per image over their measured forward time; the SNN reference's rate for SNNs, the CNN
   reference's for CNNs and ViTs), the Gram product ``X @ X.T`` in FLOP/s (float32, the
   statistics' arithmetic), and the scoring time of one layer against one region at each
   study dataset's stimulus count (synthetic statistics of that size; the study's metrics,
   CKA and 100 permutations, as ``workbench study run huang2023`` computes by default).

The projection (the cost model; printed with its parts): for every model m of the preset and
dataset d with n_d stimuli,

    unit(m, d) = n_d * F_m / R_fwd  +  2 * n_d^2 * D_m / R_gram  +  L_m * sum_regions score(n_d)

where F_m is m's FLOPs per image at its input size (T steps for SNNs), counted with torch's
``FlopCounterMode`` on the architecture built on the ``meta`` device (no weights, no memory),
D_m the summed flattened size of its L_m analysis layers (from the same pass) and score(n)
the measured scoring time of one layer on one region. Not modelled: downloads, loading the
datasets (Allen: processing 32 NWB sessions once), spill I/O on the CPU path, the report.

Usage::

    python benchmarks/bench_grid.py                     # CPU here: 128 images, then the projection
    python benchmarks/bench_grid.py --device cuda --images 640
    python benchmarks/bench_grid.py --models resnet18 sew_resnet8 --skip-scoring-sizes 3200

Results of 2026-12-07 on this project's development machine, CPU only (2 cores, shared with
other jobs: load average 16-20 during the run, so the rates are several times below an idle
machine's; ``python benchmarks/bench_grid.py``)::

    resnet18       128 images of cowley2023_v4: forward 2.2 img/s, extraction 2.0 img/s,
                   unit (extraction + scoring vs V4) 67.0 s; forward 8.1 GFLOP/s
    sew_resnet18   128 images: forward 0.6 img/s, extraction 0.7 img/s, unit 182.3 s;
                   forward 8.6 GFLOP/s
    Gram product: 71.0 GFLOP/s (float32)
    scoring one layer x one region: 0.18 s at 118 stimuli, 8.45 s at 2100, 24.66 s at 3200
    projected huang2023 grid on cpu: 330.1 h (243 units)
      forward 269.9 h, statistics 33.0 h, scoring 27.2 h; SNNs 90.9 h, CNNs 135.0 h, ViTs 104.2 h

No GPU was available to this session: run it with ``--device cuda`` on one and quote that.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MIRROR = ROOT / ".." / "shared" / "data"
#: Stimuli and regions of the study's datasets (neuroids kept; the Allen areas' kept counts are
#: the study's, data_manifests/README.md; SVCCA reduces the Allen side to 40 dimensions).
STUDY_DATASETS = {
    "allen2019_neuropixels_natural_scenes": (118, [1758, 634, 722, 959, 524, 799]),
    "chang2021_face_am": (2100, [148]),
    "majajhong2015": (3200, [88, 168]),
}


def model_costs(name: str) -> tuple[float, int, int]:
    """``(FLOPs per image, summed analysis-layer size, number of layers)`` of zoo model ``name``,
    from one forward pass of its architecture on the meta device (CPU where it cannot)."""
    from torch.utils.flop_counter import FlopCounterMode

    from workbench.activations.hooks import hooked
    from workbench.models.registry import light_architecture
    from workbench.models.study_layers import study_input_size

    arch = light_architecture(name)
    module = arch.module.eval().requires_grad_(False)
    device = next(module.parameters()).device
    size = study_input_size(name)
    steps = int(arch.time_steps)
    x = torch.zeros((1, 3, size, size), device=device)
    if steps > 1:
        x = x.unsqueeze(0).repeat(steps, 1, 1, 1, 1)  # (T, b, C, H, W), as the extraction runs it
    sizes: dict[str, int] = {}

    def on_output(layer: str, out: torch.Tensor) -> None:
        sizes[layer] = out.numel() // steps

    with hooked(module, arch.layers, on_output), FlopCounterMode(display=False) as flops, \
            torch.no_grad():
        module(x)
    return float(flops.get_total_flops()), int(sum(sizes.values())), len(arch.layers)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_seconds(model, images, device: torch.device, batch_size: int) -> float:
    """Seconds of the plain forward pass (preprocessing included) over ``images``."""
    from workbench.activations.stimuli import iter_batches

    module = model.module.to(device).eval()
    reset = None
    if model.is_spiking:
        from spikingjelly.activation_based import functional

        reset = functional.reset_net
    start = time.perf_counter()
    with torch.inference_mode():
        for _, x in iter_batches(images, model.preprocessing, batch_size, 0):
            x = x.to(device)
            if reset is not None:
                reset(module)
                x = x.unsqueeze(0).repeat(model.time_steps, 1, 1, 1, 1)
            module(x)
    _sync(device)
    return time.perf_counter() - start


def gram_rate(device: torch.device, n: int = 1024, width: int = 8192, repeats: int = 3) -> float:
    """FLOP/s of the float32 Gram product ``X @ X.T`` of an (n, width) block on ``device``."""
    x = torch.randn(n, width, device=device)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        (x @ x.T).to(torch.float64)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n * n * width / best


def scoring_seconds(dataset: str, n_stimuli: int, n_neuroids: int, metrics, protocol,
                    features: int = 2000) -> float:
    """Seconds to score one layer (synthetic statistics, ``n_stimuli`` x ``features``) against
    one region of ``n_neuroids`` with ``metrics`` under ``protocol`` (its permutations too;
    SVCCA reduces the neural side where the protocol says so for ``dataset``)."""
    from workbench.analysis import score_layer
    from workbench.metrics import GramStats

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_stimuli, features)).astype(np.float32)
    y = rng.normal(size=(n_stimuli, n_neuroids))
    stats = GramStats.from_array(x)
    start = time.perf_counter()
    score_layer(stats, y, dataset=dataset, metrics=metrics, protocol=protocol)
    return time.perf_counter() - start


def measure_reference(name: str, dataset, args, metrics, protocol, device) -> dict:
    """Images/s and seconds per unit of one reference model on the dataset's first images."""
    from workbench.activations import extract_stats
    from workbench.analysis import score_layer
    from workbench.models import create

    model = create(name)
    images = [dataset.stimuli[i] for i in range(args.images)]
    forward_seconds(model, images[: args.batch_size], device, args.batch_size)  # warm-up
    t_forward = forward_seconds(model, images, device, args.batch_size)
    start = time.perf_counter()
    stats = extract_stats(model, images, batch_size=args.batch_size, device=device, cache=False)
    t_extract = time.perf_counter() - start
    responses = dataset.responses("V4").values[: args.images]
    start = time.perf_counter()
    for layer in model.layers:
        score_layer(stats[layer], responses, metrics=metrics, protocol=protocol)
    t_score = time.perf_counter() - start
    flops, _, _ = model_costs(name)
    return {"name": name, "spiking": model.is_spiking, "forward_ips": args.images / t_forward,
            "extract_ips": args.images / t_extract, "unit_s": t_extract + t_score,
            "score_s": t_score, "fwd_rate": args.images * flops / t_forward}


def project(study, rates: dict, score_per_dataset: dict, costs: dict) -> tuple[float, dict]:
    """Seconds of the whole grid and its parts (forward, statistics, scoring) by family."""
    from workbench.models.study_layers import study_family

    parts = {"forward": 0.0, "statistics": 0.0, "scoring": 0.0}
    by_family: dict[str, float] = {}
    for name in study.models:
        flops, features, n_layers = costs[name]
        rate = rates["snn" if study_family(name) == "snn" else "other"]
        for dataset, (n, regions) in STUDY_DATASETS.items():
            forward = n * flops / rate
            statistics = 2.0 * n * n * features / rates["gram"]
            scoring = n_layers * len(regions) * score_per_dataset[dataset]
            parts["forward"] += forward
            parts["statistics"] += statistics
            parts["scoring"] += scoring
            family = study_family(name)
            by_family[family] = by_family.get(family, 0.0) + forward + statistics + scoring
    return sum(parts.values()), {**parts, **{f"family {k}": v for k, v in by_family.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs=2, default=["resnet18", "sew_resnet18"],
                        metavar=("CNN", "SNN"), help="two small zoo models: a CNN, then an SNN")
    parser.add_argument("--images", type=int, default=None,
                        help="stimuli of cowley2023_v4 to run (default 640 on CUDA, 128 on "
                             "CPU; the study's protocol needs > 91 for SVCCA on V4)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--skip-scoring-sizes", type=int, nargs="*", default=[],
                        help="stimulus counts whose scoring time is extrapolated (n^3) from the "
                             "largest one measured instead of measured")
    args = parser.parse_args()
    device = torch.device(args.device)
    args.images = args.images or (640 if device.type == "cuda" else 128)
    os.environ.setdefault("WORKBENCH_DATA_MIRROR", str(DEFAULT_MIRROR.resolve()))

    import workbench.data
    from workbench.analysis import Protocol
    from workbench.studies import load_study

    study = load_study("huang2023")
    metrics = study.run_metrics()
    protocol = Protocol().replace(**study.run_protocol())
    dataset = workbench.data.load("cowley2023_v4")
    start = time.perf_counter()
    costs = {name: model_costs(name) for name in study.models}
    print(f"FLOPs and layer sizes of the {len(costs)} models counted on the meta device in "
          f"{time.perf_counter() - start:.0f} s")
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else os.cpu_count()} "
          f"{'GPU' if device.type == 'cuda' else 'CPU cores'}); torch threads {torch.get_num_threads()}")
    print(f"study huang2023: {len(study.models)} models x {len(STUDY_DATASETS)} datasets; metrics "
          f"{metrics}; permutations {protocol.permutations}")
    references = [measure_reference(name, dataset, args, metrics, protocol, device)
                  for name in args.models]
    for ref in references:
        print(f"{ref['name']:14s} {args.images} images of cowley2023_v4: forward "
              f"{ref['forward_ips']:7.1f} img/s, extraction (all layers' statistics) "
              f"{ref['extract_ips']:7.1f} img/s, unit (extraction + scoring vs V4) "
              f"{ref['unit_s']:7.2f} s (scoring {ref['score_s']:.2f} s); forward "
              f"{ref['fwd_rate'] / 1e9:.1f} GFLOP/s")
    rates = {"snn": next(r["fwd_rate"] for r in references if r["spiking"]),
             "other": next(r["fwd_rate"] for r in references if not r["spiking"]),
             "gram": gram_rate(device)}
    print(f"Gram product: {rates['gram'] / 1e9:.1f} GFLOP/s (float32)")
    score_per_dataset = {}
    measured: dict[int, float] = {}
    for dataset_name, (n, regions) in STUDY_DATASETS.items():
        if n in args.skip_scoring_sizes and measured:
            largest = max(measured)
            seconds = measured[largest] * (n / largest) ** 3
            how = f"extrapolated (n^3) from n={largest}"
        else:
            seconds = scoring_seconds(dataset_name, n, int(np.median(regions)), metrics, protocol)
            measured[n] = seconds
            how = "measured"
        score_per_dataset[dataset_name] = seconds
        print(f"scoring one layer x one region at {n} stimuli ({dataset_name}): {seconds:.2f} s ({how})")
    total, parts = project(study, rates, score_per_dataset, costs)
    print(f"projected huang2023 grid on {device}: {total / 3600:.1f} h "
          f"({len(study.models) * len(STUDY_DATASETS)} units; not counting downloads and "
          "the one-time processing of the Allen sessions)")
    for part, seconds in parts.items():
        print(f"  {part:14s} {seconds / 3600:8.2f} h")


if __name__ == "__main__":
    main()
