"""The workbench's figures: one function per figure, each returning a matplotlib Figure.

Every function takes the scores Dataset of a sweep (dims ``model``, ``layer``, ``region``,
``metric``; see :mod:`workbench.analysis`) and, for the heatmaps, the RDMs of a run.
:func:`render_all_figures` rebuilds every figure of a saved run from its result files alone
(``scores.nc`` and, when present, ``rdms.nc``, read by :mod:`workbench.analysis.results`),
without recomputing anything.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from workbench import dims
from workbench.analysis.results import RDMS_FILE, check_rdm, load_rdms, load_scores
from workbench.analysis.scores import validate_scores
from workbench.analysis.statistics import best_layer, family_means, mean_over_applicable, rank_agreement
from workbench.errors import DataError, ValidationError
from workbench.reports import style

logger = logging.getLogger(__name__)

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
def panel_grid(n_panels: int, *, panel_size=(3.2, 2.6), max_cols: int = 4):
    """A new figure with ``n_panels`` axes in rows of at most ``max_cols``.

    ``panel_size`` is (width, height) of one panel in inches; unused cells of the last row
    are hidden. Returns ``(fig, axes)``, ``axes`` a list of ``n_panels`` Axes in row order.
    """
    n_cols = min(max(n_panels, 1), max_cols)
    n_rows = int(np.ceil(max(n_panels, 1) / n_cols))
    fig = style.new_figure((panel_size[0] * n_cols, panel_size[1] * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n_panels])


def _family_legend(fig, families) -> None:
    handles = [
        Line2D([], [], color=style.family_color(f), marker="o", label=style.family_label(f))
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


def _rdm_only(scores: xr.Dataset, region: str) -> bool:
    """Whether ``region`` has only a published RDM (only ``rsa`` applies there)."""
    applicable = scores["applicable"].sel({dims.REGION: region})
    metrics = [str(m) for m in scores[dims.METRIC].values]
    return "rsa" in metrics and bool(applicable.sel({dims.METRIC: "rsa"})) and int(applicable.sum()) == 1


def not_applicable_reason(scores: xr.Dataset, region: str, metric: str) -> str:
    """Why ``metric`` has no score slot on ``region``: ``"n/a (RDM-only data)"``, or ``""``
    where the metric applies."""
    if bool(scores["applicable"].sel({dims.REGION: region, dims.METRIC: metric})):
        return ""
    return "n/a (RDM-only data)" if _rdm_only(scores, region) else "n/a (metric does not apply)"


def ceiling_reason(scores: xr.Dataset, region: str, metric: str) -> str:
    """Why a (region, metric) panel draws no noise ceiling; ``""`` when it has one."""
    if np.isfinite(_ceiling(scores.sel({dims.REGION: region, dims.METRIC: metric}))):
        return ""
    if metric in ("cka", "svcca"):
        return f"no noise ceiling: none defined for {metric.upper()}"
    if _rdm_only(scores, region):
        return "no noise ceiling: one RDM, no repeats\nor per-subject RDMs"
    return "no noise ceiling: no repeated\npresentations in the recording"


def applicable_regions(scores: xr.Dataset, metric: str) -> list[str]:
    """The regions where ``metric`` applies, in the Dataset's order: the only ones a figure of
    that metric gives a panel or slot (an RDM-only region can never hold an SVCCA score)."""
    return [str(r) for r in scores[dims.REGION].values if not not_applicable_reason(scores, str(r), metric)]


def axis_label(metric: str, *, normalized: bool = False) -> str:
    """:func:`style.metric_label` with the statistic on its own line (``"SVCCA\n(mean ...)"``),
    short enough for a panel's y axis to stay clear of the title."""
    return style.metric_label(metric, normalized=normalized).replace(" (", "\n(", 1)


def model_weights(scores: xr.Dataset) -> list[tuple[str, str]]:
    """(model, weights label) of every model, for :func:`style.mark_random_weights`; empty when
    the scores do not record weights."""
    if "weights" not in scores.coords:
        return []
    return [(str(m), str(w)) for m, w in zip(scores[dims.MODEL].values, scores["weights"].values)]


