"""Figures of the study's appendix analyses (:mod:`workbench.analysis.appendix`), from a run's scores.

:func:`appendix_figures` plans every figure of a run: what it shows (its caption) and either a
function drawing it or why it cannot be drawn (a dataset or model the run lacks), so a run
on a subset of the study's grid never fails for the figures it cannot have.
:func:`render_appendix_figures` writes the drawable ones (PNG and SVG); it is part of
:func:`workbench.reports.render_all_figures`, so ``workbench figures RUN`` regenerates them from
the result files alone. Networks with random weights are named under each figure's title.
"""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from workbench import dims
from workbench.analysis import appendix
from workbench.analysis.statistics import sew_resnet_pairs
from workbench.reports import style
from workbench.reports.figures import ci_level, model_weights, panel_grid, slug

logger = logging.getLogger(__name__)

#: The study whose published scores the side-by-side figure draws.
PAPER_STUDY = "huang2023"
#: Model properties the score is regressed on: column -> (axis label, log10 scale?).
PROPERTIES = {
    "params": ("parameters (log10)", True),
    "gflops": ("GFLOPS (log10; torchvision's count)", True),
    "top1": ("ImageNet top-1 accuracy (%)", False),
}
_MARKERS = "os^Dv<>"
#: Colours of datasets (Okabe-Ito colours not used by the families).
_DATASET_COLORS = ("#000000", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")


@dataclass(frozen=True)
class AppendixFigure:
    """One planned figure: its file stem, caption and drawing function, or why it is not drawn."""

    stem: str
    caption: str
    make: Callable[[], Figure] | None = None
    reason: str = ""


def _finish(fig: Figure, scores: xr.Dataset, title: str) -> Figure:
    fig.suptitle(title)
    style.mark_random_weights(fig, model_weights(scores))
    return fig


def _family_handles(families) -> list:
    return [Line2D([], [], color=style.family_color(f), marker="o", ls="none", label=style.family_label(f))
            for f in dict.fromkeys(families)]


def _cells(table: pd.DataFrame) -> list[tuple[str, str]]:
    """The (dataset, metric) pairs of a tidy table, in its order."""
    return list(dict.fromkeys(zip(table[dims.DATASET], table[dims.METRIC])))


def _p_text(test: str, p: float, reason: str = "") -> str:
    """``"<test> p = 0.012"``, or ``"<test> n/a: <reason>"`` wrapped to fit above a panel."""
    return f"{test} p = {p:.2g}".strip() if np.isfinite(p) else textwrap.fill(f"{test} n/a: {reason}".strip(), 45)


def plot_family_means(scores: xr.Dataset) -> Figure:
    """Family means per (dataset, metric), one panel each: a dot per family with its t-interval
    across models, the models' scores as small dots, and the Kruskal-Wallis p above the panel."""
    level = ci_level(scores)
    means, tests = appendix.family_summary(scores, level=level), appendix.family_tests(scores)
    table = appendix.dataset_table(scores)
    cells = _cells(means[means["n_models"] > 0])
    with style.figure_style():
        fig, axes = panel_grid(len(cells), panel_size=(3.0, 2.8))
        for ax, (dataset, metric) in zip(axes, cells):
            cell = means[(means[dims.DATASET] == dataset) & (means[dims.METRIC] == metric) & (means["n_models"] > 0)]
            for x, row in enumerate(cell.itertuples()):
                color = style.family_color(row.family)
                models = table[(table[dims.DATASET] == dataset) & (table[dims.METRIC] == metric)
                               & (table["family"] == row.family)]["score"]
                ax.plot(np.full(len(models), x + 0.2), models, ".", color=color, alpha=0.5, ms=4)
                error = [[row.mean - row.ci_low], [row.ci_high - row.mean]] if np.isfinite(row.ci_low) else None
                ax.errorbar(x, row.mean, yerr=error, fmt="o", color=color, capsize=3)
            ax.set_xticks(range(len(cell)), [f"{style.family_label(f)}\nn = {n}"
                                             for f, n in zip(cell["family"], cell["n_models"])])
            ax.set_xlim(-0.5, len(cell) - 0.3)
            ax.set_title(f"{dataset}\n{style.metric_label(metric)}", fontsize=8)
            kw = tests[(tests[dims.DATASET] == dataset) & (tests[dims.METRIC] == metric)
                       & (tests["test"] == "Kruskal-Wallis H")].iloc[0]
            style.note_above_axes(ax, _p_text("Kruskal-Wallis", kw.p_value, kw.reason))
            ax.set_ylabel("model score")
        return _finish(fig, scores, f"Family means per dataset and metric ({level:.0%} t-interval across models)")


def plot_model_ranking(scores: xr.Dataset, dataset: str) -> Figure:
    """The models of one dataset ranked per metric: horizontal bars, best at the top, coloured by family."""
    ranking = appendix.model_ranking(scores)
    ranking = ranking[ranking[dims.DATASET] == dataset]
    metrics = list(dict.fromkeys(ranking[dims.METRIC]))
    n_models = int(ranking.groupby(dims.METRIC).size().max())
    with style.figure_style():
        fig, axes = panel_grid(len(metrics), panel_size=(3.4, max(2.2, 0.9 + 0.16 * n_models)), max_cols=4)
        for ax, metric in zip(axes, metrics):
            cell = ranking[ranking[dims.METRIC] == metric]
            y = np.arange(len(cell))[::-1]
            ax.barh(y, cell["score"], color=[style.family_color(f) for f in cell["family"]])
            ax.set_yticks(y, [f"{r}. {m}" for r, m in zip(cell["rank"], cell[dims.MODEL])], fontsize=6)
            ax.set_xlabel(style.metric_label(metric))
            ax.grid(axis="y", visible=False)
        fig.legend(handles=_family_handles(ranking["family"]), loc="outside lower center", ncols=3)
        return _finish(fig, scores, f"Models ranked by their score on {dataset}")


def plot_paired_gain(scores: xr.Dataset) -> Figure:
    """Relative gain of each SEW-ResNet over the ResNet of the same depth: a marker per dataset
    (colour) and metric (shape), the mean gain (dashed) and its t-interval (band)."""
    gain = appendix.paired_gain(scores, level=ci_level(scores))
    cells = gain.cells
    datasets, metrics = list(dict.fromkeys(cells[dims.DATASET])), list(dict.fromkeys(cells[dims.METRIC]))
    depths = sorted({int(m[len("sew_resnet"):]) for m in cells[dims.MODEL]})
    snn = style.family_color("snn")
    with style.figure_style():
        fig = style.new_figure((max(4.5, 1.1 * len(depths) + 2.5), 4.2))
        ax = fig.subplots()
        for i, dataset in enumerate(datasets):
            for k, metric in enumerate(metrics):
                sel = cells[(cells[dims.DATASET] == dataset) & (cells[dims.METRIC] == metric)]
                x = [depths.index(int(m[len("sew_resnet"):])) + 0.08 * (k - len(metrics) / 2) for m in sel[dims.MODEL]]
                ax.plot(x, 100 * sel["relative_gain"], _MARKERS[k % len(_MARKERS)],
                        color=_DATASET_COLORS[i % len(_DATASET_COLORS)], ms=5)
        ax.axhline(0, color="k", lw=0.8)
        ax.axhline(100 * gain.mean, color=snn, ls="--", lw=1)
        if np.isfinite(gain.ci_low):
            ax.axhspan(100 * gain.ci_low, 100 * gain.ci_high, color=snn, alpha=0.15, lw=0)
        ax.set_xticks(range(len(depths)), [f"SEW-ResNet{d}\nvs ResNet{d}" for d in depths], fontsize=7)
        ax.set_ylabel("relative gain (%)")
        ax.set_title(f"mean {100 * gain.mean:+.1f} %; {gain.n_positive} of {gain.n_cells} gains positive; "
                     f"sign test p = {gain.sign_test_p:.2g}", fontsize=8)
        handles = ([Line2D([], [], color=_DATASET_COLORS[i % len(_DATASET_COLORS)], marker="s", ls="none", label=d)
                    for i, d in enumerate(datasets)]
                   + [Line2D([], [], color="0.3", marker=_MARKERS[k % len(_MARKERS)], ls="none", label=m)
                      for k, m in enumerate(metrics)]
                   + [Line2D([], [], color=snn, ls="--", label="mean gain"),
                      Patch(color=snn, alpha=0.15, lw=0, label=f"{gain.level:.0%} t-interval")])
        fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=7)
        return _finish(fig, scores, "SEW-ResNet vs the ResNet of the same depth")


