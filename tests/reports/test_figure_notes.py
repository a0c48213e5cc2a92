"""Figures never hide their data (issue 30, items 9-13): notes outside the axes, random weights
said on the figure, a chance level and the right n per family, a coarse rank agreement flagged,
missing time steps marked and SNNs in their family colour."""

import os
from pathlib import Path

import nbformat
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from workbench.analysis import results
from workbench.data import load
from workbench.reports import figures, style
from workbench.reports.notebook import notebook_path


def _renderer(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _line_extents(ax, renderer):
    """Window extents of the lines that plot data (at least two finite points)."""
    extents = []
    for line in ax.get_lines():
        x, y = (np.asarray(v, dtype=float) for v in line.get_data())
        if np.isfinite(x).sum() >= 2 and np.isfinite(y).sum() >= 2 and line.get_visible():
            extents.append(line.get_window_extent(renderer))
    return extents


def _no_ceiling(scores):
    """No noise ceiling anywhere: every panel carries a 'no noise ceiling' note."""
    return scores.assign(ceiling=scores["ceiling"] * np.nan)


@pytest.mark.parametrize("metric", ["rsa", "svcca"])
def test_no_note_overlaps_a_plotted_line(scores, metric):
    fig = figures.plot_layer_curves(_no_ceiling(scores), metric)
    renderer = _renderer(fig)
    notes = 0
    for ax in (a for a in fig.axes if a.get_visible()):
        lines = _line_extents(ax, renderer)
        assert lines
        for text in ax.texts:
            box = text.get_window_extent(renderer)
            notes += "no noise ceiling" in text.get_text()
            assert not any(box.overlaps(line) for line in lines), text.get_text()
            assert not box.overlaps(ax.get_window_extent(renderer))  # outside the axes altogether
    assert notes == len([a for a in fig.axes if a.get_visible()])


def test_notes_and_y_labels_stay_clear_of_the_panel_title(scores):
    fig = figures.plot_layer_curves(_no_ceiling(scores), "svcca")
    renderer = _renderer(fig)
    ax = fig.axes[0]
    title = ax.title.get_window_extent(renderer)
    label = ax.yaxis.label.get_window_extent(renderer)
    assert label.y1 <= ax.get_window_extent(renderer).y1 + 1 < title.y0  # the y label stays beside the axes
    assert not any(t.get_window_extent(renderer).overlaps(title) for t in ax.texts)


def test_note_above_axes_helper_keeps_the_note_between_axes_and_title():
    fig = style.new_figure((3, 2))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    ax.set_title("panel")
    style.note_above_axes(ax, "no noise ceiling:\ntwo lines")
    renderer = _renderer(fig)
    note = ax.texts[0].get_window_extent(renderer)
    axes_box, title = ax.get_window_extent(renderer), ax.title.get_window_extent(renderer)
    assert axes_box.y1 <= note.y0 and note.y1 <= title.y0


def _texts(fig):
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_visible())]


def test_every_figure_of_a_random_weight_run_says_so(scores):
    makers = [lambda s: figures.plot_layer_curves(s, "rsa"), lambda s: figures.plot_best_layer_depth(s, "rsa"),
              figures.plot_family_comparison, figures.plot_rank_agreement, lambda s: figures.plot_per_step(s, "rsa")]
    for make in makers:
        assert any("random weights (all networks; seed=0)" in t for t in _texts(make(scores)))
        trained = scores.assign_coords(weights=("model", ["imagenet"] * scores.sizes["model"]))
        assert not any("random" in t for t in _texts(make(trained)))
    rng = np.random.default_rng(0)
    pair = [("resnet18", "layer4", "V4", rng.random((5, 5)), rng.random((5, 5)))]
    (_, rdm_figure), = figures.plot_rdms(results.rdm_pairs_tree(pair), {"resnet18": "random(seed=0)"})
    assert any("random weights" in t for t in _texts(rdm_figure))
    mixed = dict(zip(scores.model.values, ["random(seed=0)", "imagenet", "imagenet", "imagenet"]))
    assert style.random_weights_note(mixed) == "random weights (sew_resnet18; seed=0): untrained networks"


