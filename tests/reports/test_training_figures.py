"""Brain similarity against sparsity in the training reports (issue 30, point 16): chance band,
noise ceiling and error bars on an axis from 0, and networks named, never by absolute paths."""

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer

from workbench.reports import figures
from workbench.reports.training_figures import plot_similarity_against_sparsity, relabel_models

RUNS = ["/abs/runs/lats/dense", "/abs/runs/lats/epoch3", "/abs/runs/lats/final", "/abs/runs/other"]


def _runs_scores(scores):
    data = scores.assign(null_mean=0.2 + 0 * scores["score"], null_p95=0.3 + 0 * scores["score"])
    return data.assign_coords(model=RUNS)


def test_similarity_against_sparsity_has_chance_ceiling_error_bars_and_short_names(scores):
    data = _runs_scores(scores)
    sparsity = {RUNS[0]: 0.0, RUNS[2]: 0.8, RUNS[1]: 0.4}
    fig = plot_similarity_against_sparsity(data, sparsity, labels={RUNS[0]: "dense"})
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [
        "cowley2023_v4/V4: rsa", "cowley2023_v4/V4: cka", "cowley2023_v4/V4: svcca",
        "kriegeskorte2008_92/IT (monkey): rsa"]  # applicable (region, metric) pairs only
    ax = panels[0]
    bars = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    x, y = bars.lines[0].get_data()
    np.testing.assert_allclose(x, [0, 40, 80])  # sorted by sparsity, in %
    cell = data.sel(region="cowley2023_v4/V4", metric="rsa")
    for xi, yi, run in zip(x, y, [RUNS[0], RUNS[1], RUNS[2]]):
        values = cell["score"].sel(model=run).values
        k = np.nanargmax(values)
        assert yi == values[k]
        low = bars.lines[2][0].get_segments()[list(x).index(xi)][0][1]
        assert low == cell["ci_low"].sel(model=run).values[k]
    band = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(band) == 1 and np.isclose(band[0].get_paths()[0].vertices[:, 1].min(), 0.2)
    assert any(line.get_linestyle() == "--" and line.get_ydata()[0] == 0.95 for line in ax.get_lines())
    assert ax.get_ylim()[0] <= 0 and ax.get_ylim()[1] >= 0.95  # from 0 to the ceiling at least
    legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert {"best layer (bootstrap CI)", "chance (null mean to 95th pct.)", "noise ceiling"} <= set(legend)
    title = fig.get_suptitle()
    assert "dense 0%" in title and "epoch3 40%" in title and "/abs" not in title


def test_relabelled_scores_name_networks_in_the_legends_not_paths(scores):
    data = relabel_models(_runs_scores(scores), {RUNS[0]: "DST", RUNS[1]: "spike-only"})
    assert list(data["model"].values) == ["DST", "spike-only", RUNS[2], RUNS[3]]
    fig = figures.plot_layer_curves(data.isel(model=[0, 1]), "rsa")
    legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert legend[0].startswith("DST (SNN") and not any("/abs" in t for t in legend)
