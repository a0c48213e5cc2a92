"""The workbench's figures: one function per figure, each returning a matplotlib Figure.

Every function takes the scores Dataset of a sweep (dims ``model``, ``layer``, ``region``,
``metric``; see :mod:`workbench.analysis`) and, for the heatmaps, the RDMs of a run.
:func:`render_all_figures` rebuilds every figure of a saved run from its result files alone
(``scores.nc`` and, when present, ``rdms.nc``), without recomputing anything.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from workbench import dims
from workbench.analysis.scores import load_scores, validate_scores
from workbench.analysis.statistics import best_layer, family_means, rank_agreement
from workbench.errors import DataError, ValidationError
from workbench.reports import style
from workbench.storage import atomic_path

logger = logging.getLogger(__name__)

RDMS_FILE = "rdms.nc"
FIGURES_DIR = "figures"


# ----------------------------------------------------------------------------- helpers
def check_scores(scores: xr.Dataset, name: str = "scores") -> xr.Dataset:
    """Raise unless ``scores`` follows the scores schema (see :mod:`workbench.analysis.scores`)."""
    return validate_scores(scores, name=name)


def _check_metric(scores: xr.Dataset, metric: str) -> None:
    metrics = [str(m) for m in scores[dims.METRIC].values]
    if metric not in metrics:
        raise ValidationError(f"metric {metric!r} is not in the scores; expected one of {metrics}")


def computed_metrics(scores: xr.Dataset) -> list[str]:
    """Return the metrics that have at least one finite score, in the Dataset's order."""
    finite = np.isfinite(scores["score"]).any(dim=[dims.MODEL, dims.LAYER, dims.REGION])
    return [str(m) for m, ok in zip(scores[dims.METRIC].values, finite.values) if ok]


def ci_level(scores: xr.Dataset, default: float = 0.95) -> float:
    """The confidence level of the run's protocol (``attrs["protocol"]``), else ``default``."""
    try:
        return float(json.loads(scores.attrs["protocol"])["ci_level"])
    except (KeyError, TypeError, ValueError):
        return default


# ----------------------------------------------------------------------------- figures
def _panel_grid(n_panels: int, *, panel_size=(3.2, 2.6), max_cols: int = 4):
    n_cols = min(max(n_panels, 1), max_cols)
    n_rows = int(np.ceil(max(n_panels, 1) / n_cols))
    fig = style.new_figure((panel_size[0] * n_cols, panel_size[1] * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n_panels])


def _family_legend(fig, families) -> None:
    handles = [
        Line2D([], [], color=style.family_color(f), marker="o", label=f.upper())
        for f in dict.fromkeys(families)
    ]
    fig.legend(handles=handles, loc="outside upper right", ncols=len(handles), title="family")


_LINESTYLES = ("-", "--", ":", "-.")


def model_styles(scores: xr.Dataset) -> dict[str, dict]:
    """Line style of each model: its family's colour, and a dash pattern per model in a family."""
    seen: dict[str, int] = {}
    out = {}
    for model, family in zip(scores[dims.MODEL].values, scores["family"].values):
        k = seen.get(str(family), 0)
        seen[str(family)] = k + 1
        out[str(model)] = {"color": style.family_color(family), "ls": _LINESTYLES[k % len(_LINESTYLES)]}
    return out


def _regions_with_scores(score: xr.DataArray) -> list[str]:
    ok = np.isfinite(score).any([d for d in score.dims if d != dims.REGION])
    return [str(r) for r, k in zip(score[dims.REGION].values, ok.values) if k]


