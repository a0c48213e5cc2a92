"""Figures, tables and reports that say what they show (issue 19, points 2 and 5): unscored
layers marked, best layers qualified by how many layers had a score, n = 1 families without
error bars, n/a slots explained, ceilings in the legend, statistics named on the axes, a
ceiling-normalised view, category-labelled RDMs, HTML without code and with alt text."""

import json

import nbformat
import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from workbench.analysis import results, save_scores
from workbench.reports import figures, style
from workbench.reports.study import report_header, run_summary, score_table, sweep_table, unscored_section

SEW = "sew_resnet18"  # 4 layers in the conftest scores
UNSCORED = [2, 3]


def _with_unscored(scores, policy="unscored"):
    """sew_resnet18's layers 2 and 3 have no RSA (8 zero-variance stimuli), as in the demo."""
    out = scores.copy(deep=True)
    out["score"].loc[dict(model=SEW, layer=UNSCORED, metric="rsa")] = np.nan
    counts = out["score"].copy(data=np.zeros(out["score"].shape))
    counts.loc[dict(model=SEW, layer=UNSCORED, metric="rsa")] = 8
    out["n_zero_variance"] = counts
    out.attrs["protocol"] = json.dumps({"seed": 0, "zero_variance_stimuli": policy, "ci_level": 0.95})
    return out


def _legend_texts(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


# -- point 2: unscored cells in figures and tables ---------------------------------------------
def test_layer_curves_mark_unscored_layers_and_say_over_how_many_layers_the_best_was_taken(scores):
    data = _with_unscored(scores)
    fig = figures.plot_layer_curves(data, "rsa")
    ax = next(a for a in fig.axes if a.get_title() == "cowley2023_v4/V4")
    color = style.family_color("snn")
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x" and line.get_color() == color]
    assert len(crosses) == 1
    np.testing.assert_allclose(crosses[0].get_xdata(), np.array(UNSCORED) / 3)  # their relative depths
    legend = _legend_texts(fig)
    assert "unscored layer (no score)" in legend
    assert f"{SEW} (SNN; best of 2/4 layers)" in legend
    assert "resnet18 (CNN)" in legend  # every layer scored: no qualifier
    # no marks where every layer has a score
    clean = figures.plot_layer_curves(scores, "rsa")
    assert "unscored layer (no score)" not in _legend_texts(clean)
    assert not [line for a in clean.axes for line in a.get_lines() if line.get_marker() == "x"]


def test_best_layer_table_and_depth_figure_say_over_how_many_layers(scores):
    data = _with_unscored(scores)
    best, _ = run_summary(data)
    row = best[(best.model == SEW) & (best.region == "cowley2023_v4/V4") & (best.metric == "rsa")].iloc[0]
    values = data.score.sel(model=SEW, region="cowley2023_v4/V4", metric="rsa").values
    assert row.layers == "2/4" and row.score == pytest.approx(np.nanmax(values))
    assert row.ceiling == pytest.approx(0.95) and row["score / ceiling"] == pytest.approx(row.score / 0.95)
    other = best[(best.model == "resnet18") & (best.metric == "rsa")]
    assert set(other.layers) == {"5/5"}
    fig = figures.plot_best_layer_depth(data, "rsa")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts if "/" in t.get_text()] == ["2/4", "2/4"]  # one per region
    assert "k/L: best of the k of L layers with a score" in ax.get_title()
    assert "best taken over all of each model's layers" in figures.plot_best_layer_depth(scores, "rsa").axes[0].get_title()


def test_sweep_table_shows_unscored_cells_and_t_for_spiking_models_only(scores):
    data = _with_unscored(scores).assign_coords(time_steps=("model", [4, 4, 0, 0]))
    table = sweep_table(data).set_index("model")
    assert table.loc[SEW, "T"] == "4" and table.loc["resnet18", "T"] == "" and table.loc["deit_tiny", "T"] == ""
    assert table.loc[SEW, "unscored cells"] == 4 and table.loc["resnet18", "unscored cells"] == 0  # 2 layers x 2 regions
    assert table.loc[SEW, "layers"] == 4


def test_report_states_the_policy_and_lists_unscored_cells(scores, tiny_dataset):
    from workbench.analysis import Protocol

    header = report_header(["resnet18"], [str(tiny_dataset)], protocol=Protocol(zero_variance_stimuli="exclude"))
    assert "**Zero-variance stimuli** (`zero_variance_stimuli='exclude'`)" in header
    assert "zero_variance_stimuli  exclude" in header  # and in the protocol table
    text = unscored_section(_with_unscored(scores))
    assert f"{SEW} on cowley2023_v4/V4, rsa: layer2, layer3 (8/8 zero-variance stimuli)" in text
    assert unscored_section(scores).startswith("Every applicable cell of every layer has a score")


