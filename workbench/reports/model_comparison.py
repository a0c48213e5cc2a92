"""Heatmaps and result files of a model-vs-model comparison (``workbench compare-models``)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.patches import Patch

from workbench.reports.style import figure_style, metric_label, new_figure, savefig
from workbench.storage import atomic_path

SIMILARITY_FILE = "model_similarity.nc"
SIMILARITY_CSV = "model_similarity.csv"
#: Colour of the cells of layer pairs without a score (explained in the heatmap's legend).
UNSCORED_COLOR = "0.85"


def plot_model_similarity(similarity: xr.DataArray, metric: str):
    """Heatmap of one metric's layer x layer similarity (rows: model A's layers, input at the top).

    Parameters
    ----------
    similarity : xarray.DataArray
        :func:`workbench.analysis.compare_models`'s result, dims (metric, layer_a, layer_b).
    metric : str
        One of its metrics.

    Returns
    -------
    matplotlib.figure.Figure
    """
    values = similarity.sel(metric=metric).values
    names_a = [str(v) for v in similarity["layer_a"].values]
    names_b = [str(v) for v in similarity["layer_b"].values]
    model_a, model_b = similarity.attrs.get("model_a", "A"), similarity.attrs.get("model_b", "B")
    with figure_style():
        fig = new_figure((1.6 + 0.35 * len(names_b) + 1.2, 1.4 + 0.3 * len(names_a)))
        ax = fig.add_subplot()
        low = min(0.0, float(np.nanmin(values))) if np.isfinite(values).any() else 0.0
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad=UNSCORED_COLOR)
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=low, vmax=1, aspect="auto",
                          interpolation="nearest")
        ax.grid(False)  # grid lines would cross the cells
        if np.isnan(values).any():
            fig.legend(handles=[Patch(facecolor=UNSCORED_COLOR, edgecolor="0.5",
                                      label=_unscored_label(similarity, metric))],
                       loc="outside lower center", fontsize=7)
        ax.set_xticks(range(len(names_b)), names_b, rotation=90)
        ax.set_yticks(range(len(names_a)), names_a)
        ax.set_xlabel(f"{model_b} layer")
        ax.set_ylabel(f"{model_a} layer")
        n = similarity.attrs.get("n_stimuli")
        ax.set_title(f"{model_a} vs {model_b}" + (f" ({n} stimuli)" if n else ""))
        fig.colorbar(image, ax=ax, label=metric_label(metric))
    return fig


def _unscored_label(similarity: xr.DataArray, metric: str) -> str:
    """Legend text of the blank cells: ``attrs["unscored_<metric>"]``, wrapped."""
    import textwrap

    clause = similarity.attrs.get(f"unscored_{metric}", f"{metric}: the metric could not be computed")
    return textwrap.fill(f"blank: no score; {clause}", 60)


def save_model_similarity(similarity: xr.DataArray, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``model_similarity.nc``, ``model_similarity.csv`` and one heatmap per metric
    (``figures/model_similarity_<metric>.png`` and ``.svg``) into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with atomic_path(out_dir / SIMILARITY_FILE) as tmp:
        similarity.to_netcdf(tmp, engine="h5netcdf")
    written.append(out_dir / SIMILARITY_FILE)
    frame = similarity.to_dataframe().reset_index()
    frame.insert(0, "model_b", similarity.attrs.get("model_b", ""))
    frame.insert(0, "model_a", similarity.attrs.get("model_a", ""))
    with atomic_path(out_dir / SIMILARITY_CSV) as tmp:
        frame.to_csv(tmp, index=False)
    written.append(out_dir / SIMILARITY_CSV)
    for metric in similarity["metric"].values:
        fig = plot_model_similarity(similarity, str(metric))
        written += savefig(fig, out_dir / "figures" / f"model_similarity_{metric}")
    return written