def _layers_used(best: xr.Dataset, model: str, regions) -> tuple[int, int, int]:
    """(min, max) layers with a score over ``regions`` and the model's number of layers."""
    n_layers = int(best["n_layers"].sel({dims.MODEL: model}))
    scored = best["n_layers_scored"].sel({dims.MODEL: model, dims.REGION: list(regions)}).values
    if scored.size == 0:
        return n_layers, n_layers, n_layers
    return int(scored.min()), int(scored.max()), n_layers


def _layers_label(low: int, high: int, total: int) -> str:
    """``"best of 8/11 layers"`` (``"8-9/11"`` when regions differ); ``""`` when all were scored."""
    if low >= total:
        return ""
    span = f"{low}" if low == high else f"{low}-{high}"
    return f"best of {span}/{total} layers"


def plot_layer_curves(scores: xr.Dataset, metric: str, *, normalized: bool = False) -> Figure:
    """Layer-wise score curves: one panel per region, one line per model.

    The x-axis is the layer's relative depth (0 = first recorded layer, 1 = last), so that
    models with different numbers of layers share an axis; lines are coloured by family, the
    best layer is marked with a dot, and bootstrap intervals (``ci_low``/``ci_high``) are
    shaded when the Dataset has them. The chance level of each layer, its stimulus-permutation
    null from ``null_mean`` to ``null_p95`` (:mod:`workbench.analysis.nulls`), is a hatched band
    in the model's colour under its curve, with a legend entry. The dashed line is the region's noise ceiling (its
    upper bound), with a grey band down to its lower bound where the scores hold one
    (``ceiling_low``, e.g. leave-one-subject-out bounds); a panel without one says why. Layers that could not be scored
    (:func:`workbench.analysis.scores.unscored_mask`) get an ``x`` at the bottom of the panel,
    layers scored without their zero-variance stimuli a hollow marker, and a model whose best
    layer was taken over fewer than all its layers says so in the legend. Only regions where the
    metric applies have a panel (:func:`applicable_regions`; the caption says so), and a note
    above a panel, never over its data, says what it lacks. A figure of networks with random
    weights says so under its title.

    Parameters
    ----------
    scores : Dataset
    metric : str
    normalized : bool, default: False
        Divide every score by its region's noise ceiling
        (:func:`workbench.analysis.normalize_by_ceiling`); regions without a positive ceiling
        have no panel.
    """
    from workbench.analysis.statistics import normalize_by_ceiling

    check_scores(scores)
    _check_metric(scores, metric)
    data = scores
    if normalized:
        ceiling = scores["ceiling"]
        data = normalize_by_ceiling(scores.assign(ceiling=ceiling.where(ceiling > 0)))
    sel = data.sel({dims.METRIC: metric})
    regions = applicable_regions(scores, metric)
    if normalized:
        regions = [r for r in regions if _ceiling(scores.sel({dims.REGION: r, dims.METRIC: metric})) > 0]
    styles = model_styles(scores)
    marks = _layer_marks(scores, metric)
    drawn = {"ceiling": False, "unscored": False, "excluded": False, "ceiling band": False, "null": False}
    with style.figure_style():
        fig, axes = panel_grid(len(regions), panel_size=(3.4, 3.2))  # room for a note and a two-line y label
        for ax, region in zip(axes, regions):
            ax.set_title(region)
            ax.set_xlabel("relative depth (0 = first layer, 1 = last)")
            ax.set_ylabel(axis_label(metric, normalized=normalized))
            ax.set_xlim(-0.02, 1.02)
            reg = sel.sel({dims.REGION: region})
            for model in reg[dims.MODEL].values:
                where = {dims.MODEL: model, dims.REGION: region}
                _draw_model_curve(ax, reg.sel({dims.MODEL: model}), styles[str(model)],
                                  {key: mark.sel(where).values for key, mark in marks.items()}, drawn)
            _draw_ceiling(ax, reg, scores, region, metric, normalized, drawn)
        handles = _layer_curves_legend(scores, metric, regions, styles, normalized, drawn)
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3))
        title = f"Layer-wise similarity: {style.metric_label(metric)}"
        fig.suptitle(title + (", divided by the noise ceiling" if normalized else ""))
        style.mark_random_weights(fig, model_weights(scores))
    return fig


