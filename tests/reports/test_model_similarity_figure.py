"""compare-models: one summary line for the layer pairs without a score, and heatmaps whose
blank cells are explained in a legend, with no grid lines over the cells."""

import logging

import numpy as np
import pytest
import torch
from torch import nn

from workbench.analysis.model_comparison import compare_models, unscored_summary
from workbench.data.stimuli import StimulusSet
from workbench.models import wrap_model
from workbench.reports.model_comparison import plot_model_similarity


class _SilentOnDarkImages(nn.Module):
    """Zero output for the darker half of the images: zero-variance patterns, so RSA is undefined."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.gate = nn.Identity()
        self.gate2 = nn.Identity()

    def forward(self, x):
        lit = (x.mean(dim=(1, 2, 3)) > x.mean(dim=(1, 2, 3)).median()).float()
        return self.gate2(self.gate(self.conv(x) * lit[:, None, None, None]))


@pytest.fixture
def stimuli(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 16, 16, 3), dtype=np.uint8)
    return StimulusSet.from_arrays(list(images), [f"s{i}" for i in range(12)])


def test_unscored_pairs_are_one_warning_and_a_legend_entry(stimuli, caplog):
    torch.manual_seed(0)
    dense = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    silent = wrap_model(_SilentOnDarkImages(), ["conv", "gate", "gate2"], input_size=16, name="silent")
    other = wrap_model(dense, ["0", "1"], input_size=16, name="dense")
    with caplog.at_level(logging.WARNING, logger="workbench"):
        sim = compare_models(silent, other, stimuli)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("silent vs dense: rsa: 4 of 6 layer pairs unscored (")
    assert int(np.isnan(sim.sel(metric="rsa")).sum()) == 4
    assert sim.attrs["unscored_rsa"].startswith("rsa: 4 of 6 layer pairs unscored")
    assert "unscored_cka" not in sim.attrs
    fig = plot_model_similarity(sim, "rsa")
    ax = fig.axes[0]
    assert not any(line.get_visible() for line in ax.get_xgridlines() + ax.get_ygridlines())
    legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert len(legend) == 1 and legend[0].replace("\n", " ").startswith("blank: no score; rsa: 4 of 6")
    assert not plot_model_similarity(sim, "cka").legends  # nothing blank, no legend


def test_unscored_summary_counts_pairs_and_distinct_reasons():
    summary = unscored_summary({"rsa": ["a", "b", "a"]}, 9)
    assert summary == {"rsa": "rsa: 3 of 9 layer pairs unscored (a) [first of 2 distinct reasons]"}
