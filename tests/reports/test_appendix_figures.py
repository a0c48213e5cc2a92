"""The appendix figures on a synthetic run: what they draw, and why those that cannot be drawn are not."""

import numpy as np
import pandas as pd
import pytest

from workbench.analysis import appendix
from workbench.analysis.scores import merge_scores, new_scores, region_label
from workbench.reports import appendix_figures as af
from workbench.reports import figures

MODELS = {"sew_resnet18": "snn", "resnet18": "cnn", "googlenet": "cnn", "vit_b_16": "vit"}
DATASETS = {"majajhong2015": ("macaque", ["V4", "IT"]), "cowley2023_v4": ("macaque", ["V4"])}
METRICS = ["svcca", "rsa"]


def synthetic_run(weights="random(seed=0)", seed=0):
    """Three layers per model, every metric applicable, scores uniform in [0.1, 0.9]."""
    rng = np.random.default_rng(seed)
    parts = []
    for model, family in MODELS.items():
        for dataset, (species, regions) in DATASETS.items():
            part = new_scores(model=model, family=family, weights=weights, layer_names=["a", "b", "c"],
                              regions=[region_label(dataset, r) for r in regions], datasets=[dataset] * len(regions),
                              species=[species] * len(regions), metrics=METRICS)
            part["applicable"].values[:] = True
            part["score"].values[:] = rng.uniform(0.1, 0.9, size=part["score"].shape)
            parts.append(part)
    return merge_scores(parts, attrs={"seed": seed})


def paper_table(scores):
    """The paper's scores: the run's on majajhong2015 shifted by 0.05, plus a model the run lacks."""
    run = appendix.dataset_table(scores)
    paper = run[run["dataset"] == "majajhong2015"].assign(score=lambda t: t["score"] + 0.05)
    extra = pd.DataFrame({"model": "alexnet", "dataset": "majajhong2015", "metric": METRICS, "score": 0.5})
    return pd.concat([paper[["model", "dataset", "metric", "score"]], extra], ignore_index=True)


def test_side_by_side_figure_has_a_panel_per_shared_dataset_and_metric_and_says_random_weights():
    scores = synthetic_run()
    fig = af.plot_paper_comparison(scores, paper_table(scores))
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 2  # majajhong2015 x (svcca, rsa); cowley2023_v4 is not in the paper's table
    assert [ax.get_title() for ax in panels] == ["majajhong2015\nSVCCA (mean canonical corr.)",
                                                 "majajhong2015\nRSA (Spearman rho)"]
    title = fig.get_suptitle()
    assert "random weights (all networks; seed=0)" in title and "the run lacks 1 of the paper's models" in title
    notes = [t.get_text() for t in panels[0].texts]
    assert any(note.startswith("r = 1.00, mean |diff| = 0.050, n = 4") for note in notes)
    xs, ys = panels[0].collections[0].get_offsets().T
    np.testing.assert_allclose(np.asarray(ys) + 0.05, xs)  # x: the paper's, y: this run's


def test_side_by_side_figure_of_trained_networks_has_no_random_weights_note():
    scores = synthetic_run(weights="imagenet")
    fig = af.plot_paper_comparison(scores, paper_table(scores))
    assert "random weights" not in fig.get_suptitle()


def test_every_planned_figure_draws_or_says_why_and_has_a_caption():
    scores = synthetic_run()
    properties = pd.DataFrame({"params": [11.7e6, 11.7e6, 6.6e6, 86.6e6], "top1": [np.nan, 69.8, 69.8, 81.1],
                               "gflops": [np.nan, 1.8, 1.5, 17.6], "branches": ["single", "single", "multi", "single"]},
                              index=list(MODELS))
    plan = {f.stem: f for f in af.appendix_figures(scores, paper_scores=paper_table(scores), properties=properties)}
    assert set(plan) == {"family_means", "ranking_majajhong2015", "ranking_cowley2023_v4", "sew_resnet_gain",
                         "depth_species_study", "metric_rank_agreement_per_dataset", "score_vs_params",
                         "score_vs_gflops", "score_vs_top1", "branches_mouse", "paper_comparison"}
    skipped = {stem: f.reason for stem, f in plan.items() if f.make is None}
    assert skipped == {
        "depth_species_study": "the run has no mouse region (its species: macaque); the study's mouse data are "
                               "allen2019_neuropixels_natural_scenes",
        "branches_mouse": "the run has no mouse region (its species: macaque); the study's mouse data are "
                          "allen2019_neuropixels_natural_scenes",
    }
    for stem, figure in plan.items():
        assert figures.figure_caption(stem) == figure.caption and len(figure.caption) > 80, stem
    gain = plan["sew_resnet_gain"].make()
    assert "random weights" in gain.get_suptitle() and len(gain.axes) == 1
    no_pairs = {f.stem: f.reason for f in af.appendix_figures(scores.sel(model=["googlenet", "vit_b_16"]),
                                                               properties=properties)}
    assert no_pairs["sew_resnet_gain"].startswith("no depth-matched pair")
    assert no_pairs["paper_comparison"] == "no published scores were given"
    assert no_pairs["score_vs_top1"] == "2 of the run's models have a published top1; a regression needs 3"


def test_score_vs_size_panels_state_r2_and_p():
    scores = synthetic_run()
    properties = pd.DataFrame({"params": [1e6, 1e7, 1e8, np.nan]}, index=list(MODELS))
    fig = af.plot_score_vs_property(scores, properties, "params")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 4 and panels[0].get_xlabel() == "parameters (log10)"
    fit = appendix.score_regression(scores, properties["params"].to_dict(), log10=True).iloc[0]
    assert f"R² = {fit.r2:.3f}, p = {fit.p_value:.2g}, n = 3" in [t.get_text() for t in panels[0].texts]


@pytest.mark.parametrize("depth", ["study", "index"])
def test_depth_caption_names_the_depth_definition(depth):
    caption = af.appendix_caption(f"depth_species_{depth}")
    assert ("the study's depth of the layer in its network" in caption) == (depth == "study")
    assert af.appendix_caption("layer_curves_rsa") is None


def test_report_section_lists_figures_not_drawn_and_compares_with_the_paper():
    from workbench.reports.study import appendix_section

    scores = synthetic_run()
    items = appendix_section(scores, paper_scores=paper_table(scores))
    text = "\n".join(i for i in items if isinstance(i, str))
    assert "- `branches_mouse`: the run has no mouse region" in text
    assert "mean relative gain" in text and "sign test p = " in text
    assert "random weights (all networks; seed=0): untrained networks: the paper's networks are trained" in text
    assert "The run lacks 1 of the paper's models: `alexnet`." in text
    summary = next(i for i in items if isinstance(i, pd.DataFrame) and "mean_abs_difference" in i.columns)
    assert summary["mean_abs_difference"].tolist() == pytest.approx([0.05, 0.05])


def test_report_header_states_the_additions_to_the_papers_protocol():
    from workbench.reports.study import report_header

    header = report_header(["resnet18"], ["cowley2023_v4"])
    assert "**Additions to the paper's protocol:** CKA (a fourth metric), the stimulus-permutation null" in header
    assert "noise ceilings" in header and "--paper-metrics" in header
