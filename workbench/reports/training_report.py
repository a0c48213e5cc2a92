"""The report of a training run: its method's notebook, executed by papermill into the run.

``report_run(DIR)`` runs ``notebooks/methods/<method>.ipynb`` with ``run_dir = DIR`` injected
after its ``parameters`` cell, writes ``DIR/report.ipynb`` and ``DIR/report.html`` (outputs
only: the code cells are hidden, as in the study report), and raises
:class:`~workbench.reports.notebook.NotebookError` naming the failing cell (the executed
notebook with its traceback is kept) when a cell fails.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import DataError


def method_notebook(method: str) -> Path:
    """``notebooks/methods/<method>.ipynb``; a DataError when the method has no report notebook."""
    from workbench.reports.notebook import notebooks_dir

    path = notebooks_dir() / "methods" / f"{method}.ipynb"
    if not path.is_file():
        raise DataError(f"method {method!r} has no report notebook: {path} does not exist")
    return path


def evaluation_summary(run_dir: str | os.PathLike):
    """The run's evaluation, one row per value, with the epoch it comes from (final or best on test).

    Returns
    -------
    pandas.DataFrame
        Indexed by metric name, columns ``value`` and ``epoch`` (the card's ``evaluation_labels``;
        cards written before them: every value the final epoch's).
    """
    import pandas as pd

    from workbench.training.model_card import evaluation_labels, read_card

    card = read_card(run_dir, verify_weights=False)
    evaluation = card.get("evaluation", {})
    labels = card.get("evaluation_labels") or evaluation_labels(evaluation)
    return pd.DataFrame({"value": evaluation, "epoch": {k: labels.get(k, "") for k in evaluation}})


def report_run(run_dir: str | os.PathLike, *, execution_timeout: float | None = None) -> Path:
    """Execute the run's method notebook into ``run_dir/report.ipynb`` and ``report.html``.

    Returns
    -------
    Path
        The HTML report.
    """
    from workbench.reports.notebook import execute_notebook, export_html
    from workbench.training.model_card import read_card

    run_dir = Path(run_dir)
    card = read_card(run_dir, verify_weights=False)  # the notebook verifies them when it loads the run
    notebook = method_notebook(card["method"])
    executed = execute_notebook(notebook, run_dir / "report.ipynb", {"run_dir": str(run_dir.resolve())},
                                execution_timeout=execution_timeout)
    return export_html(executed, run_dir / "report.html", exclude_input=True)
