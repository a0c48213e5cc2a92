"""Micro configs: the supervised method on 64-128 digits, a few steps, seconds per run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: A run of 3 epochs x 4 steps of 16 images on the small CNN (about 3 s on one core).
MICRO = ["limit_train=64", "limit_test=64", "batch_size=16", "epochs=3", "log_every=1"]


def workbench_cli(*args: str, env: dict | None = None, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m workbench ARGS`` in a subprocess, one thread (as CI's 2 cores are shared)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    result = subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                            env=full_env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"workbench {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def set_args(pairs: list[str]) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory) -> Path:
    """A finished micro run of the supervised method (trained once per session, in process)."""
    import torch

    from workbench.training import train

    out = tmp_path_factory.mktemp("runs") / "micro"
    with torch.random.fork_rng(devices=[]):
        train("supervised", out=out, preset="tiny", overrides=MICRO)
    return out
