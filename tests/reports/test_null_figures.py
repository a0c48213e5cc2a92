"""The chance level in figures and tables: a hatched null band under each layer curve with its
legend entry, the best layer's p-value in the report table, no interval for a family of one."""

import json

import numpy as np
from matplotlib.collections import PolyCollection

from workbench.analysis import load_scores, save_scores
from workbench.reports import figures
from workbench.reports.study import run_summary


def _with_nulls(scores):
    """Null mean and 95th percentile below every score, and a p-value per cell."""
    out = scores.copy(deep=True)
    out["null_mean"] = 0.3 * scores["score"]
    out["null_p95"] = 0.5 * scores["score"]
    out["p_value"] = scores["score"].copy(data=np.where(np.isfinite(scores["score"]), 1 / 101, np.nan))
    out.attrs["protocol"] = json.dumps({"seed": 0, "ci_level": 0.95, "permutations": 100})
    return out


def _hatched(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection) and c.get_hatch()]


def test_layer_curves_draw_the_null_band_under_each_curve_with_a_legend_entry(scores):
    data = _with_nulls(scores)
    fig = figures.plot_layer_curves(data, "cka")
    ax = next(a for a in fig.axes if a.get_title() == "cowley2023_v4/V4")
    bands = _hatched(ax)
    assert len(bands) == scores.sizes["model"]  # one band per model
    # each band spans null_mean .. null_p95 of the model's layers
    model = str(scores["model"].values[0])
    cell = data.sel(model=model, region="cowley2023_v4/V4", metric="cka")
    ys = bands[0].get_paths()[0].vertices[:, 1]
    n = int(np.isfinite(cell["relative_depth"]).sum())
    assert np.nanmin(ys) == np.nanmin(cell["null_mean"].values[:n])
    assert np.isclose(np.nanmax(ys), np.nanmax(cell["null_p95"].values[:n]))
    legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert "chance: stimulus-permutation null, mean to 95th pct. (100 permutations)" in legend
    # without nulls there is no band and no entry
    plain = figures.plot_layer_curves(scores, "cka")
    assert not any(_hatched(a) for a in plain.axes)
    assert not any("chance" in t.get_text() for lg in plain.legends for t in lg.get_texts())
    # divided by the ceiling, the band is divided too
    normalized = figures.plot_layer_curves(data, "cka", normalized=True)
    assert any(_hatched(a) for a in normalized.axes)


def test_report_table_shows_the_best_layers_p_value_and_families_say_why_no_interval(scores, tmp_path):
    data = _with_nulls(scores)
    best, families = run_summary(data)
    assert {"chance (null mean)", "p (permutation)"} <= set(best.columns)
    np.testing.assert_allclose(best["p (permutation)"], 1 / 101)
    np.testing.assert_allclose(best["chance (null mean)"], 0.3 * best["score"])
    one = families[families["n_models"] == 1]
    assert len(one) and one["ci_low"].isna().all()
    assert one["interval"].str.startswith("none: one model").all()
    assert families[families["n_models"] == 2]["interval"].eq("t-interval across 2 models").all()
    # the scores files carry the nulls, and the figures are drawn from them alone
    save_scores(data.assign(error=data["error"].astype(object),
                            layer_name=data["layer_name"].astype(object)), tmp_path)
    saved = load_scores(tmp_path)
    np.testing.assert_allclose(saved["null_p95"], data["null_p95"])
    assert _hatched(figures.plot_layer_curves(saved, "rsa").axes[0])
