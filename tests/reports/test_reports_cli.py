"""``workbench score | report | figures | demo``: arguments reach the library, failures exit
non-zero with one line naming the cause."""

from pathlib import Path

import numpy as np
import pytest

from workbench.analysis import load_scores, save_scores
from workbench.cli import main
from workbench.reports import NotebookError

REPO = Path(__file__).resolve().parents[2]
MIRROR = REPO.parent / "shared" / "data"


def test_figures_command_redraws_a_saved_run(scores, tmp_path, capsys):
    save_scores(scores.sel(metric=["rsa"]), tmp_path)
    assert main(["figures", str(tmp_path), "--out", str(tmp_path / "figs")]) == 0
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert "layer_curves_rsa.png" in names and "family_comparison.svg" in names
    assert f"wrote {len(names)} files to {tmp_path / 'figs'}" in capsys.readouterr().out


def test_figures_command_without_scores_fails_with_one_line(tmp_path, capsys):
    assert main(["figures", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("workbench figures: error:") and "no scores file" in err and "\n" not in err


@pytest.mark.parametrize("command", ["score", "report"])
def test_execution_options_reach_the_sweep(command, scores, tmp_path, monkeypatch):
    seen = {}

    def fake(models, datasets, out, **kwargs):
        seen.update(models=models, datasets=datasets, out=out, **kwargs)
        if command == "report":
            return Path(out) / "report.html"
        return scores

    target = "workbench.reports.study.run_study" if command == "score" else "workbench.reports.demo.run_report"
    monkeypatch.setattr(target, fake)
    argv = [command, "--models", "resnet18", "sew_resnet18", "--datasets", "cowley2023_v4", "--out", str(tmp_path),
            "--metrics", "rsa", "cka", "--dask", "local:2", "--force", "--weights", "imagenet",
            "--protocol", "bootstrap=10", "--protocol", "zscore=false"]
    assert main(argv) == 0
    assert seen == {
        "models": ["resnet18", "sew_resnet18"], "datasets": ["cowley2023_v4"], "out": str(tmp_path),
        "metrics": ["rsa", "cka"], "weights": "imagenet", "protocol": {"bootstrap": 10, "zscore": False},
        "executor": "local:2", "force": True,
    }


def test_defaults_are_serial_random_weights_and_all_metrics(scores, tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr("workbench.reports.study.run_study",
                        lambda models, datasets, out, **kw: seen.update(kw) or scores)
    assert main(["score", "--models", "resnet18", "--datasets", "cowley2023_v4", "--out", str(tmp_path)]) == 0
    assert seen == {"metrics": None, "weights": "random", "protocol": {}, "executor": "serial", "force": False}


def test_malformed_protocol_override_is_named(tmp_path, capsys):
    argv = ["score", "--models", "resnet18", "--datasets", "x", "--out", str(tmp_path), "--protocol", "bootstrap"]
    assert main(argv) == 1
    assert "--protocol expects FIELD=VALUE, found 'bootstrap'" in capsys.readouterr().err


def test_failing_report_exits_non_zero_naming_the_cell(tmp_path, monkeypatch, capsys):
    def failing(*args, **kwargs):
        raise NotebookError(tmp_path / "report.ipynb", cell_index=3, execution_count=2,
                            source="scores = run_study(models)", ename="DataError", evalue="bad file")

    monkeypatch.setattr("workbench.reports.demo.run_report", failing)
    assert main(["report", "--models", "resnet18", "--datasets", "cowley2023_v4", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "notebook cell 3 (In [2]: 'scores = run_study(models)') raised DataError: bad file" in err
    assert str(tmp_path / "report.ipynb") in err


@pytest.mark.slow
@pytest.mark.skipif(not (MIRROR / "SHA256SUMS").is_file(), reason="needs the local data mirror ../shared/data")
def test_demo_writes_report_figures_and_scores(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_MIRROR", str(MIRROR))
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data_cache"))
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    for name in ("report.html", "report.ipynb", "scores.nc", "scores.csv", "rdms.nc"):
        assert (out / name).is_file(), name
    html = (out / "report.html").read_text()
    assert "Weights: random initialisation" in html
    scores = load_scores(out)
    assert list(scores.time_steps.values) == [4, 0, 0]  # the study's T for the SNN
    assert list(scores.model.values) == ["sew_resnet18", "resnet18", "deit_tiny"]
    assert set(scores.family.values) == {"snn", "cnn", "vit"}
    assert set(scores.dataset.values) == {"kriegeskorte2008_92", "cowley2023_v4"}
    # every model has a best-layer score for every applicable (region, metric); a random SNN
    # may leave single layers unscored (no spikes at all), which its `error` then explains
    best = scores.score.max("layer")
    assert bool(np.isfinite(best).where(scores.applicable, True).all()), scores.error.values
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"family_comparison.png", "metric_rank_agreement.png", "layer_curves_rsa.png"} <= figures
    assert sum(name.startswith("rdm_") and name.endswith(".png") for name in figures) == 6


def test_demo_passes_its_fixed_choices_and_overrides(tmp_path, monkeypatch):
    seen = {}

    def fake(models, datasets, out, **kwargs):
        seen.update(models=models, datasets=datasets, out=out, **kwargs)
        return Path(out) / "report.html"

    monkeypatch.setattr("workbench.reports.demo.run_report", fake)
    assert main(["demo", "--out", str(tmp_path), "--protocol", "time_steps=3", "--dask", "local:2"]) == 0
    assert seen == {"models": ("sew_resnet18", "resnet18", "deit_tiny"),
                    "datasets": ("kriegeskorte2008_92", "cowley2023_v4"), "out": str(tmp_path),
                    "weights": "random", "protocol": {"time_steps": 3}, "executor": "local:2", "force": False}
