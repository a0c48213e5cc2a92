"""Figures, notebooks and reports of a study run.

- :mod:`~workbench.reports.style`: one matplotlib style, colours per family, ``savefig``
  (PNG and SVG, atomic).
- :mod:`~workbench.reports.figures`: one function per figure, and
  :func:`render_all_figures` that rebuilds every figure of a saved run from its files alone.
- :mod:`~workbench.reports.study`: :func:`run_study` (sweep, result files, RDMs) and the
  report's header and tables.
- :func:`load_rdms`: a run's ``rdms.nc`` (one netCDF group per model and region, which
  ``xarray.open_dataset`` shows as empty), from the run directory; it and :func:`save_rdms`
  live in :mod:`workbench.analysis.results` with the other result files.
- :mod:`~workbench.reports.notebook`: papermill execution and HTML export of the notebooks.
- :mod:`~workbench.reports.demo`: ``workbench demo``.
- :mod:`~workbench.reports.training_report`: :func:`~workbench.reports.training_report.report_run`,
  the report of a training run (``workbench report-run``).
"""

from workbench.analysis.results import load_rdms, save_rdms
from workbench.reports.demo import DEMO_DATASETS, DEMO_MODELS, run_demo, run_report
from workbench.reports.figures import (
    figure_caption,
    plot_best_layer_depth,
    plot_family_comparison,
    plot_layer_curves,
    plot_per_step,
    plot_rank_agreement,
    plot_rdm_pair,
    plot_rdms,
    render_all_figures,
)
from workbench.reports.notebook import NotebookError, execute_notebook, export_html, notebook_path
from workbench.reports.study import (
    best_layer_rdms,
    report_header,
    run_study,
    run_summary,
    score_table,
    sweep_table,
    unscored_section,
)
from workbench.reports.style import FAMILY_COLORS, family_color, savefig

__all__ = [
    "DEMO_DATASETS",
    "DEMO_MODELS",
    "FAMILY_COLORS",
    "NotebookError",
    "best_layer_rdms",
    "execute_notebook",
    "export_html",
    "family_color",
    "figure_caption",
    "load_rdms",
    "notebook_path",
    "plot_best_layer_depth",
    "plot_family_comparison",
    "plot_layer_curves",
    "plot_per_step",
    "plot_rank_agreement",
    "plot_rdm_pair",
    "plot_rdms",
    "render_all_figures",
    "report_header",
    "run_demo",
    "run_report",
    "run_study",
    "run_summary",
    "save_rdms",
    "savefig",
    "score_table",
    "sweep_table",
    "unscored_section",
]
