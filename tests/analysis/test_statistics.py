import numpy as np
import pytest
import scipy.stats
from analysis_factory import make_scores

from workbench.analysis import (
    best_layer,
    dataset_scores,
    family_means,
    model_scores,
    normalize_by_ceiling,
    paired_comparison,
    rank_agreement,
    sew_resnet_pairs,
)
from workbench.errors import ValidationError


@pytest.fixture
def scores():
    return make_scores(seed=3, with_ci=True)


def _direct_best(scores, model, region, metric):
    """Best (score, layer index) by a plain loop over the model's own layers."""
    names = [n for n in scores["layer_name"].sel(model=model).values if n != ""]
    values = [float(scores["score"].sel(model=model, layer=i, region=region, metric=metric)) for i in range(len(names))]
    if all(np.isnan(values)):
        return np.nan, -1, len(names)
    i = int(np.nanargmax(values))
    return values[i], i, len(names)


def test_best_layer_is_argmax_over_the_models_own_layers(scores):
    best = best_layer(scores)
    for model in scores.model.values:
        for region in scores.region.values:
            for metric in scores.metric.values:
                value, index, n_layers = _direct_best(scores, model, region, metric)
                cell = best.sel(model=model, region=region, metric=metric)
                if index < 0:
                    assert np.isnan(cell["score"]) and int(cell["layer"]) == -1
                    assert cell["layer_name"].item() == "" and np.isnan(cell["relative_depth"])
                    continue
                assert float(cell["score"]) == value
                assert float(cell["ci_low"]) == float(scores["ci_low"].sel(model=model, layer=index, region=region, metric=metric))
                assert int(cell["layer"]) == index
                assert cell["layer_name"].item() == f"layer{index}"
                assert float(cell["relative_depth"]) == pytest.approx(index / (n_layers - 1))


def test_best_layer_counts_the_layers_it_was_taken_over(scores):
    scores["score"].loc[dict(model="resnet34", layer=[1, 4], region="toy_mouse/VISp", metric="rsa")] = np.nan
    best = best_layer(scores)
    cell = best.sel(model="resnet34", region="toy_mouse/VISp", metric="rsa")
    assert int(cell["n_layers_scored"]) == 4 and int(best["n_layers"].sel(model="resnet34")) == 6
    # padding past a model's last layer never counts; not-applicable cells count none
    assert int(best["n_layers"].sel(model="alexnet")) == 3
    assert int(best["n_layers_scored"].sel(model="alexnet", region="toy_mouse/VISp", metric="rsa")) == 3
    assert int(best["n_layers_scored"].sel(model="alexnet", region="kriegeskorte2008_92/IT (human)", metric="cka")) == 0
    for model in scores.model.values:
        expected = int((scores["layer_name"].sel(model=model) != "").sum())
        assert int(best["n_layers"].sel(model=model)) == expected


def test_best_layer_ignores_nan_layers_even_when_all_scores_are_negative(scores):
    scores["score"].loc[dict(model="alexnet", region="cowley2023_v4/V4", metric="cka")] = [-0.5, np.nan, -0.2] + [np.nan] * 4
    cell = best_layer(scores).sel(model="alexnet", region="cowley2023_v4/V4", metric="cka")
    assert float(cell["score"]) == -0.2 and int(cell["layer"]) == 2 and float(cell["relative_depth"]) == 1.0


def test_model_score_is_mean_of_best_layer_scores_over_applicable_regions(scores):
    per_model = model_scores(scores)
    for model in scores.model.values:
        for metric in scores.metric.values:
            regions = [r for r in scores.region.values if bool(scores["applicable"].sel(region=r, metric=metric))]
            expected = np.mean([_direct_best(scores, model, r, metric)[0] for r in regions])
            assert float(per_model.sel(model=model, metric=metric)) == pytest.approx(expected)
    # RDM-only regions count for rsa only: rsa averages over all 5 regions, svcca over 3
    assert int(scores["applicable"].sel(metric="rsa").sum()) == 5
    assert int(scores["applicable"].sel(metric="svcca").sum()) == 3


def test_model_score_is_nan_for_a_model_missing_an_applicable_region(scores):
    scores["score"].loc[dict(model="resnet18", region="toy_mouse/VISl")] = np.nan
    per_model = model_scores(scores)
    assert per_model.sel(model="resnet18").isnull().all()
    assert per_model.sel(model="resnet34").notnull().all()


def test_dataset_scores_average_within_each_dataset(scores):
    per = dataset_scores(scores)
    expected = np.mean([_direct_best(scores, "vit_tiny", f"toy_mouse/{r}", "cka")[0] for r in ("VISp", "VISl")])
    assert float(per.sel(model="vit_tiny", dataset="toy_mouse", metric="cka")) == pytest.approx(expected)
    assert per.sel(dataset="kriegeskorte2008_92", metric="svcca").isnull().all()


def test_family_means_match_scipy_t_interval(scores):
    fam = family_means(scores, level=0.9)
    per_model = model_scores(scores)
    for family in ("snn", "cnn"):
        values = per_model.isel(model=scores["family"].values == family).sel(metric="rsa").values
        low, high = scipy.stats.t.interval(0.9, len(values) - 1, loc=values.mean(), scale=scipy.stats.sem(values))
        cell = fam.sel(family=family, metric="rsa")
        assert float(cell["mean"]) == pytest.approx(values.mean())
        assert float(cell["ci_low"]) == pytest.approx(low)
        assert float(cell["ci_high"]) == pytest.approx(high)
        assert int(cell["n_models"]) == len(values)
    single = fam.sel(family="vit", metric="rsa")  # one model: mean but no interval
    assert int(single["n_models"]) == 1 and np.isnan(single["ci_low"]) and np.isfinite(single["mean"])