def plot_depth_by_species(scores: xr.Dataset, depth: str = "study") -> Figure:
    """Best-layer depth on mouse against macaque regions, one panel per metric: a line per model
    from its mean depth over mouse regions to its mean over macaque regions."""
    depths = appendix.best_layer_depths(scores, depth=depth)
    summary = appendix.depth_by_species(depths, level=ci_level(scores))
    kept = depths[depths[dims.SPECIES].isin(appendix.COMPARED_SPECIES)]
    with style.figure_style():
        fig, axes = panel_grid(len(summary), panel_size=(2.6, 3.0))
        for ax, row in zip(axes, summary.itertuples()):
            per_model = kept[kept[dims.METRIC] == row.metric].groupby([dims.MODEL, "family", dims.SPECIES])["depth"]
            per_model = per_model.mean().unstack(dims.SPECIES).reindex(columns=list(appendix.COMPARED_SPECIES))
            for (model, family), values in per_model.iterrows():
                ax.plot([0, 1], values.to_numpy(), "o-", color=style.family_color(family), alpha=0.5, ms=3, lw=0.7)
            for x, species in enumerate(appendix.COMPARED_SPECIES):
                mean = getattr(row, f"{species}_mean")
                ax.hlines(mean, x - 0.2, x + 0.2, color="k", lw=2)
            ax.set_xticks([0, 1], [f"{s}\n(n = {getattr(row, f'{s}_n_models')})" for s in appendix.COMPARED_SPECIES])
            ax.set_xlim(-0.4, 1.4)
            ax.set_ylim(-0.05, 1.05)
            ax.set_title(style.metric_label(row.metric), fontsize=8)
            style.note_above_axes(ax, _p_text("Wilcoxon", row.wilcoxon_p, row.reason))
            ax.set_ylabel(f"best-layer depth ({depth})")
        fig.legend(handles=_family_handles(kept["family"]), loc="outside lower center", ncols=3)
        definition = "the study's layer depth" if depth == "study" else "layer index / (n - 1)"
        return _finish(fig, scores, f"Best-layer depth, mouse vs macaque regions ({definition})")


