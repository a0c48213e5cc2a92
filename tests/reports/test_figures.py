"""Figures: each plot shows the numbers of the scores it is given, and a run's figures
regenerate from its result files alone."""

import hashlib

import numpy as np
import pytest
from matplotlib.figure import Figure

from workbench.analysis import results, save_scores
from workbench.errors import DataError, ValidationError
from workbench.reports import figures, style


def _lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_layer_curves_plot_each_models_scores_against_relative_depth(scores):
    fig = figures.plot_layer_curves(scores, "rsa")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == list(scores.region.values)
    for ax, region in zip(axes, scores.region.values):
        lines = _lines_by_label(ax)
        for model in scores.model.values:
            n = int((scores.layer_name.sel(model=model) != "").sum())
            expected_y = scores.score.sel(model=model, region=region, metric="rsa").values[:n]
            x, y = lines[model].get_data()
            np.testing.assert_allclose(y, expected_y)
            np.testing.assert_allclose(x, np.arange(n) / (n - 1))
            assert lines[model].get_color() == style.family_color(str(scores.family.sel(model=model).values))
        assert lines["ceiling"].get_ydata()[0] == pytest.approx(0.95)


def test_layer_curves_leave_out_regions_where_the_metric_cannot_apply_and_the_caption_says_so(scores):
    fig = figures.plot_layer_curves(scores, "cka")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["cowley2023_v4/V4"]  # the RDM-only IT region has no panel
    assert "Regions where the metric cannot apply have no panel" in figures.figure_caption("layer_curves_cka")
    assert len([ax for ax in figures.plot_layer_curves(scores, "rsa").axes if ax.get_visible()]) == 2
    depth = figures.plot_best_layer_depth(scores, "cka").axes[0]
    assert [t.get_text() for t in depth.get_xticklabels()] == ["cowley2023_v4/V4"]


def test_best_layer_depth_dots_are_each_models_argmax_depth(scores):
    fig = figures.plot_best_layer_depth(scores, "svcca")
    ax = fig.axes[0]
    from matplotlib.collections import PathCollection

    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    shown = np.sort(np.concatenate([c.get_offsets()[:, 1] for c in dots]))
    expected = []
    for model in scores.model.values:
        for region in ["cowley2023_v4/V4"]:
            values = scores.score.sel(model=model, region=region, metric="svcca").values
            k = np.nanargmax(values)
            expected.append(float(scores.relative_depth.sel(model=model).values[k]))
    np.testing.assert_allclose(shown, np.sort(expected))


def test_family_comparison_bars_are_family_means_of_model_scores(scores):
    fig = figures.plot_family_comparison(scores)
    ax = fig.axes[0]
    heights = {line.get_label().split(" ")[0].lower(): list(line.get_ydata())  # a dot per family and metric
               for line in ax.get_lines() if line.get_marker() == "o"}
    # direct computation: best layer per region, mean over applicable regions, mean over models
    for family in ["snn", "cnn", "vit"]:
        members = scores.model.values[scores.family.values == family]
        for k, metric in enumerate(scores.metric.values):
            per_model = []
            for model in members:
                best = [np.nanmax(scores.score.sel(model=model, region=r, metric=metric).values)
                        for r in scores.region.values if bool(scores.applicable.sel(region=r, metric=metric))]
                per_model.append(np.mean(best))
            assert heights[family][k] == pytest.approx(np.mean(per_model))


def test_family_chance_averages_the_best_layers_null_means_as_the_model_scores_are(scores):
    rng = np.random.default_rng(1)
    scores = scores.assign(null_mean=scores["score"].copy(data=rng.uniform(0, 0.1, scores["score"].shape)))
    first = scores.model.values[0]
    # a model with a NaN null on one applicable region gets no chance level, as it would get no score
    scores["null_mean"].loc[dict(model=first, region=scores.region.values[0])] = np.nan
    chance = figures.family_chance(scores)
    for family in dict.fromkeys(scores.family.values):
        for metric in scores.metric.values:
            per_model = []
            for model in scores.model.values[scores.family.values == family]:
                nulls = []
                for region in scores.region.values:
                    if not bool(scores.applicable.sel(region=region, metric=metric)):
                        continue
                    cell = dict(model=model, region=region, metric=metric)
                    nulls.append(float(scores.null_mean.sel(cell).values[np.nanargmax(scores.score.sel(cell).values)]))
                per_model.append(np.mean(nulls))
            expected = np.nanmean(per_model) if np.isfinite(per_model).any() else np.nan
            assert float(chance.sel(family=family, metric=metric)) == pytest.approx(expected, nan_ok=True)
    assert figures.family_chance(scores.drop_vars("null_mean")) is None


def test_rank_agreement_matrix_is_symmetric_with_unit_diagonal(scores):
    fig = figures.plot_rank_agreement(scores)
    matrix = fig.axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    np.testing.assert_allclose(matrix, matrix.T)


def test_per_step_plot_shows_the_best_layers_scores_per_time_step(scores):
    fig = figures.plot_per_step(scores, "rsa")
    ax = fig.axes[0]
    lines = _lines_by_label(ax)
    assert sorted(label.split(" ")[0] for label in lines) == ["sew_resnet18", "spiking_vgg"]
    for label, line in lines.items():
        model = label.split(" ")[0]
        values = scores.score.sel(model=model, region=ax.get_title(), metric="rsa").values
        k = np.nanargmax(values)
        expected = scores.score_per_step.sel(model=model, region=ax.get_title(), metric="rsa").values[k]
        np.testing.assert_allclose(line.get_ydata(), expected)


