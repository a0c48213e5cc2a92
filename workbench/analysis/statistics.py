"""The study's statistics, computed from a scores Dataset alone.

Every function takes the Dataset a sweep returns (or :func:`~workbench.analysis.load_scores`
reads back), so figures and tables can be regenerated without recomputing anything.

- :func:`best_layer`: best layer per (model, region, metric) by argmax, as the study does, and
  its relative depth. The same scores select and report the layer, so best-layer scores are
  optimistic by construction (the study's choice, kept for comparability).
- :func:`model_scores`: mean over applicable regions of the best-layer scores;
  :func:`dataset_scores`: the same mean within each dataset.
- :func:`family_means`: mean model score per family with a t confidence interval across models.
- :func:`normalize_by_ceiling`: scores divided by the noise ceiling where one exists.
- :func:`rank_agreement`: Spearman correlation between metrics of the models' scores.
- :func:`paired_comparison`: each SEW-ResNet-d against ResNet-d (the study's headline).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import scipy.stats
import xarray as xr

from workbench.analysis.scores import validate_scores
from workbench.dims import DATASET, LAYER, METRIC, MODEL, REGION
from workbench.errors import ValidationError

#: Default pairing of spiking with non-spiking models: ``sew_resnet<d>`` with ``resnet<d>``.
SEW_PATTERN = re.compile(r"^sew_resnet(\d+)$")
OTHER_METRIC = "other_metric"
FAMILY = "family"
PAIR = "pair"


def best_layer(scores: xr.Dataset, *, var: str = "score") -> xr.Dataset:
    """Best layer of each (model, region, metric): the argmax of ``scores[var]`` over layers.

    Returns
    -------
    Dataset with dims (model, region, metric)
        ``score`` (the maximum), ``layer`` (its position; -1 where no layer has a score),
        ``layer_name`` (``""`` there), ``relative_depth`` (NaN there), ``n_layers_scored``
        (how many of the model's layers had a score, i.e. over how many the maximum was
        taken), ``n_layers`` (dims (model,): the model's layers) and, when ``scores`` has
        bootstrap intervals, the best layer's ``ci_low`` and ``ci_high``; when it has
        permutation nulls, the best layer's ``null_mean``, ``null_p95`` and ``p_value`` (that
        cell's own: not corrected for choosing the best of several layers).
    """
    validate_scores(scores)
    values = scores[var].transpose(MODEL, LAYER, REGION, METRIC).values
    if values.shape[1] == 0:
        raise ValidationError("scores has no layers; no best layer can be chosen")
    has_score = ~np.isnan(values).all(axis=1)
    layer = np.where(has_score, np.nanargmax(np.where(np.isnan(values), -np.inf, values), axis=1), -1)
    best = np.where(has_score, np.take_along_axis(np.nan_to_num(values, nan=-np.inf), layer.clip(0)[:, None], 1)[:, 0], np.nan)
    model_index = np.arange(values.shape[0])[:, None, None]
    names = scores["layer_name"].values[model_index, layer.clip(0)]
    depth = scores["relative_depth"].values[model_index, layer.clip(0)]
    dims = (MODEL, REGION, METRIC)
    coords = {name: coord for name, coord in scores.coords.items() if LAYER not in coord.dims}
    coords = {name: coord for name, coord in coords.items() if "time_step" not in coord.dims}
    exists = np.asarray(scores["layer_name"].transpose(MODEL, LAYER).values != "", dtype=bool)
    out = {
        "score": (dims, best),
        LAYER: (dims, layer),
        "layer_name": (dims, np.where(has_score, names, "")),
        "relative_depth": (dims, np.where(has_score, depth, np.nan)),
        "n_layers_scored": (dims, (~np.isnan(values) & exists[:, :, None, None]).sum(axis=1)),
        "n_layers": ((MODEL,), exists.sum(axis=1)),
    }
    for bound in ("ci_low", "ci_high", "null_mean", "null_p95", "p_value"):
        if bound in scores:
            values = scores[bound].transpose(MODEL, LAYER, REGION, METRIC).values
            taken = np.take_along_axis(values, layer.clip(0)[:, None], 1)[:, 0]
            out[bound] = (dims, np.where(has_score, taken, np.nan))
    return xr.Dataset(out, coords=coords)


def mean_over_applicable(best: xr.DataArray, applicable: xr.DataArray, regions) -> xr.DataArray:
    """Mean over ``regions`` where applicable; NaN if any applicable region is NaN or none is."""
    best = best.sel({REGION: regions})
    applicable = applicable.sel({REGION: regions})
    total = best.where(applicable, 0.0).sum(REGION, skipna=False)
    count = applicable.sum(REGION)
    return (total / count).where(count > 0)


def model_scores(scores: xr.Dataset) -> xr.DataArray:
    """Model score per (model, metric): mean over applicable regions of the best-layer scores.

    A model whose best-layer score is NaN in any applicable region (it failed, or a score is
    missing) gets NaN, never a mean over fewer regions.
    """
    best = best_layer(scores)["score"]
    out = mean_over_applicable(best, scores["applicable"], scores[REGION].values)
    return out.rename("model_score")


def dataset_scores(scores: xr.Dataset) -> xr.DataArray:
    """Per (model, dataset, metric): mean over the dataset's applicable regions of best-layer scores."""
    best = best_layer(scores)["score"]
    datasets = list(dict.fromkeys(scores[DATASET].values.tolist()))
    parts = [
        mean_over_applicable(best, scores["applicable"], scores[REGION].values[scores[DATASET].values == d])
        for d in datasets
    ]
    return xr.concat(parts, dim=xr.DataArray(datasets, dims=DATASET, name=DATASET)).transpose(
        MODEL, DATASET, METRIC
    ).rename("dataset_score")


def t_interval(values, level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean and two-sided t confidence interval of the finite ``values``.

    Returns ``(mean, low, high, n)``; the interval is NaN when fewer than two values are finite.
    """
    if not 0 < level < 1:
        raise ValidationError(f"level must lie in (0, 1), found {level}")
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = values.size
    if n == 0:
        return np.nan, np.nan, np.nan, 0
    mean = float(values.mean())
    if n < 2:
        return mean, np.nan, np.nan, 1
    half = scipy.stats.t.ppf((1 + level) / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half, n


def family_means(scores: xr.Dataset, *, level: float = 0.95) -> xr.Dataset:
    """Mean model score per (family, metric) with a t confidence interval across models.

    Models whose model score is NaN (e.g. they failed; see ``scores["error"]``) are left out
    and counted out of ``n_models``.

    Returns
    -------
    Dataset with dims (family, metric)
        ``mean``, ``ci_low``, ``ci_high`` (NaN with fewer than two models) and ``n_models``.
    """
    per_model = model_scores(scores)
    families = list(dict.fromkeys(scores["family"].values.tolist()))
    metrics = per_model[METRIC].values
    out = np.full((4, len(families), len(metrics)), np.nan)
    for i, family in enumerate(families):
        members = per_model.isel({MODEL: scores["family"].values == family})
        for k, metric in enumerate(metrics):
            out[:, i, k] = t_interval(members.sel({METRIC: metric}).values, level)
    dims = (FAMILY, METRIC)
    return xr.Dataset(
        {
            "mean": (dims, out[0]),
            "ci_low": (dims, out[1]),
            "ci_high": (dims, out[2]),
            "n_models": (dims, out[3].astype(int)),
        },
        coords={FAMILY: families, METRIC: metrics},
        attrs={"ci_level": level},
    )


def normalize_by_ceiling(scores: xr.Dataset) -> xr.Dataset:
    """Scores divided by the noise ceiling of their (region, metric); NaN where there is none.

    ``score``, ``ci_low``, ``ci_high``, ``score_per_step`` and the chance level (``null_mean``,
    ``null_p95``) are divided; the raw ceiling stays
    in ``ceiling``, and ``attrs["normalized"]`` is set to ``"ceiling"``. All other statistics
    accept the result.
    """
    validate_scores(scores)
    if scores.attrs.get("normalized") == "ceiling":
        raise ValidationError("scores are already normalised by the ceiling (attrs['normalized'])")
    ceiling = scores["ceiling"]
    bad = ceiling.notnull() & ~(ceiling > 0)
    if bool(bad.any()):
        raise ValidationError(
            f"ceiling holds {int(bad.sum())} value(s) <= 0; a noise ceiling must be positive"
        )
    out = scores.copy()
    for var in ("score", "ci_low", "ci_high", "score_per_step", "null_mean", "null_p95"):
        if var in out:
            out[var] = scores[var] / ceiling
    out.attrs["normalized"] = "ceiling"
    return out


def _spearman_matrix(values: np.ndarray, min_models: int = 3) -> np.ndarray:
    """Spearman rho, p-value and n between the columns of ``values`` (models x metrics)."""
    n_metrics = values.shape[1]
    out = np.full((3, n_metrics, n_metrics), np.nan)
    for a in range(n_metrics):
        for b in range(n_metrics):
            both = np.isfinite(values[:, a]) & np.isfinite(values[:, b])
            out[2, a, b] = both.sum()
            if both.sum() >= min_models:
                result = scipy.stats.spearmanr(values[both, a], values[both, b])
                out[0, a, b], out[1, a, b] = result.statistic, result.pvalue
    return out


def rank_agreement(scores: xr.Dataset, *, per_dataset: bool = False) -> xr.Dataset:
    """Spearman correlation between metrics of the models' scores (the study's appendix).

    Parameters
    ----------
    scores : Dataset
    per_dataset : bool, default: False
        False: correlate model scores (:func:`model_scores`). True: correlate each dataset's
        scores (:func:`dataset_scores`), adding a ``dataset`` dim.

    Returns
    -------
    Dataset with dims ([dataset,] metric, other_metric)
        ``rho``, ``p_value`` and ``n_models`` (models finite for both metrics); rho is NaN with
        fewer than three such models.
    """
    metrics = scores[METRIC].values
    coords = {METRIC: metrics, OTHER_METRIC: metrics}
    dims = (METRIC, OTHER_METRIC)
    if per_dataset:
        per = dataset_scores(scores)
        stacked = np.stack([_spearman_matrix(per.sel({DATASET: d}).values) for d in per[DATASET].values], 1)
        dims = (DATASET,) + dims
        coords[DATASET] = per[DATASET].values
    else:
        stacked = _spearman_matrix(model_scores(scores).transpose(MODEL, METRIC).values)
    return xr.Dataset(
        {"rho": (dims, stacked[0]), "p_value": (dims, stacked[1]), "n_models": (dims, stacked[2].astype(int))},
        coords=coords,
    )


def sew_resnet_pairs(models) -> dict[str, str]:
    """Default pairs among ``models``: each ``sew_resnet<d>`` with ``resnet<d>`` when both exist."""
    models = list(models)
    pairs = {}
    for name in models:
        match = SEW_PATTERN.match(name)
        if match and f"resnet{match.group(1)}" in models:
            pairs[name] = f"resnet{match.group(1)}"
    return pairs


def paired_comparison(scores: xr.Dataset, pairs: Mapping[str, str] | None = None, *,
                      level: float = 0.95) -> xr.Dataset:
    """Compare paired models per (dataset, metric): the study's SEW-ResNet vs ResNet headline.

    For each pair, dataset and metric, both models' dataset scores (:func:`dataset_scores`)
    give ``relative_gain = (model - baseline) / baseline``. The summary averages the gains of
    every finite (pair, dataset, metric) cell; not-applicable cells are NaN and left out.

    Parameters
    ----------
    scores : Dataset
    pairs : mapping of str to str, optional
        Model name to baseline name; default :func:`sew_resnet_pairs` of the scores' models.
    level : float, default: 0.95
        Level of the t interval of the mean relative gain.

    Returns
    -------
    Dataset
        ``model_score``, ``baseline_score`` and ``relative_gain`` with dims (pair, dataset,
        metric), the pair labelled by the model's name with coord ``baseline``; scalars
        ``mean_relative_gain``, ``ci_low``, ``ci_high``, ``n_pairs`` and ``p_value``
        (two-sided Wilcoxon signed-rank test of model vs baseline scores over the same cells;
        NaN with fewer than two cells).
    """
    names = scores[MODEL].values.tolist()
    pairs = dict(sew_resnet_pairs(names) if pairs is None else pairs)
    if not pairs:
        raise ValidationError(
            f"no model pairs to compare: expected models named sew_resnet<d> with resnet<d>, "
            f"or explicit pairs; found models {names}"
        )
    missing = sorted({m for pair in pairs.items() for m in pair} - set(names))
    if missing:
        raise ValidationError(f"paired_comparison: model(s) {missing} are not in scores; found {names}")
    per = dataset_scores(scores)
    model = per.sel({MODEL: list(pairs)}).rename({MODEL: PAIR})
    baseline = per.sel({MODEL: list(pairs.values())}).rename({MODEL: PAIR})
    baseline = baseline.assign_coords({PAIR: list(pairs)})
    model, baseline = model.drop_vars(["family", "weights", "time_steps"], errors="ignore"), baseline.drop_vars(
        ["family", "weights", "time_steps"], errors="ignore")
    gain = (model - baseline) / baseline
    finite = np.isfinite(gain.values) & np.isfinite(model.values) & np.isfinite(baseline.values)
    mean, low, high, n = t_interval(gain.values[finite], level)
    p_value = np.nan
    if n >= 2:
        p_value = float(scipy.stats.wilcoxon(model.values[finite], baseline.values[finite]).pvalue)
    return xr.Dataset(
        {
            "model_score": model,
            "baseline_score": baseline,
            "relative_gain": gain,
            "mean_relative_gain": mean,
            "ci_low": low,
            "ci_high": high,
            "n_pairs": n,
            "p_value": p_value,
        },
        coords={"baseline": (PAIR, list(pairs.values()))},
        attrs={"ci_level": level},
    )