def plot_layer_curves(scores: xr.Dataset, metric: str) -> Figure:
    """Layer-wise score curves: one panel per region, one line per model.

    The x-axis is the layer's relative depth (0 = first recorded layer, 1 = last), so that
    models with different numbers of layers share an axis; lines are coloured by family, the
    best layer is marked with a dot, and bootstrap intervals (``ci_low``/``ci_high``) are
    shaded when the Dataset has them.
    """
    check_scores(scores)
    _check_metric(scores, metric)
    sel = scores.sel({dims.METRIC: metric})
    regions = _regions_with_scores(sel["score"])
    styles = model_styles(scores)
    with style.figure_style():
        fig, axes = _panel_grid(len(regions))
        for ax, region in zip(axes, regions):
            reg = sel.sel({dims.REGION: region})
            for model in reg[dims.MODEL].values:
                m = reg.sel({dims.MODEL: model})
                ok = np.isfinite(m["score"].values) & np.isfinite(m["relative_depth"].values)
                if not ok.any():
                    continue
                x, y = m["relative_depth"].values[ok], m["score"].values[ok]
                color = styles[str(model)]["color"]
                ax.plot(x, y, lw=1.2, label=str(model), **styles[str(model)])
                if "ci_low" in m and "ci_high" in m:
                    lo, hi = m["ci_low"].values[ok], m["ci_high"].values[ok]
                    if np.isfinite(lo).any():
                        ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
                best = int(np.nanargmax(y))
                ax.plot(x[best], y[best], "o", color=color, ms=4)
            ceiling = _ceiling(reg)
            if np.isfinite(ceiling):
                ax.axhline(ceiling, color="k", ls="--", lw=0.8, label="ceiling")
            ax.set_title(region)
            ax.set_xlabel("relative depth")
            ax.set_ylabel(f"{metric} score")
            ax.set_xlim(-0.02, 1.02)
        handles = [Line2D([], [], label=f"{m} ({f.upper()})", **styles[m]) for m, f in zip(
            map(str, scores[dims.MODEL].values), map(str, scores["family"].values))]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4))
        fig.suptitle(f"Layer-wise similarity ({metric})")
    return fig


def _ceiling(region_scores: xr.Dataset) -> float:
    if "ceiling" not in region_scores:
        return np.nan
    return float(region_scores["ceiling"].values)


def plot_best_layer_depth(scores: xr.Dataset, metric: str) -> Figure:
    """Relative depth of each model's best layer, per region and family.

    One dot per model (coloured by family, offset per family), with the family mean as a
    horizontal bar. The best layer is the argmax over layers
    (:func:`workbench.analysis.best_layer`).
    """
    check_scores(scores)
    _check_metric(scores, metric)
    best = best_layer(scores).sel({dims.METRIC: metric})
    regions = _regions_with_scores(best["score"])
    families = list(dict.fromkeys(str(f) for f in scores["family"].values))
    width = 0.8 / max(len(families), 1)
    with style.figure_style():
        fig = style.new_figure((max(4.0, 1.3 * len(regions) + 2), 3.2))
        ax = fig.subplots()
        for k, family in enumerate(families):
            offset = (k - (len(families) - 1) / 2) * width
            color = style.family_color(family)
            for i, region in enumerate(regions):
                depth = best["relative_depth"].sel({dims.REGION: region}).values
                depth = depth[(scores["family"].values == family) & np.isfinite(depth)]
                if depth.size == 0:
                    continue
                ax.scatter(np.full(depth.size, i + offset), depth, color=color, s=18, zorder=3)
                ax.hlines(depth.mean(), i + offset - width / 2.5, i + offset + width / 2.5, color=color, lw=2)
        ax.set_xticks(range(len(regions)), regions, rotation=20, ha="right")
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("relative depth of best layer")
        ax.set_title(f"Best-matching layer per region ({metric})")
        _family_legend(fig, families)
    return fig