def test_per_step_plot_needs_per_step_scores(scores):
    with pytest.raises(ValidationError, match="score_per_step"):
        figures.plot_per_step(scores.drop_vars("score_per_step"), "rsa")
    with pytest.raises(ValidationError, match="no model has a finite 'score_per_step'"):
        figures.plot_per_step(scores.assign(score_per_step=scores.score_per_step * np.nan), "rsa")


def test_unknown_metric_is_named_with_the_valid_ones(scores):
    with pytest.raises(ValidationError, match=r"metric 'cca' is not in the scores; expected one of \['rsa'"):
        figures.plot_layer_curves(scores, "cca")


def test_scores_without_schema_are_rejected(scores):
    with pytest.raises(ValidationError, match="no variable 'score'"):
        figures.plot_layer_curves(scores.drop_vars("score"), "rsa")


def test_rdm_pair_shows_percentiles_of_each_rdm():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 3))
    model_rdm = np.linalg.norm(x[:, None] - x[None], axis=-1)
    brain_rdm = model_rdm ** 2  # same order, so the same percentiles
    fig = figures.plot_rdm_pair(model_rdm, brain_rdm, model_label="m: layer1", brain_label="V4")
    left, right = (ax.get_images()[0].get_array() for ax in fig.axes[:2])
    np.testing.assert_allclose(left, right)
    upper = np.triu_indices(6, k=1)
    expected = 100 * np.argsort(np.argsort(model_rdm[upper])) / (upper[0].size - 1)
    np.testing.assert_allclose(left[upper], expected)
    np.testing.assert_allclose(left, left.T)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["m: layer1", "V4"]


def test_rdm_pair_rejects_rdms_over_different_stimuli():
    with pytest.raises(ValidationError, match=r"model_rdm has shape \(3, 3\) but brain_rdm has \(4, 4\)"):
        figures.plot_rdm_pair(np.ones((3, 3)), np.ones((4, 4)))
    with pytest.raises(ValidationError, match=r"brain_rdm must be a square n_stimuli x n_stimuli RDM, found shape"):
        figures.plot_rdm_pair(np.ones((3, 3)), np.ones((3, 4)))


def test_rdms_round_trip_through_netcdf(tmp_path):
    a = np.arange(16.0).reshape(4, 4)
    path = results.save_rdms([("resnet18", "layer4", "kriegeskorte2008_92/IT (monkey)", a, a.T)], tmp_path / "rdms.nc")
    tree = results.load_rdms(path)
    (pair,) = tree.children.values()
    np.testing.assert_array_equal(pair["model_rdm"].values, a)
    np.testing.assert_array_equal(pair["brain_rdm"].values, a.T)
    assert str(pair["region"].values) == "kriegeskorte2008_92/IT (monkey)"
    assert str(pair["layer_name"].values) == "layer4"


def test_savefig_writes_png_and_svg_atomically(tmp_path):
    with style.figure_style():
        fig = style.new_figure((2, 2))
        fig.subplots().plot([0, 1], [1, 0])
    paths = style.savefig(fig, tmp_path / "sub" / "line")
    assert [p.name for p in paths] == ["line.png", "line.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["line.png", "line.svg"]  # no temp files


def test_figures_stay_out_of_pyplot(scores):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = figures.plot_layer_curves(scores, "rsa")
    assert isinstance(fig, Figure) and plt.get_fignums() == before


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_render_all_figures_from_result_files_alone(scores, tmp_path):
    run = tmp_path / "run"
    save_scores(scores.sel(metric=["rsa", "cka"]), run)
    rdm = np.array([[0.0, 1, 2], [1, 0, 3], [2, 3, 0]])
    results.save_rdms([("resnet18", "layer4", "cowley2023_v4/V4", rdm, rdm)], run / "rdms.nc")
    written = figures.render_all_figures(run)
    names = sorted({p.stem for p in written})
    assert names == sorted(
        [f"{kind}_{m}" for kind in ("layer_curves", "best_layer_depth", "snn_per_step") for m in ("rsa", "cka")]
        + ["layer_curves_rsa_ceiling_normalized", "layer_curves_cka_ceiling_normalized"]
        + ["family_comparison", "metric_rank_agreement", "rdm_resnet18__cowley2023_v4-V4"]
        # the appendix's (workbench.reports.appendix_figures): those the run has the data for
        + ["family_means", "ranking_cowley2023_v4", "ranking_kriegeskorte2008_92", "sew_resnet_gain",
           "metric_rank_agreement_per_dataset", "score_vs_params"]
    )
    assert all(p.parent == run / "figures" and p.stat().st_size > 0 for p in written)
    # re-rendering the same files gives byte-identical figures
    again = tmp_path / "again"
    figures.render_all_figures(run, out_dir=again)
    assert _digest(again) == _digest(run / "figures")


def test_render_all_figures_without_scores_names_the_folder(tmp_path):
    with pytest.raises(DataError, match="no scores file"):
        figures.render_all_figures(tmp_path)


def test_render_all_figures_refuses_scores_without_any_value(scores, tmp_path):
    save_scores(scores.assign(score=scores.score * np.nan, ci_low=scores.ci_low * np.nan), tmp_path)
    with pytest.raises(DataError, match="no finite score"):
        figures.render_all_figures(tmp_path)