def plot_rank_agreement_per_dataset(scores: xr.Dataset) -> Figure:
    """Spearman correlation between metrics' model rankings, one matrix per dataset."""
    agreement = appendix.metric_rank_agreement(scores)
    datasets = list(dict.fromkeys(agreement[dims.DATASET]))
    with style.figure_style():
        fig, axes = panel_grid(len(datasets), panel_size=(3.4, 3.0), max_cols=3)
        for ax, dataset in zip(axes, datasets):
            cell = agreement[agreement[dims.DATASET] == dataset]
            metrics = list(dict.fromkeys(list(cell[dims.METRIC]) + list(cell["other_metric"])))
            rho = np.eye(len(metrics))
            for row in cell.itertuples():
                i, j = metrics.index(row.metric), metrics.index(row.other_metric)
                rho[i, j] = rho[j, i] = row.rho
            image = ax.imshow(rho, cmap=style.DIVERGING_CMAP, vmin=-1, vmax=1)
            for (i, j), value in np.ndenumerate(rho):
                ax.text(j, i, "n/a" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(np.nan_to_num(value)) > 0.6 else "black")
            ax.set_xticks(range(len(metrics)), metrics, rotation=30, ha="right", fontsize=7)
            ax.set_yticks(range(len(metrics)), metrics, fontsize=7)
            ax.grid(False)
            ax.set_title(dataset, fontsize=8)
            if cell["rho"].isna().any():
                style.note_above_axes(ax, _p_text("", np.nan, cell["reason"][cell["rho"].isna()].iloc[0]), fontsize=6)
        fig.colorbar(image, ax=axes, label="Spearman rho of model scores", shrink=0.8)
        return _finish(fig, scores, "Metric rank agreement per dataset")


