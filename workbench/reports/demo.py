"""``workbench report`` and ``workbench demo``: the report notebook, executed and converted.

:func:`run_report` executes ``notebooks/02_similarity_report.ipynb`` with papermill into
``OUT/report.ipynb`` (the run's result files and figures land in ``OUT`` too) and converts it
to ``OUT/report.html`` without the code cells (a report that failed keeps them, to show the
failing cell). :func:`run_demo` does so for the demo's fixed choices.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from workbench.reports.notebook import NotebookError, execute_notebook, export_html, notebook_path

logger = logging.getLogger(__name__)

REPORT_NOTEBOOK = "report.ipynb"

#: The demo's models: a spiking ResNet, its non-spiking twin and the smallest ViT in the zoo
#: (DeiT-tiny, 5.7 M parameters, so that the demo stays within minutes on two CPU cores).
DEMO_MODELS = ("sew_resnet18", "resnet18", "deit_tiny")
#: The two small real datasets (92 images with IT RDMs; 640 images with V4 responses).
DEMO_DATASETS = ("kriegeskorte2008_92", "cowley2023_v4")
#: The demo follows the study's protocol (SNNs at T=4, averaged over T) and also scores the SNN
#: at every time step (its per-step figure): the per-step statistics come from the same forward
#: pass (``extract_stats(per_step=True)``). ``--protocol time_resolved=false`` leaves them out.
DEMO_PROTOCOL = {"time_resolved": True}


def run_report(
    models: Sequence[str],
    datasets: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    metrics: Sequence[str] | None = None,
    weights=None,
    protocol: dict | None = None,
    executor: str = "serial",
    force: bool = False,
    kernel_name: str = "python3",
    layers: Sequence[str] | None = None,
    device: str = "cpu",
) -> Path:
    """Execute the similarity report notebook for ``models`` x ``datasets`` and export HTML.

    Parameters
    ----------
    models, datasets, metrics, weights, executor, force, layers, device
        As :func:`workbench.reports.run_study` (weights for every model, or a mapping per model).
    out_dir : path-like
        The run directory: ``report.ipynb``, ``report.html``, ``scores.nc``, ``scores.csv``,
        ``rdms.nc``, ``figures/``.
    protocol : dict, optional
        Overrides of :class:`~workbench.analysis.Protocol` fields (JSON values).
    kernel_name : str, default: "python3"
        The Jupyter kernel that runs the notebook.

    Returns
    -------
    Path
        ``out_dir/report.html``.

    Raises
    ------
    NotebookError
        A cell failed. ``out_dir/report.ipynb`` (and ``report.html``) keep the failing cell and
        its traceback; the message names the cell.
    """
    out_dir = Path(out_dir).resolve()
    parameters = {
        "models": list(models),
        "datasets": [str(d) for d in datasets],
        "metrics": None if metrics is None else list(metrics),
        "weights": None if weights is None else (
            {str(k): None if v is None else str(v) for k, v in weights.items()}
            if isinstance(weights, Mapping) else str(weights)),
        "protocol": dict(protocol or {}),
        "out_dir": str(out_dir),
        "executor": executor,
        "force": bool(force),
        "layers": None if layers is None else list(layers),
        "device": str(device),
    }
    executed = out_dir / REPORT_NOTEBOOK
    try:
        execute_notebook(notebook_path("report"), executed, parameters, kernel_name=kernel_name,
                         log_output=logger.isEnabledFor(logging.INFO))
    except NotebookError:
        export_html(executed)  # the failing cell, readable in a browser too
        raise
    html = export_html(executed, exclude_input=True)  # a document: Markdown, tables, figures
    logger.info("report written to %s", html)
    return html


def run_demo(
    out_dir: str | os.PathLike = "reports/demo",
    *,
    weights: str | None = None,
    protocol: dict | None = None,
    executor: str = "serial",
    force: bool = False,
    device: str = "cpu",
) -> Path:
    """Report :data:`DEMO_MODELS` on :data:`DEMO_DATASETS` with every applicable metric.

    Data come from the cache, or are fetched (through ``$WORKBENCH_DATA_MIRROR`` when set).
    With ``weights`` None or ``"random"`` the models are randomly initialised, which the
    report's first lines say; ``"imagenet"`` uses the published weights. ``protocol`` overrides
    :data:`DEMO_PROTOCOL` and :class:`~workbench.analysis.Protocol`'s defaults field by field
    (e.g. ``{"time_steps": 2}`` for a faster run).

    Returns
    -------
    Path
        ``out_dir/report.html``.
    """
    return run_report(
        DEMO_MODELS,
        DEMO_DATASETS,
        out_dir,
        weights=weights,
        protocol={**DEMO_PROTOCOL, **dict(protocol or {})},
        executor=executor,
        force=force,
        **({"device": device} if device != "cpu" else {}),
    )
