"""Study presets (``workbench.studies``), the published scores, largest-first scheduling and
``workbench study run``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from workbench.analysis.execution import Unit, largest_first
from workbench.analysis.sweeps import unit_costs
from workbench.cli import main
from workbench.errors import ValidationError, WorkbenchError
from workbench.models import list_models, model_study_name, study_models
from workbench.studies import Study, list_studies, load_paper_scores, load_study

LAYERS_FILE = Path(__file__).parents[2] / "workbench" / "models" / "study" / "huang2023_layers.json"
PAPER = ["svcca", "tsvd_regression", "rsa"]
TINY_PROTOCOL = {"svcca_n_components": 4, "tsvd_n_components": 4, "batch_size": 16, "time_steps": 2}


def tiny_dataset_writer():
    """``write_tiny_dataset`` of the reports tests' conftest (a 16-image recording, ``loader: local``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("reports_conftest", Path(__file__).parents[1] / "reports" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_tiny_dataset


def write_study(folder: Path, **fields) -> Path:
    """A user's study YAML in ``folder`` (a small valid study, updated by ``fields``)."""
    study = {"name": "mine", "models": ["cornet_z"], "datasets": ["cowley2023_v4"], "metrics": ["rsa"]}
    study.update(fields)
    path = folder / "mine.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_the_huang2023_preset_holds_the_papers_grid_and_protocol():
    assert "huang2023" in list_studies()
    study = load_study("huang2023")
    assert isinstance(study, Study) and study.name == "huang2023" and study.weights == "imagenet"
    assert study.datasets == ("allen2019_neuropixels_natural_scenes", "chang2021_face_am", "majajhong2015")
    assert study.run_metrics(paper_only=True) == PAPER
    assert study.run_metrics() == PAPER + ["cka"]
    assert study.run_protocol(paper_only=True)["permutations"] == 0
    assert study.run_protocol()["permutations"] == 100
    assert study.run_protocol()["reduce_neural_for"] == ["allen2019_neuropixels_natural_scenes"]
    assert Path(study.source) == Path(__file__).parents[2] / "workbench" / "studies" / "huang2023.yaml"


def test_the_presets_81_models_are_the_zoos_names_of_the_studys_networks():
    models = load_study("huang2023").models
    assert len(models) == 81 and len(set(models)) == 81
    assert list(models) == study_models()  # the study's order: SNNs, CNNs, ViTs
    zoo = set(list_models())
    assert all(name in zoo and model_study_name(name) == name for name in models)


@pytest.mark.parametrize(("fields", "message"), [
    ({"modles": ["cornet_z"]}, "Study has no field 'modles'; did you mean 'models'?"),
    ({"models": ["resnet19"]}, "models: unknown model 'resnet19'"),
    ({"metrics": ["rsa", "svca"]}, "metrics: unknown metric 'svca'; did you mean 'svcca'?"),
    ({"added_metrics": ["ckaa"]}, "added_metrics: unknown metric 'ckaa'; did you mean 'cka'?"),
    ({"protocol": {"timesteps": 8}}, "protocol: Protocol has no field 'timesteps'; did you mean 'time_steps'?"),
    ({"added_protocol": {"permutations": -1}}, "added_protocol: Protocol.permutations must be >= 0"),
    ({"datasets": ["cowley2023"]}, "datasets: unknown dataset 'cowley2023'"),
    ({"models": "cornet_z"}, "Study.models must be a comma-separated list, found 'cornet_z'"),
    ({"paper_scores": "nowhere.csv"}, "paper_scores: "),
    ({"source": "x"}, "field 'source' is set by the loader"),
])
def test_a_bad_field_is_named_with_the_file(fields, message, tmp_path):
    path = write_study(tmp_path, **fields)
    with pytest.raises(ValidationError) as info:
        load_study(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value), str(info.value)


def test_a_missing_field_an_unknown_preset_and_bad_yaml_are_refused(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "models": ["cornet_z"], "datasets": ["cowley2023_v4"]}))
    with pytest.raises(ValidationError, match=rf"^{path}: field 'metrics' is missing"):
        load_study(path)
    path.write_text("name: [unclosed")
    with pytest.raises(ValidationError, match=rf"^{path}: not valid YAML"):
        load_study(path)
    with pytest.raises(ValidationError, match="unknown study 'huang2024'; did you mean 'huang2023'?"):
        load_study("huang2024")


