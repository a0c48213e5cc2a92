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


#: Colour of the notes that explain what a panel lacks (no ceiling, random weights, ...).
NOTE_COLOR = "0.35"


def note_above_axes(ax, text: str, *, fontsize: float = 7) -> None:
    """Write ``text`` above ``ax``, between its top edge and its title: never over data.

    The axes' title (set it first) is lifted by the note's height; constrained layout makes
    room for both. Use it for what a panel lacks ("no noise ceiling: ...").

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    text : str
        The note; a newline character breaks lines.
    fontsize : float, default: 7
        In points.
    """
    gap = 3.0  # points between the axes' top edge and the note
    ax.annotate(text, xy=(0.5, 1.0), xycoords="axes fraction", xytext=(0, gap), textcoords="offset points",
                ha="center", va="bottom", fontsize=fontsize, color=NOTE_COLOR, annotation_clip=False)
    n_lines = text.count("\n") + 1
    ax.set_title(ax.get_title(), pad=2 * gap + 1.4 * fontsize * n_lines)


def random_weights_note(weights) -> str:
    """The line that says which networks have random weights; ``""`` when none has.

    Parameters
    ----------
    weights : sequence of (model, weights) pairs, or a mapping model -> weights
        Each model's weights label as the scores record it (``"random(seed=0)"``,
        ``"imagenet"``, a checkpoint path, ...).
    """
    pairs = list(weights.items()) if hasattr(weights, "items") else list(weights)
    random = [(str(m), str(w)) for m, w in pairs if str(w).startswith("random")]
    if not random:
        return ""
    seeds = sorted({w[len("random"):] for _, w in random})
    seed = seeds[0].strip("()") if len(seeds) == 1 else ""
    which = "all networks" if len(random) == len(pairs) else ", ".join(m for m, _ in random)
    return f"random weights ({which}{'; ' + seed if seed else ''}): untrained networks"


def mark_random_weights(fig, weights) -> None:
    """Say on ``fig`` (a line under its suptitle) which networks have random weights.

    Nothing is added when no network has random weights. Call it after the figure's
    ``suptitle`` is set (or with none); constrained layout keeps the line off the panels.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    weights : sequence of (model, weights) pairs, or a mapping model -> weights
        See :func:`random_weights_note`.
    """
    note = random_weights_note(weights)
    if not note:
        return
    title = fig.get_suptitle()
    fig.suptitle(f"{title}\n{note}" if title else note)


#: How each model family is written in figures and tables.
FAMILY_LABELS = {"snn": "SNN", "cnn": "CNN", "vit": "ViT"}


def family_label(family: str) -> str:
    """How a model family is written: ``"SNN"``, ``"CNN"``, ``"ViT"``; others upper-cased."""
    return FAMILY_LABELS.get(str(family), str(family).upper())


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
