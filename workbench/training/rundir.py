"""A run directory: everything one training run writes, in one folder.

::

    DIR/config.yaml            the resolved config (written first)
    DIR/metrics.csv            step, epoch, split, metric, value: one row per logged value
    DIR/checkpoints/last.pt    model, optimiser, scheduler, AMP scaler, RNG states, step (+ .sha256)
    DIR/checkpoints/best.pt    with ``best_metric``: the best epoch's weights and evaluation (+ .sha256)
    DIR/model.pt               the trained weights of the zoo architecture (+ .sha256)
    DIR/model_card.json        written last: the run is finished (see model_card.py)
    DIR/snapshots/NAME/        every other network the run keeps, each a run directory of its own
                               whose card says its ``role`` (``baseline`` or ``snapshot``)
    DIR/phases/NAME/           the trainings in a row of a multi-phase method (phases.py)
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

from workbench.errors import DataError, ValidationError
from workbench.storage import atomic_path
from workbench.training.checkpoint import save_verified
from workbench.training.config import config_to_yaml
from workbench.training.model_card import CARD_FILE, WEIGHTS_FILE, card_fields, read_card, write_card

METRICS_COLUMNS = ("step", "epoch", "split", "metric", "value")
#: Folders that hold nested runs: networks kept by the run, and the phases of a multi-phase method.
CHILD_KINDS = ("snapshots", "phases")
#: What a network under ``snapshots/`` is to its run (its card's ``role``): trained beside the
#: run for comparison, or the run's own network at a point or in another form.
ROLES = ("baseline", "snapshot")


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
        self.parent: RunDir | None = None  # set by :meth:`child`: the run this one is nested in
        self.role = ""                   # set by :meth:`child`: a nested network's role (ROLES)

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
    def best_checkpoint_file(self) -> Path:
        """The weights of the best epoch (``best_metric``), with that epoch's evaluation."""
        return self.path / "checkpoints" / "best.pt"

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

    # --- nested runs ---------------------------------------------------------------------
    def child(self, name: str, config=None, *, kind: str = "snapshots", role: str = "snapshot") -> RunDir:
        """The run directory ``kind/name`` nested in this one (a baseline, a snapshot, a phase).

        It shares this run's process context and method; its config is ``config`` (default this
        run's), written to its ``config.yaml``; it resumes from its own checkpoint when this run
        resumes and it has one. A child under ``snapshots/`` is finished by :meth:`finish`,
        whose card then records ``role`` and ``snapshot_of`` (this run's path).
        """
        if kind not in CHILD_KINDS:
            raise ValidationError(f"a nested run's kind is {kind!r}; expected one of {list(CHILD_KINDS)}")
        if role not in ROLES:
            raise ValidationError(f"a nested run's role is {role!r}; expected one of {list(ROLES)}")
        sub = RunDir(self.path / kind / name, is_main=self.is_main)
        sub.ctx, sub.method, sub.parent, sub.role = self.ctx, self.method, self, role
        sub.config = self.config if config is None else config
        sub.resume = bool(self.resume and sub.checkpoint_file.is_file())
        if self.is_main:
            sub.path.mkdir(parents=True, exist_ok=True)
            sub.write_text("config.yaml", config_to_yaml(sub.config))
        return sub

    def finished_child(self, name: str) -> dict[str, Any] | None:
        """The checked card of the finished nested run ``snapshots/name``, or None when it is not finished."""
        folder = self.path / "snapshots" / name
        return read_card(folder) if (folder / CARD_FILE).is_file() else None

    # --- results -------------------------------------------------------------------------
    def write_weights(self, state_dict: dict[str, Any]) -> str:
        """Save a plain state dict as the run's weights (``model.pt``); return its sha256."""
        state = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        return save_verified(state, self.weights_file)

    def finish(self, network, state_dict: dict[str, Any], data, fields: dict[str, Any] | None = None) -> Path:
        """Write the weights, then (last) the model card: the run directory is finished.

        ``network`` and ``data`` are described as :func:`~.model_card.card_fields` says, with
        this run's config; ``fields`` adds the card's other fields (``evaluation``, ...). A
        nested run's card also holds its ``role`` and ``snapshot_of``, the path of its run.
        """
        if self.is_main:
            digest = self.write_weights(state_dict)
            nested = {} if self.parent is None else {"role": self.role,
                                                     "snapshot_of": str(self.parent.path.resolve())}
            write_card(self.path, card_fields(self.method, network, data, self.config) | nested | dict(fields or {})
                       | {"weights_file": WEIGHTS_FILE, "weights_sha256": digest})
        return self.path

    def write_snapshot(self, name: str, network, state_dict: dict[str, Any], data,
                       info: dict[str, Any] | None = None, *, role: str = "snapshot") -> Path:
        """Write ``snapshots/<name>/`` as a finished run directory of its own (config, weights, card).

        ``network`` and ``data`` are described as in the run's card; ``info`` adds fields
        (e.g. ``{"sparsity": 0.9, "step": 1200}``); ``role`` is ``"snapshot"`` (the run's network
        at a point, or in another form) or ``"baseline"`` (a network trained beside it). The
        study layer scores the folder like any run: ``workbench score --models DIR/snapshots/NAME``.
        """
        return self.child(name, role=role).finish(network, state_dict, data, info)


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
    """The finished run directories under ``snapshots/`` (baselines and snapshots), in name order."""
    folder = Path(run_dir) / "snapshots"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (p / CARD_FILE).is_file())