def _layer_marks(scores: xr.Dataset, metric: str) -> dict[str, xr.DataArray]:
    """(model, layer, region) marks of the curves: ``unscored`` layers, and the number of
    zero-variance stimuli each layer was scored without (``n_zero``, where the scores hold it)."""
    from workbench.analysis.scores import unscored_mask

    marks = {"unscored": unscored_mask(scores).sel({dims.METRIC: metric})}
    if "n_zero_variance" in scores:
        marks["n_zero"] = scores["n_zero_variance"].sel({dims.METRIC: metric})
    return marks


def _draw_model_curve(ax, m: xr.Dataset, line_style: dict, marks: dict, drawn: dict) -> None:
    """One model's curve on a panel: its scores by relative depth, bootstrap band, chance band,
    best-layer dot, ``x`` for unscored layers and hollow markers for layers scored without
    their zero-variance stimuli; ``drawn`` records which legend entries are needed."""
    depth, y = m["relative_depth"].values, m["score"].values
    color = line_style["color"]
    ok = np.isfinite(y) & np.isfinite(depth)
    if ok.any():
        layers = np.isfinite(depth)  # the model's layers; an unscored one breaks the line
        x = depth[layers]
        ax.plot(x, y[layers], lw=1.2, label=str(m[dims.MODEL].values), **line_style)
        if "ci_low" in m and "ci_high" in m:
            lo, hi = m["ci_low"].values[layers], m["ci_high"].values[layers]
            if np.isfinite(lo).any():
                ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
        if "null_mean" in m and "null_p95" in m:  # chance: hatched, under the curve
            lo, hi = m["null_mean"].values[layers], m["null_p95"].values[layers]
            if np.isfinite(lo).any():
                drawn["null"] = True
                ax.fill_between(x, lo, hi, facecolor="none", edgecolor=color, hatch="////", lw=0, alpha=0.45,
                                zorder=0.5)
        top = int(np.nanargmax(np.where(ok, y, -np.inf)))
        ax.plot(depth[top], y[top], "o", color=color, ms=4)
    missing = marks["unscored"] & np.isfinite(depth)
    if missing.any():
        drawn["unscored"] = True
        ax.plot(depth[missing], np.full(missing.sum(), 0.04), "x", color=color, ms=6, mew=1.5,
                transform=ax.get_xaxis_transform(), clip_on=False)
    fewer = ok & (np.nan_to_num(marks["n_zero"]) > 0) if "n_zero" in marks else np.zeros_like(ok)
    if fewer.any():
        drawn["excluded"] = True
        ax.plot(depth[fewer], y[fewer], "o", mfc="white", mec=color, ms=6, mew=1.2)


def _draw_ceiling(ax, reg: xr.Dataset, scores: xr.Dataset, region: str, metric: str, normalized: bool,
                  drawn: dict) -> None:
    """The region's noise ceiling (dashed) with its band down to the lower bound, or why none."""
    if not np.isfinite(_ceiling(reg)):
        why = ceiling_reason(scores, region, metric)
        style.note_above_axes(ax, why)
        return
    drawn["ceiling"] = True
    ax.axhline(1.0 if normalized else _ceiling(reg), color="k", ls="--", lw=0.8, label="ceiling")
    low, upper = _ceiling_low(reg), _ceiling(reg)
    if np.isfinite(low):  # both bounds known (e.g. leave-one-subject-out): a band
        drawn["ceiling band"] = True
        ax.axhspan(low / upper if normalized else low, 1.0 if normalized else upper,
                   color="0.5", alpha=0.2, lw=0, zorder=0)