# -- point 5 -------------------------------------------------------------------------------------
def test_family_of_one_model_has_no_error_bar_and_says_n_1(scores):
    fig = figures.plot_family_comparison(scores)  # snn: 2 models, cnn and vit: 1 each
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1  # the SNN family only
    segments = bars[0].lines[2][0].get_segments()
    from workbench.analysis import family_means

    snn = family_means(scores).sel(family="snn")
    lows = sorted(float(seg[0][1]) for seg in segments)
    np.testing.assert_allclose(lows, np.sort(snn.ci_low.values))
    n_one = [t for t in ax.texts if t.get_text() == "n = 1"]
    assert len(n_one) == 2 * scores.sizes["metric"]  # cnn and vit, each metric
    assert "CNN (n = 1 model)" in _legend_texts(fig) and "SNN (n = 2 models)" in _legend_texts(fig)


def test_axis_labels_name_the_statistic(scores):
    for metric, label in (("rsa", "RSA (Spearman rho)"), ("cka", "CKA (linear)"), ("svcca", "SVCCA (mean canonical corr.)")):
        fig = figures.plot_layer_curves(scores, metric)
        assert fig.axes[0].get_ylabel() == label.replace(" (", "\n(")  # the statistic on a line of its own
        assert label in fig.axes[0].figure._suptitle.get_text()
        assert label in figures.plot_best_layer_depth(scores, metric).axes[0].get_title()
    assert style.metric_label("tsvd_regression") == "TSVD regression (Pearson r)"


def test_ceiling_line_has_a_legend_entry_and_a_panel_without_one_says_why(scores):
    data = scores.copy(deep=True)
    data["ceiling"].loc[dict(region="kriegeskorte2008_92/IT (monkey)", metric="rsa")] = np.nan
    fig = figures.plot_layer_curves(data, "rsa")
    assert "noise ceiling" in _legend_texts(fig)
    by_title = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    notes = [t.get_text() for t in by_title["kriegeskorte2008_92/IT (monkey)"].texts]
    assert notes == ["no noise ceiling: one RDM, no repeats\nor per-subject RDMs"]
    assert not by_title["cowley2023_v4/V4"].texts
    svcca = figures.plot_layer_curves(data.assign(ceiling=data.ceiling * np.nan), "svcca")
    assert [t.get_text() for t in svcca.axes[0].texts] == ["no noise ceiling: none defined for SVCCA"]
    assert "noise ceiling" not in _legend_texts(svcca)


def test_rdm_only_slots_say_n_a_in_figures_and_tables(scores):
    fig = figures.plot_best_layer_depth(scores, "cka")  # issue 30: no slot that can never hold data
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["cowley2023_v4/V4"]
    table = score_table(scores)
    assert table.loc["resnet18", ("kriegeskorte2008_92", "cka")] == "n/a (RDM-only data)"
    best = float(np.nanmax(scores.score.sel(model="resnet18", region="cowley2023_v4/V4", metric="cka")))
    assert table.loc["resnet18", ("cowley2023_v4", "cka")] == f"{best:.3f}"
    assert table.loc[SEW, ("cowley2023_v4", "rsa")] != "unscored"
    assert table.loc[SEW, ("kriegeskorte2008_92", "rsa")] == f"{np.nanmax(scores.score.sel(model=SEW, region='kriegeskorte2008_92/IT (monkey)', metric='rsa')):.3f}"


def test_ceiling_normalised_view_divides_every_score_by_the_ceiling(scores):
    data = scores.copy(deep=True)
    data["ceiling"].loc[dict(region="cowley2023_v4/V4", metric="rsa")] = 0.8
    fig = figures.plot_layer_curves(data, "rsa", normalized=True)
    ax = next(a for a in fig.axes if a.get_title() == "cowley2023_v4/V4")
    line = next(line for line in ax.get_lines() if line.get_label() == "resnet18")
    np.testing.assert_allclose(line.get_ydata(), data.score.sel(model="resnet18", region="cowley2023_v4/V4", metric="rsa") / 0.8)
    assert ax.get_ylabel() == "RSA\n(Spearman rho)\n/ noise ceiling"
    assert next(line for line in ax.get_lines() if line.get_label() == "ceiling").get_ydata()[0] == 1.0
    assert "noise ceiling (= 1)" in _legend_texts(fig)


def test_rank_agreement_with_one_model_explains_n_a_and_is_not_clipped(scores):
    fig = figures.plot_rank_agreement(scores.sel(model=["resnet18"]))
    ax = fig.axes[0]
    title = ax.get_title()
    assert "(1 model)" in title and "needs >= 3 models scored by both metrics; at most 1 here" in title
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box, frame = ax.title.get_window_extent(renderer), fig.bbox
    assert box.x0 >= frame.x0 - 1 and box.x1 <= frame.x1 + 1, "title clipped at the figure's edges"
    assert "needs >= 3" not in figures.plot_rank_agreement(scores).axes[0].get_title()


