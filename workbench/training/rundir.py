"""A run directory: everything one training run writes, in one folder.

::

    DIR/config.yaml            the resolved config (written first)
    DIR/metrics.csv            step, epoch, split, metric, value: one row per logged value
    DIR/checkpoints/last.pt    model, optimiser, scheduler, AMP scaler, RNG states, step (+ .sha256)
    DIR/model.pt               the trained weights of the zoo architecture (+ .sha256)
    DIR/model_card.json        written last: the run is finished (see model_card.py)
    DIR/snapshots/NAME/        networks kept along the way, each a run directory of its own
    DIR/report.ipynb, .html    the method's papermill report (``--report``)

Every file is written atomically, and ``metrics.csv`` only together with a checkpoint, so
after a crash the metrics on disk end exactly where the checkpoint that ``--resume`` loads
does.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.errors import DataError
from workbench.storage import atomic_path
from workbench.training.checkpoint import save_verified
from workbench.training.model_card import CARD_FILE, WEIGHTS_FILE, card_fields, write_card

METRICS_COLUMNS = ("step", "epoch", "split", "metric", "value")


@dataclass
class RunDir:
    """Paths and writers of one run directory; ``is_main`` is False on ranks > 0 (they write nothing)."""

    path: Path
    is_main: bool = True

    def __post_init__(self):
        from workbench.training.distributed import DistributedContext

        self.path = Path(self.path)
        self.rows: list[tuple] = []
        self.ctx = DistributedContext()  # set by the runner: rank, world size, device
        self.resume = False              # set by the runner: continue from checkpoint_file
        self.method = ""                 # set by the runner: the method's name
        self.config = None               # set by the runner: the resolved config

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def checkpoint_file(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    @property
    def weights_file(self) -> Path:
        return self.path / WEIGHTS_FILE

    @property
    def card_file(self) -> Path:
        return self.path / CARD_FILE

    @property
    def is_finished(self) -> bool:
        return self.card_file.is_file()

    # --- metrics -------------------------------------------------------------------------
    def log(self, step: int, epoch: int, split: str, metrics: dict[str, float]) -> None:
        """Keep one row per metric (written with the next checkpoint or :meth:`flush_metrics`)."""
        for name, value in metrics.items():
            self.rows.append((int(step), int(epoch), split, name, float(value)))

    def flush_metrics(self) -> None:
        """Write every row logged so far to ``metrics.csv``, atomically."""
        if not self.is_main:
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(METRICS_COLUMNS)
        writer.writerows(self.rows)
        with atomic_path(self.metrics_file) as tmp:
            tmp.write_text(buffer.getvalue())

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        if self.is_main:
            with atomic_path(path) as tmp:
                tmp.write_text(text)
        return path

    # --- results -------------------------------------------------------------------------
    def write_weights(self, state_dict: dict[str, Any], path: Path | None = None) -> str:
        """Save a plain state dict as the run's weights; return its sha256."""
        state = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        return save_verified(state, self.weights_file if path is None else path)

    def write_snapshot(self, name: str, network, state_dict: dict[str, Any], data,
                       info: dict[str, Any] | None = None) -> Path:
        """Write ``snapshots/<name>/`` as a run directory of its own (weights, then card).

        ``network`` and ``data`` are described as in the run's card; ``info`` adds fields
        (e.g. ``{"sparsity": 0.9, "step": 1200}``). The study layer scores the folder like any
        run: ``workbench score --models DIR/snapshots/NAME``.
        """
        folder = self.path / "snapshots" / name
        if self.is_main:
            digest = self.write_weights(state_dict, folder / WEIGHTS_FILE)
            write_card(folder, card_fields(self.method, network, data, self.config) | dict(info or {}) | {
                "weights_file": WEIGHTS_FILE, "weights_sha256": digest, "snapshot_of": str(self.path.resolve())})
        return folder


def read_metrics(run_dir: str | os.PathLike) -> pd.DataFrame:
    """``metrics.csv`` of a run as a DataFrame (columns: step, epoch, split, metric, value)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise DataError(f"{path} does not exist: no step of this run was logged")
    frame = pd.read_csv(path)
    missing = [c for c in METRICS_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks the column(s) {missing}; expected {list(METRICS_COLUMNS)}")
    return frame


def list_snapshots(run_dir: str | os.PathLike) -> list[Path]:
    """The snapshot run directories of a run, in name order."""
    folder = Path(run_dir) / "snapshots"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (p / CARD_FILE).is_file())