def plot_score_vs_property(scores: xr.Dataset, properties: pd.DataFrame, column: str) -> Figure:
    """Score against a model property (:data:`PROPERTIES`), one panel per (dataset, metric): a dot
    per model coloured by family, the least-squares line, and R^2 and p above the panel."""
    label, log10 = PROPERTIES[column]
    values = properties[column].to_dict()
    fits = appendix.score_regression(scores, values, log10=log10)
    table = appendix.dataset_table(scores)
    with style.figure_style():
        fig, axes = panel_grid(len(fits), panel_size=(3.0, 2.7))
        for ax, fit in zip(axes, fits.itertuples()):
            cell = table[(table[dims.DATASET] == fit.dataset) & (table[dims.METRIC] == fit.metric)]
            x = cell[dims.MODEL].map(values).to_numpy(dtype=float)
            x = np.log10(np.where(x > 0, x, np.nan)) if log10 else x
            ax.scatter(x, cell["score"], c=[style.family_color(f) for f in cell["family"]], s=12)
            if np.isfinite(fit.slope):
                grid = np.linspace(np.nanmin(x), np.nanmax(x), 2)
                ax.plot(grid, fit.intercept + fit.slope * grid, color="k", lw=1)
                note = f"R² = {fit.r2:.3f}, p = {fit.p_value:.2g}, n = {fit.n_models}"
            else:
                note = _p_text("", np.nan, fit.reason)
            ax.set_title(f"{fit.dataset}\n{style.metric_label(fit.metric)}", fontsize=8)
            style.note_above_axes(ax, note, fontsize=6)
            ax.set_xlabel(label)
            ax.set_ylabel("model score")
        fig.legend(handles=_family_handles(table["family"]), loc="outside lower center", ncols=3)
        return _finish(fig, scores, f"Model score against {label.split(' (')[0]}")


def plot_branches(scores: xr.Dataset, branches: dict, species: str = "mouse") -> Figure:
    """Multi-branch against single-branch networks on one species' regions, one panel per metric."""
    summary = appendix.branch_comparison(scores, branches, species=species)
    table = appendix.species_scores(scores, species)
    with style.figure_style():
        fig, axes = panel_grid(len(summary), panel_size=(2.6, 2.8))
        for ax, row in zip(axes, summary.itertuples()):
            cell = table[(table[dims.METRIC] == row.metric) & np.isfinite(table["score"])]
            for x, kind in enumerate(("multi", "single")):
                group = cell[cell[dims.MODEL].map(lambda m: branches.get(m, "")) == kind]
                ax.scatter(np.full(len(group), x), group["score"], c=[style.family_color(f) for f in group["family"]],
                           s=14, alpha=0.7)
                ax.hlines(getattr(row, f"{kind}_mean"), x - 0.25, x + 0.25, color="k", lw=2)
            ax.set_xticks([0, 1], [f"multi\n(n = {row.multi_n})", f"single\n(n = {row.single_n})"])
            ax.set_xlabel("branches")
            ax.set_xlim(-0.6, 1.6)
            ax.set_title(style.metric_label(row.metric), fontsize=8)
            style.note_above_axes(ax, _p_text("Mann-Whitney U", row.p_value, row.reason), fontsize=6)
            ax.set_ylabel(f"score (mean over\n{species} regions)")
        drawn = table[table[dims.MODEL].isin(list(branches)) & np.isfinite(table["score"])]
        fig.legend(handles=_family_handles(drawn["family"]), loc="outside lower center", ncols=3)
        return _finish(fig, scores, f"Multi-branch vs single-branch networks on the {species} regions")