def _layer_curves_legend(scores: xr.Dataset, metric: str, applicable: list[str], styles: dict, normalized: bool,
                         drawn: dict) -> list:
    """The legend's handles: each model (with the layers its best was taken over over the
    ``applicable`` regions), then the marks and bands that some panel drew."""
    best = best_layer(scores).sel({dims.METRIC: metric})
    handles = []
    for model, family in zip(map(str, scores[dims.MODEL].values), map(str, scores["family"].values)):
        used = _layers_label(*_layers_used(best, model, applicable))
        label = f"{model} ({style.family_label(family)}{'; ' + used if used else ''})"
        handles.append(Line2D([], [], label=label, **styles[model]))
    handles.append(Line2D([], [], color="0.3", marker="o", ls="none", ms=4, label="best layer (argmax)"))
    if drawn["ceiling"]:
        handles.append(Line2D([], [], color="k", ls="--", lw=0.8,
                              label="noise ceiling (= 1)" if normalized else "noise ceiling"))
    if drawn["ceiling band"]:
        handles.append(Patch(color="0.5", alpha=0.2, lw=0, label="noise ceiling, lower to upper bound"))
    if drawn["null"]:
        handles.append(Patch(facecolor="none", edgecolor="0.35", hatch="////", lw=0,
                             label=f"chance: stimulus-permutation null, mean to 95th pct.{_permutations_note(scores)}"))
    if drawn["unscored"]:
        handles.append(Line2D([], [], color="0.3", marker="x", ls="none", ms=6, mew=1.5,
                              label="unscored layer (no score)"))
    if drawn["excluded"]:
        handles.append(Line2D([], [], color="0.3", marker="o", mfc="white", ls="none", ms=6,
                              label="scored without zero-variance stimuli"))
    return handles


def _permutations_note(scores: xr.Dataset) -> str:
    """``" (100 permutations)"`` from the run's protocol, ``""`` when it does not say."""
    try:
        return f" ({int(json.loads(scores.attrs['protocol'])['permutations'])} permutations)"
    except (KeyError, TypeError, ValueError):
        return ""


def _ceiling(region_scores: xr.Dataset) -> float:
    if "ceiling" not in region_scores:
        return np.nan
    return float(region_scores["ceiling"].values)


def _ceiling_low(region_scores: xr.Dataset) -> float:
    """The ceiling's lower bound (``ceiling_low``), NaN where unknown or absent."""
    if "ceiling_low" not in region_scores:
        return np.nan
    return float(region_scores["ceiling_low"].values)


def plot_best_layer_depth(scores: xr.Dataset, metric: str) -> Figure:
    """Relative depth of each model's best layer, per region and family.

    One dot per model (coloured by family, offset per family), with the family mean as a
    horizontal bar. The best layer is the argmax over layers
    (:func:`workbench.analysis.best_layer`); a dot labelled ``k/L`` was taken over only the
    ``k`` of the model's ``L`` layers that have a score. Only regions where the metric applies
    have a slot (:func:`applicable_regions`).
    """
    check_scores(scores)
    _check_metric(scores, metric)
    best = best_layer(scores).sel({dims.METRIC: metric})
    regions = applicable_regions(scores, metric)
    families = list(dict.fromkeys(str(f) for f in scores["family"].values))
    width = 0.8 / max(len(families), 1)
    partial = False
    with style.figure_style():
        fig = style.new_figure((max(4.5, 1.4 * len(regions) + 2), 3.6))
        ax = fig.subplots()
        for k, family in enumerate(families):
            offset = (k - (len(families) - 1) / 2) * width
            color = style.family_color(family)
            members = scores["family"].values == family
            for i, region in enumerate(regions):
                cell = best.sel({dims.REGION: region})
                depth = cell["relative_depth"].values
                keep = members & np.isfinite(depth)
                if not keep.any():
                    continue
                ax.scatter(np.full(keep.sum(), i + offset), depth[keep], color=color, s=18, zorder=3)
                ax.hlines(depth[keep].mean(), i + offset - width / 2.5, i + offset + width / 2.5, color=color, lw=2)
                scored, total = cell["n_layers_scored"].values[keep], cell["n_layers"].values[keep]
                for d, n, total_n in zip(depth[keep], scored, total):
                    if n < total_n:
                        partial = True
                        ax.annotate(f"{int(n)}/{int(total_n)}", (i + offset, d), xytext=(3, 4),
                                    textcoords="offset points", fontsize=7, color=color, va="bottom")
        ax.set_xticks(range(len(regions)), regions, rotation=20, ha="right")
        ax.set_xlim(-0.6, len(regions) - 0.4)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("relative depth of best layer")
        note = ("k/L: best of the k of L layers with a score" if partial
                else "best taken over all of each model's layers")
        ax.set_title(f"Best-matching layer per region: {style.metric_label(metric)}\n({note})")
        _family_legend(fig, families)
        style.mark_random_weights(fig, model_weights(scores))
    return fig