def test_family_comparison_has_a_chance_level_and_each_familys_number_of_models(scores):
    data = scores.assign(null_mean=0.25 + 0 * scores["score"])
    fig = figures.plot_family_comparison(data)
    ax = fig.axes[0]
    ticks = [c for c in ax.collections if c.get_linestyle()[0][1]]  # the dashed chance ticks
    levels = np.concatenate([[seg[0][1] for seg in c.get_segments()] for c in ticks])
    np.testing.assert_allclose(levels, 0.25)
    assert len(levels) == 3 * 3  # each family x metric
    legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert "SNN (n = 2 models)" in legend and "ViT (n = 1 model)" in legend
    assert any(t.startswith("chance") for t in legend)
    assert not ax.patches  # dots, no bars drawn from 0
    # a family of one model reads n = 1; with none such, no text says n = 1
    pairs = scores.isel(model=[0, 1])
    texts = _texts(figures.plot_family_comparison(pairs))
    assert not any("n = 1" in t for t in texts) and any("n = 2 models" in t for t in texts)


def test_rank_agreement_over_three_models_is_flagged_as_coarse(scores):
    three = figures.plot_rank_agreement(scores.isel(model=[0, 1, 2]))
    title = three.axes[0].get_title()
    assert "over 3 models rho takes only -1, -0.5, 0.5, 1" in title
    assert figures.rank_correlation_values(3) == [-1.0, -0.5, 0.5, 1.0]
    assert len(figures.rank_correlation_values(5)) == 21  # sum(d^2) takes every even value 0..40


def test_per_step_marks_steps_without_a_score_and_colours_snns_by_family(scores):
    data = scores.copy(deep=True)
    data["score_per_step"].loc[{"model": "sew_resnet18", "region": "kriegeskorte2008_92/IT (monkey)",
                                "time_step": 0}] = np.nan
    fig = figures.plot_per_step(data, "rsa")
    it = next(ax for ax in fig.axes if ax.get_title() == "kriegeskorte2008_92/IT (monkey)")
    marks = [line for line in it.get_lines() if line.get_marker() == "x"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [0]
    assert marks[0].get_label() == "sew_resnet18: no score at this step"
    for ax in fig.axes:
        for line in ax.get_lines():
            assert line.get_color() == style.family_color("snn")


def test_families_are_written_snn_cnn_vit():
    assert [style.family_label(f) for f in ("snn", "cnn", "vit", "rnn")] == ["SNN", "CNN", "ViT", "RNN"]


def test_quickstart_rdms_carry_the_92_image_sets_categories(tmp_path, monkeypatch):
    """The quickstart's RDM pair labels the category blocks, read from the dataset's stimulus
    metadata (issue 30, point 17)."""
    mirror = Path(os.environ.get("WORKBENCH_DATA_MIRROR", Path(__file__).parents[3] / "shared" / "data"))
    if not (mirror / "SHA256SUMS").is_file():
        pytest.skip(f"real data mirror not found at {mirror}")
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data"))
    brain = load("kriegeskorte2008_92", mirror=mirror).rdm("IT (monkey)")
    categories = figures.stimulus_categories(brain)
    assert len(categories) == 92 and categories[0] == "human bodypart"
    fig = figures.plot_rdm_pair(np.asarray(brain.values) + 0.1, brain.values, categories=categories)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == [name for name, _, _ in figures.category_runs(categories)] and "human face" in labels
    plot_cell = next(c.source for c in nbformat.read(notebook_path("quickstart"), 4).cells
                     if "plot_rdm_pair(" in c.source)
    assert "categories=stimulus_categories(brain)" in plot_cell
