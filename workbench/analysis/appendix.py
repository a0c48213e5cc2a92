"""The analyses of the study's appendix, from a run's scores alone (``scores.nc``).

Every function takes the scores Dataset (:func:`~workbench.analysis.load_scores`) and returns
tidy :class:`pandas.DataFrame` tables. A model's score on a dataset is the mean over the
dataset's applicable regions of each region's best-layer score
(:func:`~workbench.analysis.dataset_scores`), the quantity the appendix plots. Where a
statistic cannot be computed it is NaN and a ``reason`` column says why.

- :func:`family_summary`, :func:`family_tests`: family means per dataset and metric with
  t-intervals across models; Kruskal-Wallis H across all families and two-sided Mann-Whitney U
  between each pair of families (p-values uncorrected).
- :func:`model_ranking`: the models ranked per dataset and metric (appendix Figs 2-4, 7-9).
- :func:`paired_gain`: depth-matched SEW-ResNet vs ResNet relative gain with a t-interval,
  a sign test and a Wilcoxon signed-rank test (the paper: mean +6.6 %, 42 of 45 positive).
- :func:`best_layer_depths`, :func:`depth_by_region`, :func:`depth_by_species`: best-layer depth
  on the study's depth definition (or the layer index) per region, and mouse regions against
  macaque regions.
- :func:`metric_rank_agreement`: Spearman or Kendall correlation between metrics' model
  rankings per dataset (appendix Fig 5).
- :func:`score_regression`: score against a model property (log10 parameters as in appendix
  Figs 10-12, GFLOPS, ImageNet top-1 as in Fig 13) with R^2 and p (:func:`scipy.stats.linregress`).
- :func:`branch_comparison`: multi-branch against single-branch networks on the mouse regions.
- :func:`compare_with_paper`: the run's scores against the paper's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
import scipy.stats
import xarray as xr

from workbench.analysis.statistics import (
    mean_over_applicable,
    best_layer,
    dataset_scores,
    paired_comparison,
    t_interval,
)
from workbench.dims import DATASET, METRIC, MODEL, REGION, SPECIES
from workbench.errors import ValidationError

#: Fewest models with a finite score in each family a family test compares.
MIN_GROUP_MODELS = 2
#: Fewest models scored by both metrics for a rank correlation between them.
MIN_RANK_MODELS = 5
#: Fewest models with a finite score and property for a regression.
MIN_REGRESSION_MODELS = 3
#: The species whose regions :func:`depth_by_species` compares.
COMPARED_SPECIES = ("mouse", "macaque")
DEPTHS = ("study", "index")


def dataset_table(scores: xr.Dataset) -> pd.DataFrame:
    """Columns model, family, dataset, metric, score: each model's score per dataset and metric
    (:func:`~workbench.analysis.dataset_scores`); NaN where a model has none. (dataset, metric)
    pairs where no model has a score (the metric does not apply, or was not run) are left out."""
    per = dataset_scores(scores)
    frame = per.drop_vars([c for c in per.coords if c not in per.dims]).to_dataframe().reset_index()
    families = dict(zip(scores[MODEL].values.tolist(), scores["family"].values.tolist()))
    frame.insert(1, "family", frame[MODEL].map(families))
    frame = frame.rename(columns={"dataset_score": "score"})[[MODEL, "family", DATASET, METRIC, "score"]]
    scored = frame.groupby([DATASET, METRIC], sort=False)["score"].transform(lambda s: np.isfinite(s).any())
    return frame[scored.astype(bool)].reset_index(drop=True)


def family_summary(scores: xr.Dataset, *, level: float = 0.95) -> pd.DataFrame:
    """Mean model score per (dataset, metric, family) with a t-interval across the family's models.

    Returns
    -------
    DataFrame
        Columns dataset, metric, family, mean, ci_low, ci_high (NaN for fewer than two
        models), n_models (models with a finite score).
    """
    rows = []
    for (dataset, metric, family), group in dataset_table(scores).groupby([DATASET, METRIC, "family"], sort=False):
        mean, low, high, n = t_interval(group["score"].to_numpy(), level)
        rows.append((dataset, metric, family, mean, low, high, n))
    return pd.DataFrame(rows, columns=[DATASET, METRIC, "family", "mean", "ci_low", "ci_high", "n_models"])


def family_tests(scores: xr.Dataset) -> pd.DataFrame:
    """Tests between families per (dataset, metric), on the models' scores.

    ``"Kruskal-Wallis H"`` (:func:`scipy.stats.kruskal`) across every family with at least
    :data:`MIN_GROUP_MODELS` scored models, and a two-sided ``"Mann-Whitney U"``
    (:func:`scipy.stats.mannwhitneyu`) for each pair of families; p-values are not corrected
    for the number of tests.

    Returns
    -------
    DataFrame
        Columns dataset, metric, test, groups (``"snn|cnn|vit"`` or ``"snn vs cnn"``),
        statistic, p_value, n_models and reason (why the test is NaN; ``""`` otherwise).
    """
    rows = []
    for (dataset, metric), cell in dataset_table(scores).groupby([DATASET, METRIC], sort=False):
        groups = {f: g["score"].to_numpy() for f, g in cell.groupby("family", sort=False)}
        groups = {f: v[np.isfinite(v)] for f, v in groups.items()}
        tested = {f: v for f, v in groups.items() if v.size >= MIN_GROUP_MODELS}
        small = sorted(set(groups) - set(tested))
        reason = "" if len(tested) >= 2 else (
            f"fewer than 2 families with >= {MIN_GROUP_MODELS} scored models (too few: {', '.join(small) or 'none'})")
        rows.append((dataset, metric, "Kruskal-Wallis H", "|".join(tested or groups),
                     *_test(scipy.stats.kruskal, list(tested.values()), reason)))
        for a, b in combinations(groups, 2):
            few = [f for f in (a, b) if f not in tested]
            why = f"fewer than {MIN_GROUP_MODELS} scored models in {', '.join(few)}" if few else ""
            rows.append((dataset, metric, "Mann-Whitney U", f"{a} vs {b}",
                         *_test(scipy.stats.mannwhitneyu, [groups[a], groups[b]], why)))
    return pd.DataFrame(rows, columns=[DATASET, METRIC, "test", "groups", "statistic", "p_value", "n_models",
                                       "reason"])


def _test(test, groups: list[np.ndarray], reason: str) -> tuple[float, float, int, str]:
    """(statistic, p, n, reason) of ``test(*groups)``; NaN with ``reason`` when it is set or
    the test cannot run (every score equal)."""
    n = int(sum(g.size for g in groups))
    if reason:
        return np.nan, np.nan, n, reason
    if np.unique(np.concatenate(groups)).size < 2:
        return np.nan, np.nan, n, "every score is equal"
    result = test(*groups)
    return float(result.statistic), float(result.pvalue), n, ""


def model_ranking(scores: xr.Dataset) -> pd.DataFrame:
    """The models ranked per (dataset, metric): rank 1 is the highest score.

    Returns
    -------
    DataFrame
        Columns dataset, metric, rank (ties share the lowest rank), model, family, score;
        models without a finite score are left out. Sorted by dataset, metric and rank.
    """
    table = dataset_table(scores)
    table = table[np.isfinite(table["score"])].copy()
    table["rank"] = table.groupby([DATASET, METRIC], sort=False)["score"].rank(ascending=False, method="min")
    table["rank"] = table["rank"].astype(int)
    table = table.sort_values([DATASET, METRIC, "rank", MODEL], kind="stable")
    return table[[DATASET, METRIC, "rank", MODEL, "family", "score"]].reset_index(drop=True)


@dataclass(frozen=True)
class PairedGain:
    """The depth-matched comparison of :func:`paired_gain`.

    Attributes
    ----------
    cells : DataFrame
        One row per finite (pair, dataset, metric): model, baseline, dataset, metric,
        model_score, baseline_score, relative_gain (``(model - baseline) / baseline``).
    mean, ci_low, ci_high : float
        Mean relative gain over the cells and its t-interval across cells (NaN below 2 cells).
    n_positive, n_cells : int
        Cells with a positive gain, and all cells.
    sign_test_p : float
        Two-sided exact binomial test (:func:`scipy.stats.binomtest`, p = 0.5) of the number
        of positive gains among the non-zero ones.
    wilcoxon_p : float
        Two-sided Wilcoxon signed-rank test of model against baseline scores
        (:func:`~workbench.analysis.paired_comparison`).
    level : float
        The interval's confidence level.
    """

    cells: pd.DataFrame
    mean: float
    ci_low: float
    ci_high: float
    n_positive: int
    n_cells: int
    sign_test_p: float
    wilcoxon_p: float
    level: float


def paired_gain(scores: xr.Dataset, pairs: Mapping[str, str] | None = None, *, level: float = 0.95) -> PairedGain:
    """Relative gain of each model over its depth-matched baseline, over every pair present.

    Parameters
    ----------
    scores : Dataset
    pairs : mapping of str to str, optional
        Model to baseline; default every ``sew_resnet<d>`` with ``resnet<d>`` in the scores
        (:func:`~workbench.analysis.sew_resnet_pairs`).
    level : float, default: 0.95

    Raises
    ------
    ValidationError
        No pair is present (see :func:`~workbench.analysis.paired_comparison`).
    """
    compared = paired_comparison(scores, pairs, level=level)
    frame = compared[["model_score", "baseline_score", "relative_gain"]].to_dataframe().reset_index()
    frame = frame.rename(columns={"pair": MODEL})[[MODEL, "baseline", DATASET, METRIC, "model_score",
                                                    "baseline_score", "relative_gain"]]
    frame = frame[np.isfinite(frame[["model_score", "baseline_score", "relative_gain"]]).all(axis=1)]
    gains = frame["relative_gain"].to_numpy()
    positive, nonzero = int((gains > 0).sum()), int((gains != 0).sum())
    sign_p = float(scipy.stats.binomtest(positive, nonzero, 0.5).pvalue) if nonzero else np.nan
    return PairedGain(frame.reset_index(drop=True), float(compared["mean_relative_gain"]),
                      float(compared["ci_low"]), float(compared["ci_high"]), positive, int(gains.size),
                      sign_p, float(compared["p_value"]), level)


def study_relative_depth(model: str, relative_depth: float) -> float:
    """The study's depth of a layer of a study network, from 0 (its first layer) to 1 (its last).

    The layer is found by its position among the network's study layers (``relative_depth``
    = index / (n - 1), as the scores record it); its depth is the 4th field of the study's
    layer list (:attr:`~workbench.models.StudyLayer.depth`), scaled as
    ``(depth - first) / (last - first)`` over the network's study layers. NaN for a network
    that is not one of the study's, or a position that falls between its study layers.
    """
    from workbench.models.study_layers import study_layers, study_models

    if model not in study_models() or not np.isfinite(relative_depth):
        return np.nan
    depths = [layer.depth for layer in study_layers(model)]
    position = relative_depth * (len(depths) - 1)
    index = int(round(position))
    if abs(position - index) > 1e-6 or not 0 <= index < len(depths) or depths[-1] == depths[0]:
        return np.nan
    return (depths[index] - depths[0]) / (depths[-1] - depths[0])


def best_layer_depths(scores: xr.Dataset, *, depth: str = "study") -> pd.DataFrame:
    """Depth of each model's best layer per (region, metric).

    Parameters
    ----------
    scores : Dataset
    depth : {"study", "index"}, default: "study"
        ``"study"``: the study's depth of the layer in the network (:func:`study_relative_depth`;
        NaN for networks that are not the study's); ``"index"``: the layer's index / (n - 1)
        among the model's analysis layers.

    Returns
    -------
    DataFrame
        Columns model, family, dataset, region, species, metric, layer_name, depth; one row
        per (model, region, metric) with a best layer.
    """
    if depth not in DEPTHS:
        raise ValidationError(f"depth={depth!r} is not valid; expected one of {list(DEPTHS)}")
    best = best_layer(scores)
    frame = best[["layer_name", "relative_depth"]].to_dataframe().reset_index()
    frame = frame[frame["layer_name"] != ""].copy()
    if depth == "study":
        frame["relative_depth"] = [study_relative_depth(m, d) for m, d in zip(frame[MODEL], frame["relative_depth"])]
    regions = scores[REGION].to_index()
    frame[DATASET] = frame[REGION].map(dict(zip(regions, scores[DATASET].values)))
    frame[SPECIES] = frame[REGION].map(dict(zip(regions, scores[SPECIES].values)))
    frame = frame.rename(columns={"relative_depth": "depth"})
    return frame[[MODEL, "family", DATASET, REGION, SPECIES, METRIC, "layer_name", "depth"]].reset_index(drop=True)


def depth_by_region(depths: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """Mean best-layer depth per (species, region, metric) with a t-interval across models.

    Parameters
    ----------
    depths : DataFrame
        :func:`best_layer_depths`.
    level : float, default: 0.95

    Returns
    -------
    DataFrame
        Columns species, region, metric, mean, ci_low, ci_high, n_models (models with a finite
        depth), mouse regions first, then macaque regions, then the others, each in the scores'
        order.
    """
    rows = []
    for (species, region, metric), group in depths.groupby([SPECIES, REGION, METRIC], sort=False):
        rows.append((species, region, metric, *t_interval(group["depth"].to_numpy(), level)))
    frame = pd.DataFrame(rows, columns=[SPECIES, REGION, METRIC, "mean", "ci_low", "ci_high", "n_models"])
    order = {s: i for i, s in enumerate(COMPARED_SPECIES)}
    return frame.sort_values(SPECIES, key=lambda s: s.map(lambda v: order.get(v, len(order))),
                             kind="stable").reset_index(drop=True)


def depth_by_species(depths: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """Best-layer depth on mouse regions against macaque regions, per metric.

    A model's depth on a species is the mean of its best-layer depths over that species'
    regions (regions of other species, e.g. human IT, are left out). Parameters as
    :func:`depth_by_region`.

    Returns
    -------
    DataFrame
        One row per metric: for each species ``<species>_mean``, ``<species>_ci_low``,
        ``<species>_ci_high`` (t-interval across models), ``<species>_n_models``; and
        ``wilcoxon_p``, the two-sided Wilcoxon signed-rank test of each model's mouse depth
        against its macaque depth (``n_paired`` models have both; NaN with ``reason`` below 2
        or when every difference is 0).
    """
    rows = []
    kept = depths[depths[SPECIES].isin(COMPARED_SPECIES) & np.isfinite(depths["depth"])]
    for metric in dict.fromkeys(depths[METRIC]):
        per_model = kept[kept[METRIC] == metric].groupby([MODEL, SPECIES])["depth"].mean().unstack(SPECIES)
        per_model = per_model.reindex(columns=list(COMPARED_SPECIES))
        row = {METRIC: metric}
        for species in COMPARED_SPECIES:
            mean, low, high, n = t_interval(per_model[species].to_numpy(), level)
            row.update({f"{species}_mean": mean, f"{species}_ci_low": low, f"{species}_ci_high": high,
                        f"{species}_n_models": n})
        paired = per_model.dropna()
        difference = (paired[COMPARED_SPECIES[0]] - paired[COMPARED_SPECIES[1]]).to_numpy()
        row["n_paired"], row["wilcoxon_p"], row["reason"] = len(paired), np.nan, ""
        if len(paired) < 2:
            row["reason"] = f"{len(paired)} model(s) with best layers on both mouse and macaque regions; 2 needed"
        elif not difference.any():
            row["reason"] = "every model's mouse and macaque depths are equal"
        else:
            row["wilcoxon_p"] = float(scipy.stats.wilcoxon(difference).pvalue)
        rows.append(row)
    return pd.DataFrame(rows)


def metric_rank_agreement(scores: xr.Dataset, *, method: str = "spearman",
                          min_models: int = MIN_RANK_MODELS) -> pd.DataFrame:
    """Correlation between two metrics' rankings of the models, per dataset (appendix Fig 5).

    Parameters
    ----------
    scores : Dataset
    method : {"spearman", "kendall"}, default: "spearman"
    min_models : int, default: 5
        Fewest models scored by both metrics on the dataset; below it the correlation is NaN
        and ``reason`` says how many there were.

    Returns
    -------
    DataFrame
        Columns dataset, metric, other_metric (each pair of metrics scored on the dataset once,
        in the scores' metric order), rho, p_value, n_models, reason.
    """
    tests = {"spearman": scipy.stats.spearmanr, "kendall": scipy.stats.kendalltau}
    if method not in tests:
        raise ValidationError(f"method={method!r} is not valid; expected one of {sorted(tests)}")
    table = dataset_table(scores)
    rows = []
    for dataset, cell in table.groupby(DATASET, sort=False):
        values = cell.pivot(index=MODEL, columns=METRIC, values="score")
        for a, b in combinations(list(dict.fromkeys(cell[METRIC])), 2):
            x, y = values[a].to_numpy(), values[b].to_numpy()
            both = np.isfinite(x) & np.isfinite(y)
            n, rho, p, reason = int(both.sum()), np.nan, np.nan, ""
            if n < min_models:
                reason = f"{n} model(s) scored by both metrics; a rank correlation here needs >= {min_models}"
            else:
                result = tests[method](x[both], y[both])
                rho, p = float(result.statistic), float(result.pvalue)
            rows.append((dataset, a, b, rho, p, n, reason))
    return pd.DataFrame(rows, columns=[DATASET, METRIC, "other_metric", "rho", "p_value", "n_models", "reason"])


def score_regression(scores: xr.Dataset, predictor: Mapping[str, float], *, log10: bool = False,
                     min_models: int = MIN_REGRESSION_MODELS) -> pd.DataFrame:
    """Least-squares line of the models' scores on a model property, per (dataset, metric).

    Parameters
    ----------
    scores : Dataset
    predictor : mapping of str to float
        The property per model name (e.g. parameters, top-1 in percent); missing or NaN
        models are left out.
    log10 : bool, default: False
        Regress on ``log10(predictor)`` (the appendix regresses on log10 parameters).
    min_models : int, default: 3

    Returns
    -------
    DataFrame
        Columns dataset, metric, slope, intercept, r2, p_value (two-sided, slope = 0), n_models
        and reason (why the line is NaN: too few models, or a constant predictor).
    """
    table = dataset_table(scores)
    x = table[MODEL].map(lambda m: float(predictor.get(m, np.nan))).to_numpy(dtype=float)
    if log10:
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(x > 0, np.log10(x), np.nan)
    table = table.assign(x=x)
    rows = []
    for (dataset, metric), cell in table.groupby([DATASET, METRIC], sort=False):
        cell = cell[np.isfinite(cell["x"]) & np.isfinite(cell["score"])]
        line, reason = (np.nan,) * 4, ""
        if len(cell) < min_models:
            reason = f"{len(cell)} model(s) with a score and the property; a regression needs >= {min_models}"
        elif cell["x"].nunique() < 2:
            reason = "every model has the same value of the property"
        else:
            fit = scipy.stats.linregress(cell["x"], cell["score"])
            line = (fit.slope, fit.intercept, fit.rvalue ** 2, fit.pvalue)
        rows.append((dataset, metric, *map(float, line), len(cell), reason))
    return pd.DataFrame(rows, columns=[DATASET, METRIC, "slope", "intercept", "r2", "p_value", "n_models",
                                       "reason"])


def species_scores(scores: xr.Dataset, species: str) -> pd.DataFrame:
    """Columns model, family, metric, score: the mean over ``species``' applicable regions of
    each model's best-layer scores (NaN where a model lacks one or the species has no region)."""
    regions = scores[REGION].values[scores[SPECIES].values == species]
    per = mean_over_applicable(best_layer(scores)["score"], scores["applicable"], regions)
    frame = per.rename("score").drop_vars([c for c in per.coords if c not in per.dims]).to_dataframe()
    frame = frame.reset_index()
    families = dict(zip(scores[MODEL].values.tolist(), scores["family"].values.tolist()))
    frame.insert(1, "family", frame[MODEL].map(families))
    return frame[[MODEL, "family", METRIC, "score"]]


def branch_comparison(scores: xr.Dataset, branches: Mapping[str, str], *, species: str = "mouse") -> pd.DataFrame:
    """Multi-branch against single-branch networks on one species' regions, per metric.

    Parameters
    ----------
    scores : Dataset
    branches : mapping of str to str
        ``"multi"`` or ``"single"`` per model (:func:`workbench.models.model_metadata`);
        models absent from it are left out.
    species : str, default: "mouse"

    Returns
    -------
    DataFrame
        One row per metric: multi_mean, single_mean, multi_n, single_n, statistic and p_value
        of a two-sided Mann-Whitney U test (NaN with ``reason`` when a group has fewer than
        :data:`MIN_GROUP_MODELS` scored models).
    """
    table = species_scores(scores, species)
    table = table.assign(branches=table[MODEL].map(lambda m: branches.get(m, ""))).dropna(subset=["score"])
    rows = []
    for metric in dict.fromkeys(table[METRIC]):
        cell = table[table[METRIC] == metric]
        groups = {kind: cell.loc[cell["branches"] == kind, "score"].to_numpy() for kind in ("multi", "single")}
        few = [kind for kind, values in groups.items() if values.size < MIN_GROUP_MODELS]
        reason = f"fewer than {MIN_GROUP_MODELS} {' and '.join(few)}-branch models scored on {species} regions" \
            if few else ""
        statistic, p, _, reason = _test(scipy.stats.mannwhitneyu, list(groups.values()), reason)
        rows.append({METRIC: metric, **{f"{k}_mean": v.mean() if v.size else np.nan for k, v in groups.items()},
                     **{f"{k}_n": v.size for k, v in groups.items()}, "statistic": statistic, "p_value": p,
                     "reason": reason})
    return pd.DataFrame(rows, columns=[METRIC, "multi_mean", "single_mean", "multi_n", "single_n", "statistic",
                                       "p_value", "reason"])


@dataclass(frozen=True)
class PaperComparison:
    """The run's scores beside the paper's (:func:`compare_with_paper`).

    Attributes
    ----------
    pairs : DataFrame
        Columns model, dataset, metric, run, paper, difference (run - paper): every (model,
        dataset, metric) that both have a score for.
    summary : DataFrame
        Per (dataset, metric) of ``pairs``: n_models, pearson_r, p_value (NaN below 3 models),
        mean_abs_difference and most_different (the models with the largest absolute
        differences, ``"name (+0.123)"``, largest first).
    missing : list of str
        Models the paper scores that the run has no score for, in the paper's order.
    """

    pairs: pd.DataFrame
    summary: pd.DataFrame
    missing: list


def compare_with_paper(run_scores: pd.DataFrame, paper_scores: pd.DataFrame, *, top: int = 3) -> PaperComparison:
    """Compare a run's per-model scores with the paper's, per dataset and metric.

    Parameters
    ----------
    run_scores, paper_scores : DataFrame
        Columns model, dataset, metric, score, under the same names (the run's:
        :func:`dataset_table`; the paper's: :func:`workbench.studies.load_paper_scores`).
    top : int, default: 3
        How many of the most different models each summary row names.
    """
    columns = [MODEL, DATASET, METRIC, "score"]
    for name, frame in (("run_scores", run_scores), ("paper_scores", paper_scores)):
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise ValidationError(f"{name} has no column {absent[0]!r}; expected columns {columns}")
    run = run_scores[columns][np.isfinite(run_scores["score"])]
    paper = paper_scores[columns][np.isfinite(paper_scores["score"])]
    pairs = run.merge(paper, on=[MODEL, DATASET, METRIC], suffixes=("_run", "_paper"))
    pairs = pairs.rename(columns={"score_run": "run", "score_paper": "paper"})
    pairs["difference"] = pairs["run"] - pairs["paper"]
    rows = []
    for (dataset, metric), cell in pairs.groupby([DATASET, METRIC], sort=False):
        r, p = np.nan, np.nan
        if len(cell) >= 3 and cell["run"].nunique() > 1 and cell["paper"].nunique() > 1:
            r, p = scipy.stats.pearsonr(cell["run"], cell["paper"])
        order = cell["difference"].abs().sort_values(ascending=False, kind="stable").index[:top]
        named = ", ".join(f"{cell.at[i, MODEL]} ({cell.at[i, 'difference']:+.3f})" for i in order)
        rows.append((dataset, metric, len(cell), float(r), float(p), float(cell["difference"].abs().mean()), named))
    summary = pd.DataFrame(rows, columns=[DATASET, METRIC, "n_models", "pearson_r", "p_value",
                                          "mean_abs_difference", "most_different"])
    missing = [m for m in dict.fromkeys(paper[MODEL]) if m not in set(run[MODEL])]
    return PaperComparison(pairs.reset_index(drop=True), summary, missing)