def plot_family_comparison(scores: xr.Dataset) -> Figure:
    """Mean model score per family and metric (a dot), with its t interval and chance level.

    A model's score is the mean over applicable regions of its best-layer scores; the
    interval is across the family's models at the protocol's ``ci_level``
    (:func:`workbench.analysis.family_means`). A family of one model gets no error bar and
    reads "n = 1" (its interval is undefined, not zero); the legend gives each family's number
    of models. Where the scores hold permutation nulls, a dashed tick marks the family's
    chance level (:func:`family_chance`). The y axis is fitted to the data, not drawn from 0.
    """
    check_scores(scores)
    level = ci_level(scores)
    means = family_means(scores, level=level)
    chance = family_chance(scores)
    metrics = [str(m) for m in means[dims.METRIC].values]
    families = [str(f) for f in means["family"].values]
    width = 0.8 / max(len(families), 1)
    with style.figure_style():
        fig = style.new_figure((max(5.0, 1.5 * len(metrics) + 2.5), 3.6))
        ax = fig.subplots()
        for k, family in enumerate(families):
            fam = means.sel(family=family)
            x = np.arange(len(metrics)) + (k - (len(families) - 1) / 2) * width
            mean, low, high = fam["mean"].values, fam["ci_low"].values, fam["ci_high"].values
            n_models = fam["n_models"].values
            counts = sorted({int(n) for n in n_models if n > 0})
            shown = "/".join(map(str, counts)) or "0"
            color = style.family_color(family)
            ax.plot(x, mean, "o", ms=6, color=color, ls="none",
                    label=f"{style.family_label(family)} (n = {shown} model{'' if counts == [1] else 's'})")
            interval = np.isfinite(low) & np.isfinite(high)
            if interval.any():
                ax.errorbar(x[interval], mean[interval],
                            yerr=np.vstack([mean[interval] - low[interval], high[interval] - mean[interval]]),
                            fmt="none", ecolor=color, capsize=3, lw=1)
            if chance is not None:
                ax.hlines(chance.sel(family=family).values, x - width * 0.4, x + width * 0.4, colors="0.3",
                          linestyles="--", lw=1)
            for xi, mi, n in zip(x, mean, n_models):
                if n == 1 and np.isfinite(mi):
                    ax.annotate("n = 1", (xi, mi), xytext=(0, -7), textcoords="offset points",
                                ha="center", va="top", fontsize=7)
        if chance is not None:
            ax.plot([], [], color="0.3", ls="--", lw=1, label="chance (null mean at the best layers)")
        ax.set_xticks(range(len(metrics)), [style.metric_label(m) for m in metrics], rotation=15, ha="right")
        ax.set_ylabel("model score (best layer,\nmean over regions)")
        single = "\n(no error bar for a family of one model: n = 1)" if (means["n_models"] == 1).any() else ""
        ax.set_title(f"Family comparison: mean over models, {level:.0%} t-interval{single}")
        fig.legend(loc="outside lower center", ncols=2)
        style.mark_random_weights(fig, model_weights(scores))
    return fig


def family_chance(scores: xr.Dataset) -> xr.DataArray | None:
    """Chance level of each (family, metric) on the scale of :func:`plot_family_comparison`.

    The permutation-null mean (``null_mean``) at each model's best layer, averaged as its
    scores are: over the applicable regions, then over the family's models. ``None`` when the
    scores hold no nulls.
    """
    if "null_mean" not in scores:
        return None
    per_model = mean_over_applicable(best_layer(scores)["null_mean"], scores["applicable"],
                                     scores[dims.REGION].values)
    families = list(dict.fromkeys(str(f) for f in scores["family"].values))
    return xr.concat([per_model.isel({dims.MODEL: scores["family"].values == f}).mean(dims.MODEL)
                      for f in families], dim=xr.DataArray(families, dims="family", name="family"))