def test_a_users_study_reads_its_paths_relative_to_its_file(tmp_path, monkeypatch):
    manifest = tiny_dataset_writer()(tmp_path)
    (tmp_path / "scores.csv").write_text("# mine\nmodel,dataset,metric,score\ncornet_z,tiny,rsa,0.25\n")
    path = write_study(tmp_path, datasets=[manifest.name], weights="random", protocol=TINY_PROTOCOL,
                       added_metrics=["cka"], paper_scores="scores.csv", paper_datasets={"tiny": "tiny_v1"})
    monkeypatch.chdir("/")
    study = load_study(str(path))
    assert study.datasets == (str(manifest.resolve()),) and study.paper_scores == str(tmp_path / "scores.csv")
    assert study.run_metrics() == ["rsa", "cka"] and study.run_protocol()["time_steps"] == 2
    frame = load_paper_scores(study)
    assert frame.to_dict("records") == [{"model": "cornet_z", "dataset": "tiny_v1", "metric": "rsa", "score": 0.25}]
    assert frame.attrs["source"] == "mine"


def test_largest_first_orders_by_cost_and_keeps_ties_in_order():
    units = [Unit(m, d, "h") for m in ("a", "b", "c") for d in ("x", "y")]
    cost = {("a", "x"): 1, ("a", "y"): 5, ("b", "x"): 3, ("b", "y"): 3, ("c", "x"): 0, ("c", "y"): 9}
    ordered = largest_first(units, lambda u: cost[u.model, u.dataset])
    assert [(u.model, u.dataset) for u in ordered] == [("c", "y"), ("a", "y"), ("b", "x"), ("b", "y"),
                                                        ("a", "x"), ("c", "x")]


def test_unit_costs_are_layer_sizes_times_stimuli_without_building_a_network():
    layers = json.loads(LAYERS_FILE.read_text())["models"]

    def size(name):  # the study's output shapes; an entry recorded as [-1] reads the previous layer's input
        total, previous = 0, None
        for _, shape, _, _ in layers[name]["layers"]:
            shape = [previous[0]] if shape == [-1] else shape
            total, previous = total + math.prod(shape), shape
        return total

    costs = unit_costs(["resnet18", "sew_resnet18", "wb_test:net"], ["cowley2023_v4", "kriegeskorte2008_92"],
                       time_steps=4)
    assert costs[("resnet18", "cowley2023_v4")] == size("resnet18") * 640
    assert costs[("resnet18", "kriegeskorte2008_92")] == size("resnet18") * 92
    assert costs[("sew_resnet18", "cowley2023_v4")] == size("sew_resnet18") * 4 * 640
    assert costs[("wb_test:net", "cowley2023_v4")] == 0  # not a study network: after the others


def test_a_sweep_hands_its_units_to_the_runner_largest_first(monkeypatch):
    import workbench.analysis.sweeps as sweeps
    from workbench.analysis import sweep

    seen = []
    monkeypatch.setattr(sweeps, "run_units", lambda units, *a, **k: seen.extend(units) or {})
    with pytest.raises(WorkbenchError, match="no model produced any score"):  # the runner computed nothing
        sweep(["cornet_z", "resnet18", "sew_resnet18"], ["kriegeskorte2008_92", "cowley2023_v4"],
              metrics=["rsa"], progress=False)
    costs = unit_costs(["cornet_z", "resnet18", "sew_resnet18"], ["kriegeskorte2008_92", "cowley2023_v4"])
    assert len(seen) == 6 and [costs[u.model, u.dataset] for u in seen] == sorted(costs.values(), reverse=True)


def test_the_papers_scores_are_a_tidy_table_under_the_zoos_names():
    frame = load_paper_scores("huang2023")
    assert list(frame.columns) == ["model", "dataset", "metric", "score"] and frame.shape == (729, 4)
    assert set(frame["model"]) == set(study_models())
    assert set(frame["dataset"]) == set(load_study("huang2023").datasets) and set(frame["metric"]) == set(PAPER)
    assert frame.groupby(["model", "dataset", "metric"]).size().eq(1).all()
    row = frame[(frame.model == "alexnet") & (frame.dataset == "allen2019_neuropixels_natural_scenes")
                & (frame.metric == "svcca")]
    assert row["score"].tolist() == [0.6334]  # the file's first row
    assert "arXiv 2303.06060" in frame.attrs["source"] and "Grasshlw/SNN-Neural-Similarity" in frame.attrs["source"]