def plot_paper_comparison(scores: xr.Dataset, paper_scores: pd.DataFrame) -> Figure:
    """The run's score of every model against the paper's, one panel per (dataset, metric) both
    have: a dot per model coloured by family, the identity line, Pearson r and the mean absolute
    difference above the panel, and the most different models labelled."""
    run = appendix.dataset_table(scores)
    comparison = appendix.compare_with_paper(run, paper_scores)
    families = dict(zip(run[dims.MODEL], run["family"]))
    with style.figure_style():
        fig, axes = panel_grid(len(comparison.summary), panel_size=(3.0, 3.0))
        for ax, row in zip(axes, comparison.summary.itertuples()):
            cell = comparison.pairs[(comparison.pairs[dims.DATASET] == row.dataset)
                                    & (comparison.pairs[dims.METRIC] == row.metric)]
            ax.scatter(cell["paper"], cell["run"], c=[style.family_color(families[m]) for m in cell[dims.MODEL]], s=14)
            low = float(min(cell["paper"].min(), cell["run"].min()))
            high = float(max(cell["paper"].max(), cell["run"].max()))
            ax.plot([low, high], [low, high], color="0.5", ls="--", lw=0.8)
            for i in cell["difference"].abs().sort_values(ascending=False).index[:2]:
                ax.annotate(cell.at[i, dims.MODEL], (cell.at[i, "paper"], cell.at[i, "run"]), fontsize=6,
                            xytext=(3, 3), textcoords="offset points")
            ax.set_title(f"{row.dataset}\n{style.metric_label(row.metric)}", fontsize=8)
            style.note_above_axes(ax, f"r = {row.pearson_r:.2f}, mean |diff| = {row.mean_abs_difference:.3f}, "
                                      f"n = {row.n_models}", fontsize=6)
            ax.set_xlabel("paper (appendix)")
            ax.set_ylabel("this run")
        fig.legend(handles=_family_handles(run["family"]), loc="outside lower center", ncols=3)
        missing = f"; the run lacks {len(comparison.missing)} of the paper's models" if comparison.missing else ""
        return _finish(fig, scores, f"This run against the paper's scores (dashed: equal){missing}")


# ----------------------------------------------------------------------------- a run's appendix figures
CAPTIONS = {
    "family_means": (
        "Mean model score per family on each dataset and metric (large dot) with its t-interval across "
        "the family's models (none for a family of one model); small dots are the models. A model's "
        "score is the mean over the dataset's regions of each region's best-layer score. Above each "
        "panel: the Kruskal-Wallis H test across families (two-sided Mann-Whitney U per pair of families "
        "in the report's table; uncorrected)."),
    "ranking": (
        "The models ranked by their score on {dataset}, one panel per metric (1 = highest), coloured by "
        "family; the score is the mean over the dataset's regions of each region's best-layer score."),
    "sew_resnet_gain": (
        "Relative gain (SEW-ResNet - ResNet) / ResNet of each spiking SEW-ResNet over the ResNet of the "
        "same depth, one marker per dataset and metric; dashed: the mean gain, band: its t-interval. "
        "Points above 0: the spiking network is the more similar. The paper: +6.6 % on average, 42 of "
        "45 positive. The sign test asks whether positive gains outnumber negative ones by chance."),
    "depth_species": (
        "Depth of each model's best layer, averaged over the mouse regions (left) and over the macaque "
        "regions (right), one line per model coloured by family; black bars are the means across models. "
        "Depth is {definition} (0 = the first scored layer, 1 = the last). Above each panel: the "
        "Wilcoxon signed-rank test of the models' mouse vs macaque depths."),
    "metric_rank_agreement_per_dataset": (
        "Spearman correlation between two metrics' rankings of the models, one matrix per dataset "
        "(1: the metrics order the models alike); 'n/a' where fewer than "
        f"{appendix.MIN_RANK_MODELS} models have scores for both metrics."),
    "score_vs_params": (
        "Model score against log10 of the number of parameters, one panel per dataset and metric, with "
        "the least-squares line, its R² and p (the paper: R² = 0.546, p = 2e-8 for SVCCA on the Allen data)."),
    "score_vs_gflops": (
        "Model score against log10 GFLOPS, as torchvision publishes them for its networks (other networks "
        "have none and are left out), with the least-squares line, its R² and p."),
    "score_vs_top1": (
        "Model score against the ImageNet top-1 accuracy of the published weights (torchvision's "
        "metadata; timm's configurations and the study's SNNs publish none, so those networks are left "
        "out), with the least-squares line, its R² and p. With random weights the accuracy is that of "
        "the published weights, not of the networks scored."),
    "branches_mouse": (
        "Multi-branch networks (Inception modules, ResNeXt's grouped convolutions) against single-branch "
        "ones on the mouse regions: a dot per model (its score averaged over the mouse regions), black "
        "bars the group means; above each panel the two-sided Mann-Whitney U test. The study links "
        "multi-branch networks to the parallel pathways of the mouse visual cortex."),
    "paper_comparison": (
        "This run's score of every model (y) against the paper's appendix score (x), one panel per "
        "dataset and metric both have; on the dashed line the two agree. Above each panel: Pearson r "
        "and the mean absolute difference; the two most different models are labelled. The paper's "
        "scores were parsed from its appendix figures (workbench/studies/data)."),
}