def plot_rank_agreement(scores: xr.Dataset) -> Figure:
    """Matrix of Spearman correlations between metrics of the models' scores.

    Computed by :func:`workbench.analysis.rank_agreement`; a cell needs at least three models
    scored by both metrics, otherwise it reads "n/a" and the figure says why. With fewer than
    :data:`RANK_AGREEMENT_MIN_MODELS` models the title says how few values rho can take
    (:func:`rank_correlation_values`): with 3 models only -1, -0.5, 0.5 and 1.
    """
    check_scores(scores)
    agreement = rank_agreement(scores)
    rho = agreement["rho"].values
    n_models = agreement["n_models"].values
    metrics = [str(m) for m in agreement[dims.METRIC].values]
    n = len(metrics)
    count = scores.sizes[dims.MODEL]
    with style.figure_style():
        fig = style.new_figure((max(5.2, 1.0 * n + 3.0), max(4.2, 1.0 * n + 2.0)))
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
        fig.colorbar(image, ax=ax, label="Spearman rho of model scores", shrink=0.8)
        title = f"Metric rank agreement\n({count} model{'' if count == 1 else 's'})"
        most = int(n_models.max()) if n_models.size else 0
        if np.isnan(rho).all():
            title += (f"\nn/a: a rank correlation needs >= 3 models scored by both metrics; "
                      f"at most {most} here")
        elif most < RANK_AGREEMENT_MIN_MODELS:
            values = rank_correlation_values(most)
            listed = ", ".join(f"{v:g}" for v in values) if len(values) <= 5 else f"{len(values)} values"
            title += (f"\ncoarse: over {most} models rho takes only {listed};\n"
                      f"read it from {RANK_AGREEMENT_MIN_MODELS} models on")
        ax.set_title(title, wrap=True)
        style.mark_random_weights(fig, model_weights(scores))
    return fig


#: Fewest models over which the metric rank agreement is more than a handful of values.
RANK_AGREEMENT_MIN_MODELS = 5


def rank_correlation_values(n: int) -> list[float]:
    """Every value Spearman's rho can take between two rankings of ``n`` items without ties
    (``1 - 6 sum(d^2) / (n (n^2 - 1))`` over the ``n!`` permutations; ``n`` at most 8).

    Examples
    --------
    >>> rank_correlation_values(3)
    [-1.0, -0.5, 0.5, 1.0]
    """
    from itertools import permutations

    if not 2 <= n <= 8:
        raise ValidationError(f"n must lie between 2 and 8 (permutations are enumerated), found {n}")
    ranks = np.arange(n)
    sums = {int(((ranks - np.array(p)) ** 2).sum()) for p in permutations(range(n))}
    return sorted(round(1 - 6 * d / (n * (n * n - 1)), 12) for d in sums)