@pytest.mark.parametrize(("line", "message"), [
    ("resnet19,allen,rsa,0.5", "line 3: model 'resnet19' is not known; did you mean 'resnet18'"),
    ("resnet18,allan,rsa,0.5", "line 3: dataset 'allan' is not known; did you mean 'allen'?"),
    ("resnet18,allen,rsa,high", "line 3: score 'high' is not a number"),
])
def test_an_unknown_name_in_the_scores_file_is_named_with_its_line(line, message, tmp_path):
    (tmp_path / "scores.csv").write_text(f"# source\nmodel,dataset,metric,score\n{line}\n")
    study = load_study(write_study(tmp_path, paper_scores="scores.csv",
                                   paper_datasets={"allen": "allen2019_neuropixels_natural_scenes"}))
    with pytest.raises(ValidationError) as info:
        load_paper_scores(study)
    assert str(info.value).startswith(f"{tmp_path / 'scores.csv'}: ") and message in str(info.value)


@pytest.mark.parametrize(("extra", "metrics", "permutations", "weights"), [
    ([], PAPER + ["cka"], 100, "imagenet"),
    (["--paper-metrics", "--weights", "random"], PAPER, 0, "random"),
    (["--weights", "resnet18=random", "--protocol", "permutations=7"], PAPER + ["cka"], 7,
     {"cornet_z": "imagenet", "resnet18": "random"}),
])
def test_study_run_passes_the_presets_choices_and_overrides_to_the_sweep(extra, metrics, permutations, weights,
                                                                        tmp_path, monkeypatch):
    import workbench.cli.studies as cli
    import workbench.reports as reports

    seen = {}
    monkeypatch.setattr(reports, "run_study", lambda models, datasets, out, **kw: seen.update(kw, models=models))
    monkeypatch.setattr(reports, "run_report", lambda models, datasets, out, **kw: seen.update(report=kw) or
                        Path(out) / "report.html")
    monkeypatch.setattr("workbench.analysis.load_scores", lambda run_dir: None)
    monkeypatch.setattr(cli, "finish", lambda args, scores: 0)
    published = []  # the weights are checked to be obtainable before any extraction (no download here)
    monkeypatch.setattr("workbench.analysis.checks.check_published_weights", published.append)
    argv = ["study", "run", "huang2023", "--models", "cornet_z", "resnet18", "--datasets", "cowley2023_v4",
            "--out", str(tmp_path / "run"), *extra]
    assert main(argv) == 0
    assert seen["models"] == ["cornet_z", "resnet18"] and seen["metrics"] == metrics
    assert seen["protocol"]["permutations"] == permutations and seen["weights"] == weights
    assert seen["rdms"] is False and seen["report"]["force"] is False and seen["checked"]["metrics"] == metrics
    imagenet = [m for m in ("cornet_z", "resnet18") if (weights if isinstance(weights, str) else weights[m]) == "imagenet"]
    assert published == imagenet


@pytest.mark.slow
def test_study_run_scores_a_users_study_and_resumes_without_recomputing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data_cache"))
    manifest = tiny_dataset_writer()(tmp_path)
    study = write_study(tmp_path, models=["cornet_z", "sew_resnet8"], datasets=[manifest.name], metrics=["rsa"],
                        added_metrics=["cka"], protocol=TINY_PROTOCOL, added_protocol={"permutations": 5})
    out = tmp_path / "run"
    assert main(["study", "run", str(study), "--out", str(out)]) == 0, capsys.readouterr().err
    first = capsys.readouterr()
    assert "2 model(s) x 1 dataset(s) = 2 unit(s)" in first.out and f"wrote {out.resolve()}/report.html" in first.out
    assert "units: 100%" in first.err and "2/2" in first.err
    commits = {p.name: (p.stat().st_mtime_ns, p.read_text()) for p in (out / "store" / "units").glob("*.commit.json")}
    assert len(commits) == 2
    from workbench.analysis import load_scores

    scores = load_scores(out)
    assert list(scores["model"].values) == ["cornet_z", "sew_resnet8"] and list(scores["metric"].values) == ["rsa", "cka"]
    assert "null_mean" in scores and (out / "report.html").is_file()
    # the second run loads both units: no commit is rewritten, the bar starts complete
    assert main(["study", "run", str(study), "--out", str(out)]) == 0
    again = {p.name: (p.stat().st_mtime_ns, p.read_text()) for p in (out / "store" / "units").glob("*.commit.json")}
    assert again == commits
    assert "units: 100%" in capsys.readouterr().err