def plot_family_comparison(scores: xr.Dataset) -> Figure:
    """Bars of the mean model score per family and metric, with t confidence intervals.

    A model's score is the mean over applicable regions of its best-layer scores; the
    interval is across the family's models at the protocol's ``ci_level``
    (:func:`workbench.analysis.family_means`). Families with one model get no error bar.
    """
    check_scores(scores)
    level = ci_level(scores)
    means = family_means(scores, level=level)
    metrics = [str(m) for m in means[dims.METRIC].values]
    families = [str(f) for f in means["family"].values]
    width = 0.8 / max(len(families), 1)
    with style.figure_style():
        fig = style.new_figure((max(4.0, 1.2 * len(metrics) + 2.5), 3.2))
        ax = fig.subplots()
        for k, family in enumerate(families):
            fam = means.sel(family=family)
            x = np.arange(len(metrics)) + (k - (len(families) - 1) / 2) * width
            mean = fam["mean"].values
            err = np.vstack([mean - fam["ci_low"].values, fam["ci_high"].values - mean])
            ax.bar(
                x, mean, width * 0.9, yerr=np.nan_to_num(err).tolist(), capsize=3, color=style.family_color(family),
                label=f"{family.upper()} (n={int(fam['n_models'].max())})",
            )
        ax.set_xticks(range(len(metrics)), metrics)
        ax.set_ylabel("model score (best layer, mean over regions)")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(f"Family comparison (mean and {level:.0%} t-interval over models)")
        ax.legend(loc="best")
    return fig


def plot_rank_agreement(scores: xr.Dataset) -> Figure:
    """Matrix of Spearman correlations between metrics of the models' scores.

    Computed by :func:`workbench.analysis.rank_agreement`; cells with fewer than three models
    scored by both metrics read "n/a".
    """
    check_scores(scores)
    agreement = rank_agreement(scores)
    rho = agreement["rho"].values
    metrics = [str(m) for m in agreement[dims.METRIC].values]
    n = len(metrics)
    with style.figure_style():
        fig = style.new_figure((1.0 * n + 2.2, 1.0 * n + 1.4))
        ax = fig.subplots()
        image = ax.imshow(rho, cmap=style.DIVERGING_CMAP, vmin=-1, vmax=1)
        for i in range(n):
            for j in range(n):
                text = "n/a" if np.isnan(rho[i, j]) else f"{rho[i, j]:.2f}"
                shade = "white" if abs(np.nan_to_num(rho[i, j])) > 0.6 else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color=shade)
        ax.set_xticks(range(n), metrics, rotation=30, ha="right")
        ax.set_yticks(range(n), metrics)
        ax.grid(False)
        fig.colorbar(image, ax=ax, label="Spearman rho of model scores")
        ax.set_title(f"Metric rank agreement ({scores.sizes[dims.MODEL]} models)")
    return fig