def plot_per_step(scores: xr.Dataset, metric: str) -> Figure:
    """Similarity per SNN time step at each spiking model's best layer, one panel per region.

    Each model keeps its line style of the other figures (:func:`model_styles`: its family's
    colour); a time step without a score is an ``x`` at the bottom of the panel, with a legend
    entry, never a silently shorter line.

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
    styles = model_styles(scores)
    with style.figure_style():
        fig, axes = panel_grid(len(regions))
        for ax, region in zip(axes, regions):
            for model in models:
                where = {dims.MODEL: model, dims.REGION: region}
                layer = int(best[dims.LAYER].sel(where))
                if layer < 0:
                    continue
                y = per_step.sel(where).isel({dims.LAYER: layer}).values
                name = str(best["layer_name"].sel(where).values)
                ax.plot(steps, y, marker="o", ms=3, label=f"{model} ({name})", **styles[model])
                ax.axhline(float(best["score"].sel(where)), color=styles[model]["color"], ls=":", lw=0.8)
                missing = ~np.isfinite(y)
                if missing.any():
                    ax.plot(steps[missing], np.full(missing.sum(), 0.04), "x", color=styles[model]["color"],
                            ms=6, mew=1.5, transform=ax.get_xaxis_transform(), clip_on=False,
                            label=f"{model}: no score at this step")
            ax.set_title(region)
            ax.set_xlabel("time step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(axis_label(metric))
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), fontsize=7)  # under the panel
        fig.suptitle(f"SNN similarity per time step at the best layer ({metric}; dotted: all steps)")
        style.mark_random_weights(fig, model_weights(scores))
    return fig


def plot_rdm_pair(
    model_rdm: np.ndarray,
    brain_rdm: np.ndarray,
    *,
    model_label: str = "model",
    brain_label: str = "brain",
    title: str | None = None,
    categories=None,
) -> Figure:
    """Two RDM heatmaps side by side: a model layer's (left) and the brain region's (right).

    Each RDM is shown in percentiles of its own upper-triangle dissimilarities (the matrix is
    taken as symmetric), so that the two
    are comparable whatever their distance measure.

    Parameters
    ----------
    model_rdm, brain_rdm : ndarray, shape (n_stimuli, n_stimuli)
        Symmetric dissimilarity matrices over the same stimuli, in the same order.
    categories : sequence of str, shape (n_stimuli,), optional
        Each stimulus's category (e.g. the 92-image set's ``"human face"``): each run of
        consecutive stimuli with one category is labelled on both axes and outlined.
    """
    from scipy.stats import rankdata

    model_rdm = check_rdm(model_rdm, "model_rdm")
    brain_rdm = check_rdm(brain_rdm, "brain_rdm")
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
            ax.grid(False)
            if categories is not None:
                _label_categories(ax, categories, rdm.shape[0])
            else:
                ax.set_xlabel("stimulus")
                ax.set_ylabel("stimulus")
        fig.colorbar(image, ax=list(axes), label="dissimilarity (percentile)", shrink=0.8)
        if title:
            fig.suptitle(title)
    return fig


def stimulus_categories(brain_rdm: xr.DataArray) -> np.ndarray | None:
    """Each stimulus's category from a region's RDM (``dataset.rdm(region)``): its ``category``
    coordinate, which the dataset's stimulus metadata supply (the 92-image set's ``"human
    face"``, ``"natural object"``, ...), for :func:`plot_rdm_pair`; None when it has none.

    Parameters
    ----------
    brain_rdm : xarray.DataArray, shape (n_stimuli, n_stimuli)
    """
    if "category" not in brain_rdm.coords:
        return None
    return np.asarray(brain_rdm["category"].values).astype(str)


def category_runs(categories) -> list[tuple[str, int, int]]:
    """Runs of consecutive equal categories: ``(category, start, stop)`` with ``stop`` exclusive."""
    categories = [str(c) for c in categories]
    runs = []
    for i, category in enumerate(categories):
        if runs and runs[-1][0] == category:
            runs[-1][2] = i + 1
        else:
            runs.append([category, i, i + 1])
    return [tuple(run) for run in runs]


def _label_categories(ax, categories, n: int) -> None:
    if len(categories) != n:
        raise ValidationError(f"categories has {len(categories)} entries; expected one per stimulus ({n})")
    runs = category_runs(categories)
    centres = [(start + stop - 1) / 2 for _, start, stop in runs]
    names = [name for name, _, _ in runs]
    ax.set_xticks(centres, names, rotation=90, fontsize=6)
    ax.set_yticks(centres, names, fontsize=6)
    for _, start, stop in runs[1:]:
        ax.axhline(start - 0.5, color="white", lw=0.5)
        ax.axvline(start - 0.5, color="white", lw=0.5)


def plot_rdms(rdms: xr.DataTree, weights=None):
    """Heatmap pairs of every (model layer, brain region) RDM pair of a run's ``rdms.nc``.

    Parameters
    ----------
    rdms : xarray.DataTree
        :func:`workbench.analysis.load_rdms`'s result.
    weights : mapping model -> weights label, optional
        The run's weights (e.g. ``dict(model_weights(scores))``): a pair of a network with random
        weights says so under its title (:func:`style.mark_random_weights`).

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
        categories = pair["category"].values.astype(str) if "category" in pair.coords else None
        fig = plot_rdm_pair(
            pair["model_rdm"].values,
            pair["brain_rdm"].values,
            model_label=f"{model}: {layer}",
            brain_label=region,
            title=f"RDMs over {pair.sizes['stimulus_a']} stimuli",
            categories=categories,
        )
        if weights and model in weights:
            style.mark_random_weights(fig, [(model, weights[model])])
        yield f"rdm_{slug(model)}__{slug(region)}", fig