def test_family_means_leave_out_failed_models(scores):
    scores["score"].loc[dict(model="alexnet")] = np.nan
    scores["error"].loc[dict(model="alexnet")] = "RuntimeError: boom"
    fam = family_means(scores)
    values = model_scores(scores).sel(model=["resnet18", "resnet34"], metric="cka").values
    assert int(fam["n_models"].sel(family="cnn", metric="cka")) == 2
    assert float(fam["mean"].sel(family="cnn", metric="cka")) == pytest.approx(values.mean())


def test_normalize_by_ceiling_divides_where_a_ceiling_exists(scores):
    normed = normalize_by_ceiling(scores)
    expected = scores["score"].sel(region="toy_mouse/VISp", metric="svcca") / float(
        scores["ceiling"].sel(region="toy_mouse/VISp", metric="svcca")
    )
    np.testing.assert_allclose(normed["score"].sel(region="toy_mouse/VISp", metric="svcca"), expected)
    np.testing.assert_allclose(
        normed["ci_high"].sel(region="toy_mouse/VISp", metric="svcca"),
        scores["ci_high"].sel(region="toy_mouse/VISp", metric="svcca") / float(scores["ceiling"].sel(region="toy_mouse/VISp", metric="svcca")),
    )
    # no ceiling (the RDM regions here): NaN, never the raw score
    assert normed["score"].sel(region="kriegeskorte2008_92/IT (monkey)").isnull().all()
    assert normed.attrs["normalized"] == "ceiling"
    with pytest.raises(ValidationError, match="already normalised"):
        normalize_by_ceiling(normed)


def test_normalize_by_ceiling_rejects_non_positive_ceilings(scores):
    scores["ceiling"].loc[dict(region="toy_mouse/VISp", metric="cka")] = 0.0
    with pytest.raises(ValidationError, match="<= 0"):
        normalize_by_ceiling(scores)


def test_rank_agreement_matches_scipy_spearman(scores):
    agreement = rank_agreement(scores)
    per_model = model_scores(scores)
    a, b = per_model.sel(metric="svcca").values, per_model.sel(metric="cka").values
    expected = scipy.stats.spearmanr(a, b)
    cell = agreement.sel(metric="svcca", other_metric="cka")
    assert float(cell["rho"]) == pytest.approx(expected.statistic)
    assert float(cell["p_value"]) == pytest.approx(expected.pvalue)
    assert int(cell["n_models"]) == len(a)
    np.testing.assert_allclose(np.diag(agreement["rho"]), 1.0)
    np.testing.assert_allclose(agreement["rho"].values, agreement["rho"].values.T)


def test_rank_agreement_per_dataset(scores):
    agreement = rank_agreement(scores, per_dataset=True)
    per = dataset_scores(scores).sel(dataset="toy_mouse")
    expected = scipy.stats.spearmanr(per.sel(metric="rsa").values, per.sel(metric="tsvd_regression").values).statistic
    assert float(agreement["rho"].sel(dataset="toy_mouse", metric="rsa", other_metric="tsvd_regression")) == pytest.approx(expected)
    # svcca is not applicable to the RDM-only dataset: no models, no correlation
    cell = agreement.sel(dataset="kriegeskorte2008_92", metric="svcca", other_metric="rsa")
    assert int(cell["n_models"]) == 0 and np.isnan(cell["rho"])


def test_paired_comparison_mean_relative_gain_over_finite_cells(scores):
    result = paired_comparison(scores)
    per = dataset_scores(scores)
    gains, sew_values, base_values = [], [], []
    for depth in (18, 34):
        for dataset in per.dataset.values:
            for metric in per.metric.values:
                sew = float(per.sel(model=f"sew_resnet{depth}", dataset=dataset, metric=metric))
                base = float(per.sel(model=f"resnet{depth}", dataset=dataset, metric=metric))
                if np.isfinite(sew) and np.isfinite(base):
                    gains.append((sew - base) / base)
                    sew_values.append(sew)
                    base_values.append(base)
    # 2 depths x (2 response datasets x 4 metrics + 1 RDM-only dataset x rsa)
    assert len(gains) == 2 * (2 * 4 + 1) == int(result["n_pairs"])
    assert float(result["mean_relative_gain"]) == pytest.approx(np.mean(gains))
    low, high = scipy.stats.t.interval(0.95, len(gains) - 1, loc=np.mean(gains), scale=scipy.stats.sem(gains))
    assert float(result["ci_low"]) == pytest.approx(low) and float(result["ci_high"]) == pytest.approx(high)
    assert float(result["p_value"]) == pytest.approx(scipy.stats.wilcoxon(sew_values, base_values).pvalue)
    assert list(result["baseline"].values) == ["resnet18", "resnet34"]


def test_paired_comparison_known_gain():
    scores = make_scores(seed=1, models={"sew_resnet18": ("snn", 3), "resnet18": ("cnn", 3)})
    scores["score"].loc[dict(model="sew_resnet18")] = scores["score"].sel(model="resnet18").values * 1.066
    result = paired_comparison(scores)
    assert float(result["mean_relative_gain"]) == pytest.approx(0.066)
    np.testing.assert_allclose(result["relative_gain"].values[np.isfinite(result["relative_gain"].values)], 0.066)


def test_paired_comparison_errors(scores):
    assert sew_resnet_pairs(["sew_resnet18", "resnet18", "sew_resnet50", "vit"]) == {"sew_resnet18": "resnet18"}
    with pytest.raises(ValidationError, match="no model pairs"):
        paired_comparison(scores.sel(model=["vit_tiny", "alexnet"]))
    with pytest.raises(ValidationError, match=r"\['resnet50'\] are not in scores"):
        paired_comparison(scores, {"sew_resnet18": "resnet50"})
