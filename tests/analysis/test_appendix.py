"""The appendix analyses against direct computations on a small synthetic score table."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from analysis_factory import make_scores

from workbench.analysis import appendix, best_layer
from workbench.errors import ValidationError

MODELS = {
    "sew_resnet18": ("snn", 11), "sew_resnet34": ("snn", 19), "spikingmobilenet": ("snn", 20),
    "resnet18": ("cnn", 11), "resnet34": ("cnn", 19), "alexnet": ("cnn", 11),
    "vit_b_16": ("vit", 12), "vit_b_32": ("vit", 12),
}
DATASETS = {
    "cowley2023_v4": ("macaque", "responses", ["V4"]),
    "kriegeskorte2008_92": ("macaque", "rdm", ["IT (monkey)"]),
    "toy_mouse": ("mouse", "responses", ["VISp", "VISl"]),
}
METRICS = ["svcca", "rsa", "cka"]


@pytest.fixture(scope="module")
def scores():
    return make_scores(seed=5, models=MODELS, datasets=DATASETS, metrics=METRICS)


def hand_score(scores, model, dataset, metric):
    """Mean over the dataset's applicable regions of the max over the model's own layers, by loops."""
    n_layers = MODELS[model][1]
    values = []
    for region in DATASETS[dataset][2]:
        label = f"{dataset}/{region}"
        if not bool(scores["applicable"].sel(region=label, metric=metric)):
            continue
        column = scores["score"].sel(model=model, region=label, metric=metric).values[:n_layers]
        values.append(max(column))
    return np.mean(values) if values else np.nan


def hand_table(scores):
    rows = [(m, MODELS[m][0], d, k, hand_score(scores, m, d, k)) for m in MODELS for d in DATASETS for k in METRICS]
    table = pd.DataFrame(rows, columns=["model", "family", "dataset", "metric", "score"])
    return table[np.isfinite(table["score"])]


def test_dataset_table_is_the_mean_of_best_layer_scores_and_drops_cells_no_metric_applies_to(scores):
    table = appendix.dataset_table(scores)
    expected = hand_table(scores)
    assert set(zip(table["dataset"], table["metric"])) == set(zip(expected["dataset"], expected["metric"]))
    assert ("kriegeskorte2008_92", "svcca") not in set(zip(table["dataset"], table["metric"]))  # RDM-only
    merged = table.merge(expected, on=["model", "family", "dataset", "metric"])
    assert len(merged) == len(expected) == len(table)
    np.testing.assert_allclose(merged["score_x"], merged["score_y"], rtol=1e-12)


def test_family_summary_and_tests_match_scipy_on_the_models_scores(scores):
    summary, tests = appendix.family_summary(scores), appendix.family_tests(scores)
    expected = hand_table(scores)
    cell = expected[(expected["dataset"] == "toy_mouse") & (expected["metric"] == "cka")]
    groups = {f: cell.loc[cell["family"] == f, "score"].to_numpy() for f in ("snn", "cnn", "vit")}
    for family, values in groups.items():
        row = summary[(summary["dataset"] == "toy_mouse") & (summary["metric"] == "cka")
                      & (summary["family"] == family)].iloc[0]
        low, high = scipy.stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=scipy.stats.sem(values))
        assert row["mean"] == pytest.approx(values.mean()) and row["n_models"] == len(values)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    rows = tests[(tests["dataset"] == "toy_mouse") & (tests["metric"] == "cka")].set_index("groups")
    kruskal = scipy.stats.kruskal(*groups.values())
    assert rows.loc["snn|cnn|vit", "test"] == "Kruskal-Wallis H"
    assert rows.loc["snn|cnn|vit", ["statistic", "p_value"]].tolist() == pytest.approx([kruskal.statistic, kruskal.pvalue])
    mann = scipy.stats.mannwhitneyu(groups["snn"], groups["vit"])
    assert rows.loc["snn vs vit", ["statistic", "p_value"]].tolist() == pytest.approx([mann.statistic, mann.pvalue])
    assert rows.loc["snn vs vit", "n_models"] == 5 and rows.loc["snn vs vit", "reason"] == ""


def test_family_tests_say_why_a_family_is_too_small(scores):
    fewer = scores.sel(model=["sew_resnet18", "sew_resnet34", "resnet18", "resnet34", "vit_b_16"])
    rows = appendix.family_tests(fewer)
    row = rows[(rows["dataset"] == "cowley2023_v4") & (rows["metric"] == "rsa") & (rows["groups"] == "snn vs vit")]
    assert np.isnan(row["p_value"].iloc[0]) and row["reason"].iloc[0] == "fewer than 2 scored models in vit"
    kruskal = rows[(rows["test"] == "Kruskal-Wallis H") & (rows["dataset"] == "cowley2023_v4")].iloc[0]
    assert kruskal["groups"] == "snn|cnn" and np.isfinite(kruskal["p_value"])


def test_model_ranking_orders_the_models_by_score(scores):
    ranking = appendix.model_ranking(scores)
    cell = ranking[(ranking["dataset"] == "cowley2023_v4") & (ranking["metric"] == "svcca")]
    expected = sorted(MODELS, key=lambda m: -hand_score(scores, m, "cowley2023_v4", "svcca"))
    assert cell["model"].tolist() == expected and cell["rank"].tolist() == list(range(1, len(MODELS) + 1))


def test_paired_gain_matches_direct_computation_with_sign_test(scores):
    gain = appendix.paired_gain(scores)
    expected = [(hand_score(scores, f"sew_resnet{d}", ds, m) - hand_score(scores, f"resnet{d}", ds, m))
                / hand_score(scores, f"resnet{d}", ds, m)
                for d in (18, 34) for ds in DATASETS for m in METRICS]
    expected = np.array([g for g in expected if np.isfinite(g)])
    assert gain.n_cells == len(expected) == 14  # 2 pairs x (3 + 1 + 3) applicable (dataset, metric)
    np.testing.assert_allclose(np.sort(gain.cells["relative_gain"]), np.sort(expected), rtol=1e-12)
    assert gain.mean == pytest.approx(expected.mean())
    low, high = scipy.stats.t.interval(0.95, len(expected) - 1, loc=expected.mean(), scale=scipy.stats.sem(expected))
    assert (gain.ci_low, gain.ci_high) == pytest.approx((low, high))
    positive = int((expected > 0).sum())
    assert gain.n_positive == positive
    assert gain.sign_test_p == pytest.approx(scipy.stats.binomtest(positive, len(expected)).pvalue)
    assert set(gain.cells["baseline"]) == {"resnet18", "resnet34"}


def test_paired_gain_needs_a_pair(scores):
    with pytest.raises(ValidationError, match="no model pairs to compare"):
        appendix.paired_gain(scores.sel(model=["alexnet", "vit_b_16"]))


def test_study_depth_reads_the_fourth_field_of_the_studys_layer_list():
    from workbench.models import study_layers

    depths = [layer.depth for layer in study_layers("sew_resnet18")]  # 1, 2, 4, 6, ..., 19
    assert appendix.study_relative_depth("sew_resnet18", 2 / 10) == pytest.approx((depths[2] - 1) / (depths[-1] - 1))
    assert appendix.study_relative_depth("sew_resnet18", 1.0) == 1.0
    assert np.isnan(appendix.study_relative_depth("sew_resnet18", 0.15))  # between two study layers
    assert np.isnan(appendix.study_relative_depth("not_a_study_network", 0.5))


def test_best_layer_depths_on_both_definitions(scores):
    index = appendix.best_layer_depths(scores, depth="index")
    study = appendix.best_layer_depths(scores, depth="study")
    best = best_layer(scores)
    row = index[(index["model"] == "resnet34") & (index["region"] == "toy_mouse/VISp") & (index["metric"] == "cka")]
    cell = best.sel(model="resnet34", region="toy_mouse/VISp", metric="cka")
    assert row["depth"].iloc[0] == pytest.approx(float(cell["relative_depth"]))
    assert row["species"].iloc[0] == "mouse" and row["dataset"].iloc[0] == "toy_mouse"
    position = int(cell["layer"])
    from workbench.models import study_layers

    depths = [layer.depth for layer in study_layers("resnet34")]
    row = study[(study["model"] == "resnet34") & (study["region"] == "toy_mouse/VISp") & (study["metric"] == "cka")]
    assert row["depth"].iloc[0] == pytest.approx((depths[position] - depths[0]) / (depths[-1] - depths[0]))
    with pytest.raises(ValidationError, match=r"depth='layers' is not valid; expected one of \['study', 'index'\]"):
        appendix.best_layer_depths(scores, depth="layers")


def test_depth_by_region_lists_mouse_regions_first_with_t_intervals(scores):
    depths = appendix.best_layer_depths(scores, depth="index")
    table = appendix.depth_by_region(depths)
    assert table["species"].tolist()[:6] == ["mouse"] * 6  # 2 mouse regions x 3 metrics
    row = table[(table["region"] == "cowley2023_v4/V4") & (table["metric"] == "rsa")].iloc[0]
    values = depths[(depths["region"] == "cowley2023_v4/V4") & (depths["metric"] == "rsa")]["depth"].to_numpy()
    low, high = scipy.stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=scipy.stats.sem(values))
    assert row[["mean", "ci_low", "ci_high"]].tolist() == pytest.approx([values.mean(), low, high])
    assert row["n_models"] == len(MODELS)


def test_depth_by_species_compares_each_models_mouse_and_macaque_depths(scores):
    depths = appendix.best_layer_depths(scores, depth="index")
    table = appendix.depth_by_species(depths).set_index("metric")
    cka = depths[depths["metric"] == "cka"]
    mouse = cka[cka["species"] == "mouse"].groupby("model")["depth"].mean()
    macaque = cka[cka["species"] == "macaque"].groupby("model")["depth"].mean()
    assert table.loc["cka", "mouse_mean"] == pytest.approx(mouse.mean())
    assert table.loc["cka", "macaque_n_models"] == len(MODELS) == table.loc["cka", "n_paired"]
    expected = scipy.stats.wilcoxon((mouse - macaque.reindex(mouse.index)).to_numpy()).pvalue
    assert table.loc["cka", "wilcoxon_p"] == pytest.approx(expected)


def test_metric_rank_agreement_against_scipy_and_below_the_minimum(scores):
    table = appendix.metric_rank_agreement(scores, method="kendall")
    x = [hand_score(scores, m, "toy_mouse", "svcca") for m in MODELS]
    y = [hand_score(scores, m, "toy_mouse", "cka") for m in MODELS]
    row = table[(table["dataset"] == "toy_mouse") & (table["metric"] == "svcca") & (table["other_metric"] == "cka")]
    expected = scipy.stats.kendalltau(x, y)
    assert row[["rho", "p_value"]].iloc[0].tolist() == pytest.approx([expected.statistic, expected.pvalue])
    assert "kriegeskorte2008_92" not in set(table["dataset"])  # one metric applies there: no pair
    few = appendix.metric_rank_agreement(scores.sel(model=list(MODELS)[:4]))
    assert few["rho"].isna().all()
    assert set(few["reason"]) == {"4 model(s) scored by both metrics; a rank correlation here needs >= 5"}
    with pytest.raises(ValidationError, match="method='pearson' is not valid"):
        appendix.metric_rank_agreement(scores, method="pearson")


def test_score_regression_on_log10_parameters_against_numpy(scores):
    params = {m: 10 ** (6 + 0.3 * i) for i, m in enumerate(MODELS)}
    params["vit_b_32"] = np.nan  # left out
    table = appendix.score_regression(scores, params, log10=True)
    row = table[(table["dataset"] == "toy_mouse") & (table["metric"] == "rsa")].iloc[0]
    models = [m for m in MODELS if np.isfinite(params[m])]
    x = np.log10([params[m] for m in models])
    y = np.array([hand_score(scores, m, "toy_mouse", "rsa") for m in models])
    slope, intercept = np.polyfit(x, y, 1)
    r = np.corrcoef(x, y)[0, 1]
    t = r * np.sqrt((len(x) - 2) / (1 - r ** 2))
    assert row[["slope", "intercept", "r2"]].tolist() == pytest.approx([slope, intercept, r ** 2])
    assert row["p_value"] == pytest.approx(2 * scipy.stats.t.sf(abs(t), len(x) - 2))
    assert row["n_models"] == 7 and row["reason"] == ""
    sparse = appendix.score_regression(scores, {"resnet18": 1.0, "alexnet": 2.0})
    assert sparse["slope"].isna().all()
    assert set(sparse["reason"]) == {"2 model(s) with a score and the property; a regression needs >= 3"}


def test_branch_comparison_on_the_mouse_regions(scores):
    branches = {"resnet18": "multi", "alexnet": "multi", "spikingmobilenet": "multi", "resnet34": "single",
                "vit_b_16": "single", "sew_resnet18": "single"}
    table = appendix.branch_comparison(scores, branches).set_index("metric")
    multi = [hand_score(scores, m, "toy_mouse", "svcca") for m in MODELS if branches.get(m) == "multi"]
    single = [hand_score(scores, m, "toy_mouse", "svcca") for m in MODELS if branches.get(m) == "single"]
    expected = scipy.stats.mannwhitneyu(multi, single)
    assert table.loc["svcca", ["multi_mean", "single_mean"]].tolist() == pytest.approx([np.mean(multi), np.mean(single)])
    assert table.loc["svcca", ["statistic", "p_value"]].tolist() == pytest.approx([expected.statistic, expected.pvalue])
    lonely = appendix.branch_comparison(scores, {"resnet18": "multi", "alexnet": "single", "vit_b_16": "single"})
    assert lonely["reason"].iloc[0] == "fewer than 2 multi-branch models scored on mouse regions"


def test_compare_with_paper_on_synthetic_tables():
    run = pd.DataFrame({"model": ["a", "b", "c", "d"], "dataset": "x", "metric": "rsa",
                        "score": [0.5, 0.6, 0.7, np.nan]})
    paper = pd.DataFrame({"model": ["a", "b", "c", "d", "e"], "dataset": "x", "metric": "rsa",
                          "score": [0.4, 0.65, 0.9, 0.3, 0.2]})
    comparison = appendix.compare_with_paper(run, paper, top=2)
    row = comparison.summary.iloc[0]
    assert row["n_models"] == 3
    assert row["pearson_r"] == pytest.approx(np.corrcoef([0.5, 0.6, 0.7], [0.4, 0.65, 0.9])[0, 1])
    assert row["mean_abs_difference"] == pytest.approx(np.mean([0.1, 0.05, 0.2]))
    assert row["most_different"] == "c (-0.200), a (+0.100)"
    assert comparison.missing == ["d", "e"]  # d has no finite score in the run
    assert comparison.pairs["difference"].tolist() == pytest.approx([0.1, -0.05, -0.2])
    with pytest.raises(ValidationError, match="paper_scores has no column 'score'"):
        appendix.compare_with_paper(run, paper.rename(columns={"score": "value"}))
