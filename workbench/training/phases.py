"""Multi-phase methods: each phase one :func:`~workbench.training.fit` in ``DIR/phases/<name>/``.

A method whose run is several trainings in a row (QSAM's two stages, MADA's warm-up and
adaptation stages) runs each through :func:`run_phase`. A phase folder is a run directory
nested in the run (:meth:`~workbench.training.rundir.RunDir.child`: ``config.yaml``,
``metrics.csv``, verified checkpoints); a finished phase keeps its weights in
``phases/<name>/model.pt``, its evaluation in ``phases/<name>/evaluation.json`` and its
training time in ``phases/<name>/wall_time.json``, so ``--resume`` loads the phases already
done and resumes the unfinished one mid-way.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from workbench.errors import DataError
from workbench.storage import atomic_path
from workbench.training.checkpoint import load_verified
from workbench.training.loop import fit
from workbench.training.rundir import read_metrics

logger = logging.getLogger(__name__)

#: A finished phase's training time, seconds (read by :func:`phase_wall_time`).
_WALL_TIME = "wall_time.json"


def run_phase(run, name: str, config, network, data, *, step_fn=None, eval_fn=None,
              callbacks=()) -> dict[str, float]:
    """Train ``network`` in place for one phase; return the phase's last evaluation.

    Parameters
    ----------
    run : RunDir
        The method's run; the phase lives in ``run.path / "phases" / name`` (``run.child``).
    name : str
        The phase's folder name.
    config, network, data, step_fn, eval_fn, callbacks
        As for :func:`~workbench.training.fit`.

    Returns
    -------
    dict of str to float
        ``{"test_" + metric: value}``, read from ``evaluation.json`` when the phase was
        finished before (its weights are then loaded into ``network`` and nothing is trained).
    """
    folder = Path(run.path) / "phases" / name
    done, summary = folder / "model.pt", folder / "evaluation.json"
    if done.is_file() and summary.is_file():
        network.module.load_state_dict(load_verified(done, what="weights"))
        logger.info("phase %s was finished before; weights loaded from %s", name, done)
        return json.loads(summary.read_text())
    sub = run.child(name, config, kind="phases")
    logger.info("phase %s: %d epoch(s)", name, config.epochs)
    result = fit(config, sub, network, data, step_fn=step_fn, eval_fn=eval_fn, callbacks=callbacks)
    if sub.is_main:
        sub.write_weights(network.module.state_dict())  # phases/<name>/model.pt
        with atomic_path(folder / _WALL_TIME) as tmp:
            tmp.write_text(json.dumps({"wall_time_s": result.wall_time_s}))
        with atomic_path(summary) as tmp:  # last: it marks the phase as finished
            tmp.write_text(json.dumps(result.evaluation, indent=1))
    return result.evaluation


def phase_wall_time(run, names=None) -> float:
    """Seconds of training of the run's phases, summed.

    ``names``: the phases to count; default every folder under ``run.path / "phases"``. A
    finished phase's time is read from its ``wall_time.json``; an unfinished one's (or one
    finished before that file was kept) from its last checkpoint's ``elapsed_s``; a phase
    with neither counts 0 s.
    """
    phases = Path(run.path) / "phases"
    if names is None:
        names = sorted(p.name for p in phases.iterdir()) if phases.is_dir() else []
    total = 0.0
    for name in names:
        try:
            total += float(json.loads((phases / name / _WALL_TIME).read_text())["wall_time_s"])
            continue
        except (OSError, ValueError, KeyError):
            pass
        try:
            total += float(load_verified(phases / name / "checkpoints" / "last.pt")["elapsed_s"])
        except (DataError, OSError, KeyError):
            continue
    return total


def adopt_phase_metrics(run, name: str) -> int:
    """Make the phase ``name``'s ``metrics.csv`` rows the run's own; return the phase's last step.

    A multi-phase method's run has no training of its own: its ``metrics.csv`` shows the
    phase that trained its network (rows it logs after this call follow them). No rows and
    step 0 when the phase logged nothing.
    """
    path = Path(run.path) / "phases" / name / "metrics.csv"
    if not path.is_file():
        run.rows = []
        return 0
    frame = read_metrics(path.parent)
    run.rows = [(int(a), int(b), str(c), str(d), float(e)) for a, b, c, d, e in frame.itertuples(index=False)]
    return int(frame.step.max()) if len(frame) else 0