def plot_per_step(scores: xr.Dataset, metric: str) -> Figure:
    """Similarity per SNN time step at each spiking model's best layer, one panel per region.

    Raises
    ------
    ValidationError
        ``scores`` has no ``score_per_step`` variable, or no model has a finite per-step score.
    """
    check_scores(scores)
    _check_metric(scores, metric)
    if "score_per_step" not in scores:
        raise ValidationError("scores has no 'score_per_step' variable (no spiking model was scored per step)")
    per_step = scores["score_per_step"].sel({dims.METRIC: metric})
    has_steps = np.isfinite(per_step).any([dims.LAYER, dims.REGION, dims.TIME_STEP])
    models = [str(m) for m, ok in zip(per_step[dims.MODEL].values, has_steps.values) if ok]
    if not models:
        raise ValidationError(f"no model has a finite 'score_per_step' for metric {metric!r}")
    best = best_layer(scores).sel({dims.METRIC: metric})
    regions = _regions_with_scores(per_step.sel({dims.MODEL: models}))
    steps = per_step[dims.TIME_STEP].values
    with style.figure_style():
        fig, axes = _panel_grid(len(regions))
        cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        for ax, region in zip(axes, regions):
            for k, model in enumerate(models):
                layer = int(best[dims.LAYER].sel({dims.MODEL: model, dims.REGION: region}))
                if layer < 0:
                    continue
                y = per_step.sel({dims.MODEL: model, dims.REGION: region}).isel({dims.LAYER: layer}).values
                name = str(best["layer_name"].sel({dims.MODEL: model, dims.REGION: region}).values)
                ax.plot(steps, y, "o-", ms=3, color=cycle[k % len(cycle)], label=f"{model} ({name})")
                overall = float(best["score"].sel({dims.MODEL: model, dims.REGION: region}))
                ax.axhline(overall, color=cycle[k % len(cycle)], ls=":", lw=0.8)
            ax.set_title(region)
            ax.set_xlabel("time step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(f"{metric} score")
            ax.legend(loc="best")
        fig.suptitle(f"SNN similarity per time step at the best layer ({metric}; dotted: all steps)")
    return fig


def plot_rdm_pair(
    model_rdm: np.ndarray,
    brain_rdm: np.ndarray,
    *,
    model_label: str = "model",
    brain_label: str = "brain",
    title: str | None = None,
) -> Figure:
    """Two RDM heatmaps side by side: a model layer's (left) and the brain region's (right).

    Each RDM is shown in percentiles of its own upper-triangle dissimilarities (the matrix is
    taken as symmetric), so that the two
    are comparable whatever their distance measure.

    Parameters
    ----------
    model_rdm, brain_rdm : ndarray, shape (n_stimuli, n_stimuli)
        Symmetric dissimilarity matrices over the same stimuli, in the same order.
    """
    from scipy.stats import rankdata

    model_rdm = _check_rdm(model_rdm, "model_rdm")
    brain_rdm = _check_rdm(brain_rdm, "brain_rdm")
    if model_rdm.shape != brain_rdm.shape:
        raise ValidationError(
            f"model_rdm has shape {model_rdm.shape} but brain_rdm has {brain_rdm.shape}; "
            "they must cover the same stimuli"
        )
    with style.figure_style():
        fig = style.new_figure((7.2, 3.6))
        axes = fig.subplots(1, 2)
        for ax, rdm, label in zip(axes, (model_rdm, brain_rdm), (model_label, brain_label)):
            upper = np.triu_indices(rdm.shape[0], k=1)
            pct = np.zeros_like(rdm, dtype=float)
            pct[upper] = 100 * (rankdata(rdm[upper]) - 1) / max(upper[0].size - 1, 1)
            pct = pct + pct.T
            image = ax.imshow(pct, cmap=style.RDM_CMAP, vmin=0, vmax=100, interpolation="nearest")
            ax.set_title(label)
            ax.set_xlabel("stimulus")
            ax.set_ylabel("stimulus")
            ax.grid(False)
        fig.colorbar(image, ax=list(axes), label="dissimilarity (percentile)", shrink=0.8)
        if title:
            fig.suptitle(title)
    return fig


def _check_rdm(rdm, name: str) -> np.ndarray:
    from workbench.validation import check_array

    rdm = check_array(rdm, name, ndim=2, min_rows=2, min_cols=2)
    if rdm.shape[0] != rdm.shape[1]:
        raise ValidationError(f"{name} must be square, found shape {rdm.shape}")
    return rdm


def plot_rdms(rdms: xr.DataTree):
    """Heatmap pairs of every (model layer, brain region) RDM pair of a run's ``rdms.nc``.

    Yields
    ------
    (name, Figure)
        ``name`` is a file-name-safe label, e.g. ``rdm_sew_resnet18__kriegeskorte2008_92-IT-monkey``;
        one figure at a time, so that the caller can save and close each.
    """
    for node in rdms.children.values():
        pair = node.to_dataset()
        model, region = str(pair["model"].values), str(pair[dims.REGION].values)
        layer = str(pair["layer_name"].values)
        fig = plot_rdm_pair(
            pair["model_rdm"].values,
            pair["brain_rdm"].values,
            model_label=f"{model}: {layer}",
            brain_label=region,
            title=f"RDMs over {pair.sizes['stimulus_a']} stimuli",
        )
        yield f"rdm_{slug(model)}__{slug(region)}", fig


def slug(text: str) -> str:
    """Return ``text`` as a file-name-safe string (``"IT (monkey)"`` -> ``"IT-monkey"``)."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", str(text)).strip("-")


# ----------------------------------------------------------------------------- run files
def rdm_pairs_tree(pairs) -> xr.DataTree:
    """Package (model, layer_name, region, model_rdm, brain_rdm) tuples for ``rdms.nc``.

    Parameters
    ----------
    pairs : iterable of (str, str, str, ndarray, ndarray)
        Model name, layer name, region label, the model layer's RDM and the region's RDM
        (both ``(n_stimuli, n_stimuli)`` over the same stimuli in the same order).

    Returns
    -------
    xarray.DataTree
        One child node per pair, holding ``model_rdm`` and ``brain_rdm`` (float32, enough for
        heatmaps) with dims ``(stimulus_a, stimulus_b)`` and scalar coordinates ``model``,
        ``layer_name``, ``region``.
    """
    children = {}
    for k, (model, layer_name, region, model_rdm, brain_rdm) in enumerate(pairs):
        model_rdm = _check_rdm(model_rdm, "model_rdm")
        brain_rdm = _check_rdm(brain_rdm, "brain_rdm")
        children[f"pair_{k}"] = xr.Dataset(
            {
                "model_rdm": (("stimulus_a", "stimulus_b"), model_rdm.astype(np.float32)),
                "brain_rdm": (("stimulus_a", "stimulus_b"), brain_rdm.astype(np.float32)),
            },
            coords={"model": model, "layer_name": layer_name, dims.REGION: region},
        )
    return xr.DataTree.from_dict(children)


def save_rdms(pairs, path: str | os.PathLike) -> Path:
    """Write RDM pairs (see :func:`rdm_pairs_tree`) to a netCDF file atomically."""
    tree = rdm_pairs_tree(pairs)
    path = Path(path)
    with atomic_path(path) as tmp:
        tree.to_netcdf(tmp, engine="h5netcdf")
    return path


def load_rdms(path: str | os.PathLike) -> xr.DataTree:
    """Read an ``rdms.nc`` written by :func:`save_rdms`."""
    try:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            return tree.load()
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read RDMs from {path}: {exc}") from exc


def render_all_figures(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write every figure of a saved run from its result files alone (PNG and SVG).

    Reads ``<run_dir>/scores.nc`` and, when present, ``<run_dir>/rdms.nc``; nothing is
    recomputed from models or data.

    Parameters
    ----------
    run_dir : path-like
        A run directory written by ``workbench score`` or ``workbench report``.
    out_dir : path-like, optional
        Where to write the figures; default ``<run_dir>/figures``.

    Returns
    -------
    list of Path
        Every file written.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / FIGURES_DIR
    scores = load_scores(run_dir)
    metrics = computed_metrics(scores)
    if not metrics:
        raise DataError(f"{run_dir} scores hold no finite score; nothing to plot")
    figures = []  # (file stem, function making the figure): each is drawn, saved and closed in turn
    for metric in metrics:
        figures.append((f"layer_curves_{slug(metric)}", lambda m=metric: plot_layer_curves(scores, m)))
        figures.append((f"best_layer_depth_{slug(metric)}", lambda m=metric: plot_best_layer_depth(scores, m)))
        if "score_per_step" in scores and np.isfinite(scores["score_per_step"].sel({dims.METRIC: metric})).any():
            figures.append((f"snn_per_step_{slug(metric)}", lambda m=metric: plot_per_step(scores, m)))
    figures.append(("family_comparison", lambda: plot_family_comparison(scores)))
    if len(metrics) > 1:
        figures.append(("metric_rank_agreement", lambda: plot_rank_agreement(scores)))
    written = []
    for name, make in figures:
        written.extend(style.savefig(make(), out_dir / name))
    if (run_dir / RDMS_FILE).is_file():
        for name, fig in plot_rdms(load_rdms(run_dir / RDMS_FILE)):
            written.extend(style.savefig(fig, out_dir / name))
    logger.info("wrote %d figure files to %s", len(written), out_dir)
    return written
