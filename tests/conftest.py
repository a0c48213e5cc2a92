"""Suite-wide collection order: the slow end-to-end tests first, the demo first of all.

``make test`` runs the suite on two pytest-xdist workers (``--dist worksteal``); starting
the longest tests first lets the two workers finish together instead of one worker
starting a long test when the other has nothing left to do. (The demo's own test, marked
``demo``, runs apart with ``make test-demo``; a plain ``pytest`` starts it first.) The order
is a deterministic function of the collected items, as xdist requires of every worker.

It also holds the fixtures every training method's tests share: a micro run trained once per
session (``train_micro``), its report executed and checked (``check_run_report``), and a run
under torchrun compared with the one-process run (``train_under_torchrun``).
"""

import json
import os
from pathlib import Path

import pytest


def _priority(item) -> tuple[int, int]:
    slow = item.get_closest_marker("slow") is not None
    demo = item.name.startswith("test_demo_")
    return (0 if slow else 1, 0 if demo else 1)


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=_priority)  # stable: the file order is kept within each group


# -- micro runs of the training methods, their reports, torchrun --------------------------------


@pytest.fixture(scope="session")
def train_micro(tmp_path_factory):
    """``train_micro(method, overrides=())``: the directory of a finished run of ``method``'s
    micro preset (``presets/micro.yaml``) with ``overrides``, trained in process once per session
    (and xdist worker), with the global torch RNG left as it was."""
    runs: dict = {}

    def train_once(method: str, overrides=()) -> Path:
        key = (method, tuple(overrides))
        if key not in runs:
            import torch

            from workbench.training import train

            out = tmp_path_factory.mktemp(method) / "run"
            with torch.random.fork_rng(devices=[]):
                train(method, out=out, preset="micro", overrides=list(overrides))
            runs[key] = out
        return runs[key]

    return train_once


def _reads_neural_data(notebook: Path) -> bool:
    """Whether a method notebook's parameters name neural datasets (which come from the mirror)."""
    cells = json.loads(notebook.read_text())["cells"]
    parameters = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    return "dataset" in "".join(parameters["source"])


@pytest.fixture
def check_run_report():
    """``check(run_dir)``: ``workbench train --report``'s step on a finished run, checked.

    Executes the run's method notebook (:func:`workbench.reports.training_report.report_run`) and
    asserts that every cell ran without an error output, that the HTML embeds figures and that
    it was run on ``run_dir``. Notebooks that score the run against neural data need the data
    mirror (``WORKBENCH_DATA_MIRROR``, set by ``make test`` when ../shared/data exists); without
    it the test is skipped, saying so.
    """
    import nbformat

    from workbench.reports.training_report import method_notebook, report_run
    from workbench.training import read_card

    def check(run_dir: Path) -> str:
        notebook = method_notebook(read_card(run_dir)["method"])
        if _reads_neural_data(notebook) and not os.environ.get("WORKBENCH_DATA_MIRROR"):
            pytest.skip(f"{notebook.name} scores the run on neural data: no WORKBENCH_DATA_MIRROR to read it from")
        html = report_run(run_dir)
        executed = nbformat.read(run_dir / "report.ipynb", as_version=4)
        errors = [f"{out.get('ename')}: {out.get('evalue')}" for cell in executed.cells
                  for out in cell.get("outputs", []) if out.get("output_type") == "error"]
        assert not errors, errors
        injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
        assert str(Path(run_dir).resolve()) in injected.source
        text = html.read_text()
        assert "data:image/png;base64" in text
        return text

    return check


def _metrics_files(run: Path) -> list[Path]:
    """The run's ``metrics.csv`` and those of its phases and snapshots, relative to ``run``."""
    return sorted(p.relative_to(run) for p in run.rglob("metrics.csv"))


@pytest.fixture(scope="session")
def train_under_torchrun():
    """``run(method, overrides, out, like=single_run, same_curves=False)``: ``workbench train``
    of the micro preset under torchrun with 2 gloo processes (``--standalone``: a free port of
    its own), checked to finish, to say so in its card, and to write the same files, evaluation
    keys and number of steps as the one-process run ``like``; with ``same_curves``, every
    ``metrics.csv`` (the run's, each phase's and snapshot's) must hold the same rows with values
    equal to 1e-5 (networks whose output for a sample does not depend on its batch). Returns
    ``out``."""
    import subprocess
    import sys

    import numpy as np
    import pandas as pd

    from workbench.training import read_card, read_metrics

    def files(run: Path) -> list[str]:
        return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and not p.name.startswith("report"))

    def run(method: str, overrides, out: Path, *, like: Path, same_curves: bool = False) -> Path:
        pairs = [arg for pair in overrides for arg in ("--set", pair)]
        result = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
             "-m", "workbench", "train", method, "--preset", "micro", "--out", str(out), *pairs],
            capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stderr[-3000:]
        card, one = read_card(out), read_card(like)
        assert "x 2 processes" in card["device"]
        assert set(card["evaluation"]) == set(one["evaluation"])
        assert files(out) == files(like)
        assert read_metrics(out).step.max() == read_metrics(like).step.max()  # no batch lost to the split
        if same_curves:
            for name in _metrics_files(like):
                a, b = pd.read_csv(like / name), pd.read_csv(out / name)
                keys = ["step", "epoch", "split", "metric"]
                assert a[keys].equals(b[keys]), name
                np.testing.assert_allclose(b.value, a.value, rtol=1e-5, atol=1e-5, err_msg=str(name))
        return out

    return run
