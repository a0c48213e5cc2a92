"""One figure style for the whole workbench: colours per model family, fonts, and saving.

Figures are plain :class:`matplotlib.figure.Figure` objects drawn by the Agg renderer, never
pyplot windows: nothing needs a display, and no global figure state builds up. Every figure
goes through :func:`savefig`, which writes a PNG and an SVG of it atomically (a crash never
leaves half a file under the final name). In a notebook, ``%matplotlib inline`` shows them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from workbench.storage import atomic_path

#: Colour of each model family (Okabe-Ito palette, readable by colour-blind readers).
FAMILY_COLORS = {"snn": "#D55E00", "cnn": "#0072B2", "vit": "#009E73"}
#: Colour of anything whose family is unknown.
OTHER_COLOR = "#7F7F7F"
#: Colour map of RDM heatmaps (dissimilarity: dark = similar).
RDM_CMAP = "viridis"
#: Colour map of signed matrices (correlations between -1 and 1).
DIVERGING_CMAP = "RdBu_r"

FORMATS = ("png", "svg")

#: Axis label of each metric: the statistic it reports.
METRIC_LABELS = {
    "rsa": "RSA (Spearman rho)",
    "cka": "CKA (linear)",
    "svcca": "SVCCA (mean canonical corr.)",
    "tsvd_regression": "TSVD regression (Pearson r)",
    "regression": "regression (Pearson r)",
}


def metric_label(metric: str, *, normalized: bool = False) -> str:
    """Axis label naming the statistic, e.g. ``"RSA (Spearman rho)"``; a second line
    ``"/ noise ceiling"`` for scores divided by the noise ceiling."""
    label = METRIC_LABELS.get(str(metric), str(metric))
    return f"{label}\n/ noise ceiling" if normalized else label

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "svg.fonttype": "none",  # keep text as text in SVGs
    "svg.hashsalt": "workbench",  # deterministic SVG ids
}


def family_color(family: str) -> str:
    """Return the colour of a model family (``"snn"``, ``"cnn"``, ``"vit"``), grey otherwise."""
    return FAMILY_COLORS.get(str(family), OTHER_COLOR)


@contextlib.contextmanager
def figure_style():
    """Context manager that applies :data:`STYLE` to the figures made inside it."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A Figure with constrained layout, outside pyplot (call inside :func:`figure_style`)."""
    return Figure(figsize=figsize, layout="constrained")


def savefig(fig, stem: str | os.PathLike, *, formats=FORMATS) -> list[Path]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.svg`` atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    stem : path-like
        The output path without suffix, e.g. ``run/figures/layer_curves_rsa``; parent
        directories are created.
    formats : sequence of str, default: ("png", "svg")
        File formats to write.

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.
    """
    stem = Path(stem)
    written = []
    with matplotlib.rc_context(STYLE):
        for fmt in formats:
            path = stem.with_name(f"{stem.name}.{fmt}")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, metadata=_metadata(fmt))
            written.append(path)
    return written


def _metadata(fmt: str) -> dict:
    # Drop creation dates so that re-rendering the same scores gives identical files.
    if fmt == "svg":
        return {"Date": None}
    if fmt == "png":
        return {"Software": None}
    return {}