def slug(text: str) -> str:
    """Return ``text`` as a file-name-safe string (``"IT (monkey)"`` -> ``"IT-monkey"``)."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", str(text)).strip("-")


# ----------------------------------------------------------------------------- a run's figures
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
        ceilings = scores["ceiling"].sel({dims.METRIC: metric}).values
        if (np.isfinite(ceilings) & (ceilings > 0)).any():
            figures.append((f"layer_curves_{slug(metric)}_ceiling_normalized",
                            lambda m=metric: plot_layer_curves(scores, m, normalized=True)))
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
        for name, fig in plot_rdms(load_rdms(run_dir / RDMS_FILE), dict(model_weights(scores))):
            written.extend(style.savefig(fig, out_dir / name))
    from workbench.reports.appendix_figures import render_appendix_figures  # the study's appendix analyses

    written.extend(render_appendix_figures(scores, out_dir))
    logger.info("wrote %d figure files to %s", len(written), out_dir)
    return written


# ----------------------------------------------------------------------------- captions
_CAPTIONS = {
    "layer_curves": (
        "Layer-wise {label}: one panel per brain region, one line per model (coloured by family). "
        "x: the layer's relative depth in its model (0 = first analysis layer, 1 = last); y: {label}. "
        "Dot: each model's best layer (argmax over its scored layers). Hatched band: chance, the "
        "mean to 95th percentile of the scores of the same layer with the neural side's stimuli "
        "shuffled (stimulus-permutation null); a curve inside its band is not above chance. "
        "Dashed line: the region's "
        "noise ceiling; a panel without one says why above it. x at the bottom: a layer the metric "
        "could not score (listed in the report); a legend entry 'best of k/L layers' says over how "
        "many layers the best was taken. Regions where the metric cannot apply have no panel: a "
        "dataset that gives only an RDM for a region (the 92-image set's IT) admits only RSA there. "
        "A line under the title says when the networks have random weights."
    ),
    "layer_curves_normalized": (
        "The same curves divided by each region's noise ceiling (1 = the ceiling, the score the "
        "region's own repeated measurements reach); regions without a ceiling cannot be normalised "
        "and have no panel."
    ),
    "best_layer_depth": (
        "Relative depth (0 = first layer, 1 = last) of each model's best layer by {label}, per "
        "region; dots are models, bars family means. A dot labelled k/L was taken over the k of "
        "the model's L layers that have a score. Only regions where the metric applies have a slot."
    ),
    "family_comparison": (
        "Mean model score per family and metric (dots; the y axis is fitted to the scores, not "
        "drawn from 0); a model's score is the mean over applicable regions of its best-layer "
        "scores. Error bars: t-interval across the family's models, whose number the legend gives; "
        "a family of one model has none and reads 'n = 1'. Dashed tick: the family's chance level "
        "(stimulus-permutation null mean at the same best layers), where the run computed nulls."
    ),
    "metric_rank_agreement": (
        "Spearman correlation between metrics of the models' scores (do the metrics rank the "
        "models alike?); 'n/a' where fewer than three models have scores for both metrics. Over "
        "fewer than five models rho takes only a few values (with three: -1, -0.5, 0.5, 1), and "
        "the title says so."
    ),
    "snn_per_step": (
        "{label} of each spiking model's best layer at each time step; dotted: the score of the "
        "features averaged over all time steps. Lines in the family colour of each model; x at the "
        "bottom: a time step without a score (e.g. no spike for some stimuli at the first step)."
    ),
    "rdm": (
        "Representational dissimilarity matrices over the same stimuli: left, the model's best "
        "layer; right, the brain region. Each is shown in percentiles of its own dissimilarities "
        "(dark = similar); category blocks are labelled where the dataset has categories."
    ),
}


def figure_caption(name: str) -> str:
    """The caption of a figure written by :func:`render_all_figures`, from its file stem.

    Parameters
    ----------
    name : str
        A file stem such as ``"layer_curves_rsa"`` or ``"rdm_resnet18__cowley2023_v4-V4"``.
    """
    from workbench.reports.appendix_figures import appendix_caption

    name = Path(str(name)).stem
    if appendix_caption(name) is not None:
        return appendix_caption(name)
    for prefix in ("layer_curves", "best_layer_depth", "snn_per_step"):
        if name.startswith(prefix + "_"):
            rest = name[len(prefix) + 1:]
            normalized = rest.endswith("_ceiling_normalized")
            metric = rest[: -len("_ceiling_normalized")] if normalized else rest
            text = _CAPTIONS[prefix].format(label=style.metric_label(metric))
            if normalized:
                text += " " + _CAPTIONS["layer_curves_normalized"]
            return text
    if name.startswith("rdm_"):
        return _CAPTIONS["rdm"]
    return _CAPTIONS.get(name, name.replace("_", " "))