def model_properties(models) -> pd.DataFrame:
    """params, top1, gflops and branches of each model (:func:`workbench.models.model_metadata`),
    indexed by model; NaN and ``""`` for a model that is not a registered name (e.g. a run)."""
    from workbench.errors import ValidationError
    from workbench.models import model_metadata

    rows = {}
    for model in models:
        try:
            meta = model_metadata(str(model))
            rows[str(model)] = (meta.params, meta.top1, meta.gflops, meta.branches)
        except ValidationError:
            rows[str(model)] = (np.nan, np.nan, np.nan, "")
    return pd.DataFrame.from_dict(rows, orient="index", columns=["params", "top1", "gflops", "branches"])


def _species_reason(scores: xr.Dataset, wanted) -> str:
    present = sorted(set(str(s) for s in scores[dims.SPECIES].values))
    absent = [s for s in wanted if s not in present]
    if not absent:
        return ""
    return (f"the run has no {' and no '.join(absent)} region (its species: {', '.join(present)}); the study's "
            "mouse data are allen2019_neuropixels_natural_scenes")


def appendix_figures(scores: xr.Dataset, *, paper_scores: pd.DataFrame | None = None,
                     properties: pd.DataFrame | None = None, depth: str = "study") -> list[AppendixFigure]:
    """Every appendix figure of a run: drawable (``make``) or not, with the reason.

    Parameters
    ----------
    scores : Dataset
    paper_scores : DataFrame, optional
        The paper's scores (:func:`workbench.studies.load_paper_scores`); default: none, and
        the side-by-side figure says so.
    properties : DataFrame, optional
        :func:`model_properties` (indexed by model; rows of other models are ignored); default:
        read for the scores' models.
    depth : {"study", "index"}, default: "study"
        The depth definition of the best-layer depth figure
        (:func:`workbench.analysis.appendix.best_layer_depths`).
    """
    models = [str(m) for m in scores[dims.MODEL].values]
    properties = model_properties(models) if properties is None else properties.reindex(models)
    table = appendix.dataset_table(scores)
    plan = [AppendixFigure("family_means", CAPTIONS["family_means"], lambda: plot_family_means(scores))]
    for dataset in dict.fromkeys(table[dims.DATASET]):
        plan.append(AppendixFigure(f"ranking_{slug(dataset)}", CAPTIONS["ranking"].format(dataset=dataset),
                                   lambda d=dataset: plot_model_ranking(scores, d)))
    pairs = sew_resnet_pairs(models)
    plan.append(AppendixFigure("sew_resnet_gain", CAPTIONS["sew_resnet_gain"], lambda: plot_paired_gain(scores))
                if pairs else AppendixFigure("sew_resnet_gain", CAPTIONS["sew_resnet_gain"], reason=(
                    "no depth-matched pair: the run has no sew_resnet<N> with resnet<N> (N in 18, 34, 50, 101, 152)")))
    why = _species_reason(scores, appendix.COMPARED_SPECIES)
    caption = CAPTIONS["depth_species"].format(definition=_depth_definition(depth))
    plan.append(AppendixFigure(f"depth_species_{depth}", caption, None if why else
                               (lambda: plot_depth_by_species(scores, depth)), why))
    few = len(dict.fromkeys(table[dims.METRIC])) < 2
    plan.append(AppendixFigure("metric_rank_agreement_per_dataset", CAPTIONS["metric_rank_agreement_per_dataset"],
                               None if few else (lambda: plot_rank_agreement_per_dataset(scores)),
                               "fewer than two metrics have scores" if few else ""))
    for column in PROPERTIES:
        known = int(properties[column].notna().sum())
        enough = known >= appendix.MIN_REGRESSION_MODELS
        plan.append(AppendixFigure(f"score_vs_{column}", CAPTIONS[f"score_vs_{column}"],
                                   (lambda c=column: plot_score_vs_property(scores, properties, c)) if enough else None,
                                   "" if enough else f"{known} of the run's models have a published {column}; "
                                   f"a regression needs {appendix.MIN_REGRESSION_MODELS}"))
    branches = properties["branches"].to_dict()
    why = _species_reason(scores, ("mouse",))
    plan.append(AppendixFigure("branches_mouse", CAPTIONS["branches_mouse"],
                               None if why else (lambda: plot_branches(scores, branches)), why))
    plan.append(_paper_figure(scores, table, paper_scores))
    return plan


