"""Toy compute functions for the execution tests (importable by the test and its subprocesses).

Each function is top-level so that Dask workers and ``multiprocessing`` can unpickle it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import numpy as np
import xarray as xr

from workbench import dims
from workbench.analysis.execution import Unit, fingerprint

METRICS = ["rsa", "cka"]


def make_units(n: int, settings: dict | None = None) -> list[Unit]:
    """``n`` toy units over two datasets."""
    settings_hash = fingerprint(settings or {"metrics": METRICS})
    return [Unit(f"toy_net_{i}", f"toyset_{i % 2}", settings_hash) for i in range(n)]


def toy_compute(unit: Unit) -> xr.Dataset:
    """A deterministic score table for ``unit`` with the value types a sweep stores."""
    seed = int(hashlib.sha256(unit.unit_id.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    n_layers = 3 + seed % 3
    score = rng.normal(size=(n_layers, len(METRICS)))
    score[0, 1] = np.nan  # "not computed" must survive the round trip
    return xr.Dataset(
        {
            "score": ((dims.LAYER, dims.METRIC), score),
            "layer_name": ((dims.LAYER,), [f"block{i}" for i in range(n_layers)]),
            "applicable": ((dims.METRIC,), np.array([True, False])),
        },
        coords={dims.LAYER: np.arange(n_layers), dims.METRIC: METRICS, dims.MODEL: unit.model},
        attrs={"dataset_name": unit.dataset, "seed": seed},
    )


def logged_compute(unit: Unit, log_path: str, sleep_s: float = 0.0) -> xr.Dataset:
    """Append the unit id to ``log_path`` when computing starts, sleep, then ``toy_compute``."""
    with open(log_path, "a") as fh:  # one short O_APPEND write per line: safe across processes
        fh.write(unit.unit_id + "\n")
    time.sleep(sleep_s)
    return toy_compute(unit)


def kill_worker_once(unit: Unit, marker_dir: str) -> xr.Dataset:
    """SIGKILL the process computing ``unit`` the first time (a marker file remembers)."""
    marker = Path(marker_dir) / f"{unit.unit_id}.died"
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return toy_compute(unit)


def kill_worker_always(unit: Unit, marker_dir: str) -> xr.Dataset:
    """SIGKILL the computing process every time, counting deaths in a marker file."""
    with open(Path(marker_dir) / f"{unit.unit_id}.deaths", "a") as fh:
        fh.write("x\n")
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def failing_compute(unit: Unit) -> xr.Dataset:
    """Raise for units of ``toyset_1``; compute the others."""
    if unit.dataset == "toyset_1":
        raise RuntimeError(f"no weights for {unit.model}")
    return toy_compute(unit)