def test_rdm_figures_label_categories_and_load_from_the_run_directory(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(6, 5))
    from workbench.metrics import rdm

    a = rdm(features)
    categories = ["face", "face", "body", "body", "body", "object"]
    results.save_rdms([("resnet18", "layer4", "k/IT (monkey)", a, a, categories),
                       ("resnet18", "layer3", "k/IT (human)", a, a, None)], tmp_path / "rdms.nc")
    tree = results.load_rdms(tmp_path)  # the run directory
    pairs = [node.to_dataset() for node in tree.children.values()]
    assert [str(p.region.values) for p in pairs] == ["k/IT (monkey)", "k/IT (human)"]
    assert list(pairs[0]["category"].values) == categories and "category" not in pairs[1].coords
    drawn = list(figures.plot_rdms(tree))
    assert [name for name, _ in drawn] == ["rdm_resnet18__k-IT-monkey", "rdm_resnet18__k-IT-human"]
    left = drawn[0][1].axes[0]
    assert [t.get_text() for t in left.get_xticklabels()] == ["face", "body", "object"]
    np.testing.assert_allclose(left.get_xticks(), [0.5, 3.0, 5.0])
    assert figures.category_runs(categories) == [("face", 0, 2), ("body", 2, 5), ("object", 5, 6)]
    with pytest.raises(Exception, match="no RDM file there"):
        results.load_rdms(tmp_path / "empty_run")


def test_every_figure_of_a_run_has_a_caption(scores, tmp_path):
    save_scores(scores, tmp_path)
    written = figures.render_all_figures(tmp_path)
    for stem in sorted({p.stem for p in written}):
        caption = figures.figure_caption(stem)
        assert len(caption) > 60 and caption != stem.replace("_", " "), stem
    assert "RSA (Spearman rho)" in figures.figure_caption("layer_curves_rsa")
    assert "divided by each region's noise ceiling" in figures.figure_caption("layer_curves_rsa_ceiling_normalized")


def test_html_export_leaves_out_code_and_gives_every_image_alt_text(tmp_path, caplog):
    import base64

    from workbench.reports import export_html

    with style.figure_style():
        fig = style.new_figure((2, 2))
        fig.subplots().plot([0, 1], [1, 0])
    png = style.savefig(fig, tmp_path / "line", formats=("png",))[0]
    data = base64.b64encode(png.read_bytes()).decode()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("secret_source_line = display(Image(path))")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": data, "text/plain": "<Image>"},
                               metadata={"image/png": {"alt": "layer curves of RSA"}}),
        nbformat.v4.new_output("display_data", data={"image/png": data, "text/plain": "<Figure>"}),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Report"), cell]
    path = tmp_path / "report.ipynb"
    nbformat.write(nb, path)
    with caplog.at_level("WARNING"):
        html = export_html(path, exclude_input=True).read_text()
    assert "secret_source_line" not in html and "Report" in html
    assert 'alt="layer curves of RSA"' in html and 'alt="figure (output of cell 1)"' in html
    assert "No description has been provided" not in html
    assert not [r for r in caplog.records if "Alternative text" in r.getMessage()]
    assert "secret_source_line" in export_html(path, tmp_path / "with_code.html").read_text()


@pytest.mark.slow
def test_notebook_kernel_start_up_warnings_stay_off_the_terminal(tmp_path, capfd):
    from workbench.reports import execute_notebook

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell("x = 1")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell("print(x + 1)")]
    nbformat.write(nb, tmp_path / "in.ipynb")
    executed = execute_notebook(tmp_path / "in.ipynb", tmp_path / "out.ipynb", {"x": 41})
    err = capfd.readouterr().err
    assert "without encryption" not in err and "WARNING" not in err, err
    outputs = nbformat.read(executed, as_version=4).cells[-1].outputs
    assert outputs[0]["text"].strip() == "42"


@pytest.mark.parametrize("command", ["score", "report", "demo"])
def test_terminal_summary_lists_unscored_cells(command, scores, tmp_path, monkeypatch, capsys):
    from pathlib import Path

    from workbench.cli import main

    data = _with_unscored(scores)
    data.attrs["datasets"] = "cowley2023_v4,kriegeskorte2008_92"

    def fake_study(models, datasets, out, **kwargs):
        save_scores(data, out)
        return data

    def fake_report(*args, **kwargs):
        out = Path(args[2] if len(args) > 2 else args[0])
        save_scores(data, out)
        return out / "report.html"

    monkeypatch.setattr("workbench.reports.study.run_study", fake_study)
    monkeypatch.setattr("workbench.reports.demo.run_report", fake_report)
    out = tmp_path / "run"
    argv = {"score": ["score", "--models", "resnet18", "--datasets", "cowley2023_v4", "--out", str(out)],
            "report": ["report", "--models", "resnet18", "--datasets", "cowley2023_v4", "--out", str(out)],
            "demo": ["demo", "--out", str(out)]}[command]
    assert main(argv) == 0  # unscored cells are the protocol's decision, not a failure
    err = capsys.readouterr().err
    assert "4 unscored cell(s): the metric applies but gave no score (protocol zero_variance_stimuli='unscored'):" in err
    assert f"  {SEW} on kriegeskorte2008_92/IT (monkey), rsa: layer2, layer3 (8/8 zero-variance stimuli)" in err
