"""Overhead of the shared training loop over a bare PyTorch loop (same model, data, batch).

Both loops train ``small_cnn`` on digits32 (batch 64, SGD, cosine lr, augmentation on) for the
same epochs and evaluate on the test split after every epoch; the framework adds its sampler,
logging, tqdm bar, checkpoints (atomic, hashed) and ``metrics.csv``. The two are run
alternately ``repeats`` times in this process and the medians compared.

    .venv/bin/python benchmarks/bench_framework.py [--epochs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader


def bare_loop(epochs: int, seed: int = 0) -> float:
    """Seconds for a plain loop: DataLoader(shuffle), forward, CE, backward, SGD, LambdaLR, eval."""
    from workbench.data.training import load_training_data
    from workbench.training import build_network
    from workbench.training.loop import lr_factor_fn
    from workbench.training.config import TrainConfig

    start = time.perf_counter()
    torch.manual_seed(seed)
    data = load_training_data("digits32")
    network = build_network("small_cnn", seed=seed, num_classes=10)
    model = network.module
    config = TrainConfig(epochs=epochs)
    loader = DataLoader(data.train, batch_size=config.batch_size, shuffle=True, drop_last=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor_fn(config, len(loader)))
    for _ in range(epochs):
        model.train()
        for images, labels in loader:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        with torch.no_grad():
            correct = sum((model(x).argmax(1) == y).sum().item()
                          for x, y in DataLoader(data.test, batch_size=256))
        _ = correct / len(data.test)
    return time.perf_counter() - start


def framework_loop(epochs: int, seed: int = 0) -> float:
    """Seconds for ``workbench train supervised`` with the same settings (in process)."""
    from workbench.training import train

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        train("supervised", out=Path(tmp) / "run", preset="tiny",
              overrides=[f"epochs={epochs}", f"seed={seed}"])
    return time.perf_counter() - start


def framework_overhead(epochs: int = 2, repeats: int = 3) -> dict[str, float]:
    """Median seconds of both loops and their ratio (framework / bare)."""
    bare, framework = [], []
    for _ in range(repeats):
        bare.append(bare_loop(epochs))
        framework.append(framework_loop(epochs))
    result = {"bare_s": statistics.median(bare), "framework_s": statistics.median(framework)}
    result["ratio"] = result["framework_s"] / result["bare_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    r = framework_overhead(args.epochs, args.repeats)
    print(f"framework overhead ({args.epochs} epochs of digits32 on small_cnn, batch 64, median of {args.repeats}):")
    print(f"  bare PyTorch loop {r['bare_s']:.2f} s   workbench fit {r['framework_s']:.2f} s   "
          f"ratio {r['ratio']:.3f}   (target <= 1.10)")


if __name__ == "__main__":
    main()