def _paper_figure(scores: xr.Dataset, table: pd.DataFrame, paper_scores: pd.DataFrame | None) -> AppendixFigure:
    caption = CAPTIONS["paper_comparison"]
    if paper_scores is None:
        return AppendixFigure("paper_comparison", caption, reason="no published scores were given")
    shared = sorted(set(table[dims.DATASET]) & set(paper_scores[dims.DATASET]))
    if not shared:
        return AppendixFigure("paper_comparison", caption, reason=(
            f"the run has none of the paper's datasets ({', '.join(dict.fromkeys(paper_scores[dims.DATASET]))})"))
    return AppendixFigure("paper_comparison", caption, lambda: plot_paper_comparison(scores, paper_scores))


def study_paper_scores() -> pd.DataFrame:
    """The paper's published scores of :data:`PAPER_STUDY` (:func:`workbench.studies.load_paper_scores`)."""
    from workbench.studies import load_paper_scores

    return load_paper_scores(PAPER_STUDY)


def render_appendix_figures(scores: xr.Dataset, out_dir: str | os.PathLike) -> list[Path]:
    """Write every drawable appendix figure of ``scores`` into ``out_dir`` (PNG and SVG) and log
    why the others are not drawn; returns the files written."""
    written = []
    for figure in appendix_figures(scores, paper_scores=study_paper_scores()):
        if figure.make is None:
            logger.info("appendix figure %s not drawn: %s", figure.stem, figure.reason)
            continue
        written.extend(style.savefig(figure.make(), Path(out_dir) / figure.stem))
    return written


def appendix_caption(stem: str) -> str | None:
    """The caption of an appendix figure from its file stem; None for any other stem."""
    for key in sorted(CAPTIONS, key=len, reverse=True):
        if stem == key or stem.startswith(key + "_"):
            rest = stem[len(key) + 1:]
            return CAPTIONS[key].format(dataset=rest, definition=_depth_definition(rest))
    return None


def _depth_definition(depth: str) -> str:
    """How the depth figure's ``depth`` (:data:`workbench.analysis.appendix.DEPTHS`) is defined, for its caption."""
    return "the study's depth of the layer in its network" if depth == "study" else "layer index / (n - 1)"
