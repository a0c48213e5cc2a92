"""The shared cells of the method report notebooks: header line and training curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from workbench.reports.notebook_cells import header_text, show_training_curves  # noqa: E402

CARD = {"architecture": "small_cnn", "architecture_kwargs": {"norm": "group"},
        "data": {"name": "digits32", "description": "1,347 / 450 digits"}, "seed": 3, "preset": "micro",
        "config_hash": "0123456789abcdef", "wall_time_s": 12.4, "device": "cpu"}


def test_header_names_every_card_field_then_the_details(tmp_path):
    assert header_text(tmp_path, CARD, "Budget 5 %.") == (
        f"**Run** `{tmp_path}`: `small_cnn` {{'norm': 'group'}} trained on `digits32` (1,347 / 450 digits; seed 3, "
        "preset `micro`, config hash `0123456789ab`, 12 s of training in all on cpu). Budget 5 %.")
    bare = header_text(tmp_path, {**CARD, "architecture_kwargs": {}})
    assert bare.startswith(f"**Run** `{tmp_path}`: `small_cnn` trained on")


def _metrics(folder, values):
    folder.mkdir(parents=True)
    rows = "".join(f"{step},0,{split},loss,{v}\n" for step, (split, v) in enumerate(values, 1))
    (folder / "metrics.csv").write_text("step,epoch,split,metric,value\n" + rows)


def test_training_curves_of_the_trained_phases_only(tmp_path, monkeypatch):
    monkeypatch.setattr(plt, "show", lambda: None)
    _metrics(tmp_path / "phases" / "stage1", [("train", 2.0), ("test", 1.5)])
    _metrics(tmp_path / "phases" / "stage2", [("train", 1.0)])
    fig = show_training_curves(tmp_path, phases=("stage1", "absent", "stage2"), metrics=("loss",))
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["stage1 (train)", "stage1 (test)", "stage2 (train)"]
    assert list(lines[1].get_ydata()) == [1.5] and list(lines[2].get_xdata()) == [1]
    assert show_training_curves(tmp_path, phases=("absent",)) is None
    plt.close("all")
