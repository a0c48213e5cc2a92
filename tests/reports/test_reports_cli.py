"""``workbench score | report | figures | demo``: arguments reach the library, failures exit
non-zero with one line naming the cause."""

import logging
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
    monkeypatch.setattr("workbench.analysis.checks.check_published_weights", lambda model: None)  # no download
    argv = [command, "--models", "resnet18", "sew_resnet18", "--datasets", "cowley2023_v4", "--out", str(tmp_path),
            "--metrics", "rsa", "cka", "--dask", "local:2", "--force", "--weights", "imagenet",
            "--protocol", "bootstrap=10", "--protocol", "zscore=false"]
    assert main(argv) == 0
    if command == "score":  # the arguments checked once, by the CLI, and that check passed on
        checked = seen.pop("checked")
        assert checked["weights"] == {"resnet18": "imagenet", "sew_resnet18": "imagenet"}
        assert checked["protocol"].bootstrap == 10 and checked["protocol"].zscore is False
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
    assert seen.pop("checked")["weights"] == {"resnet18": None}
    assert seen == {"metrics": None, "weights": "random", "protocol": {}, "executor": "serial", "force": False}


def test_score_checks_the_study_once(scores, tmp_path, monkeypatch):
    from workbench.analysis import checks

    calls = []
    check = checks.check_study
    monkeypatch.setattr(checks, "check_study", lambda *a, **kw: calls.append(a) or check(*a, **kw))
    monkeypatch.setattr("workbench.analysis.sweeps.sweep", lambda *a, **kw: scores)
    monkeypatch.setattr("workbench.reports.study.best_layer_rdms", lambda *a, **kw: [])
    assert main(["score", "--models", "resnet18", "--datasets", "cowley2023_v4", "--out", str(tmp_path / "run")]) == 0
    assert len(calls) == 1
    assert load_scores(tmp_path / "run").identical(load_scores(save_scores(scores, tmp_path / "direct")[0]))


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
@pytest.mark.demo  # `make test-demo`, in CI after `make test`
@pytest.mark.timeout(1800)
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
    # the SNN is scored per time step too (from the same forward pass), and the report shows it
    per_step = scores.score_per_step.sel(model="sew_resnet18")
    assert per_step.sizes["time_step"] == 4 and bool(np.isfinite(per_step).any())
    assert not np.isfinite(scores.score_per_step.sel(model=["resnet18", "deit_tiny"])).any()
    assert "snn_per_step_rsa.png" in figures and "snn_per_step_rsa" in html
    # heatmaps for every region: 3 models x (2 Kriegeskorte IT regions + Cowley V4)
    assert sum(name.startswith("rdm_") and name.endswith(".png") for name in figures) == 9


def test_demo_passes_its_fixed_choices_and_overrides(tmp_path, monkeypatch):
    seen = {}

    def fake(models, datasets, out, **kwargs):
        seen.update(models=models, datasets=datasets, out=out, **kwargs)
        return Path(out) / "report.html"

    monkeypatch.setattr("workbench.reports.demo.run_report", fake)
    assert main(["demo", "--out", str(tmp_path), "--protocol", "time_steps=3", "--dask", "local:2"]) == 0
    assert seen == {"models": ("sew_resnet18", "resnet18", "deit_tiny"),
                    "datasets": ("kriegeskorte2008_92", "cowley2023_v4"), "out": str(tmp_path),
                    "weights": "random", "protocol": {"time_resolved": True, "time_steps": 3},
                    "executor": "local:2", "force": False}


# -- issue 19, point 1: failures visible, early and non-zero; point 4: your own model ----------

import json
import signal
import subprocess
import sys

import pandas as pd
import torch
from torch import nn

from workbench.cli import EXIT_BROKEN_PIPE, EXIT_PARTIAL, build_parser

PLUGIN = '''
from torch import nn
from workbench.models import wrap_model


def tiny():
    """A 3-layer CNN for 32 px inputs."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
    return wrap_model(net, ["0", "1", "2"], input_size=32, name="tiny")


def mismatched():
    """Builds, but its forward pass fails on 32 px images (a Linear sized for another input)."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(10, 2))
    return wrap_model(net, ["0", "2"], input_size=32, name="mismatched")


def broken():
    raise RuntimeError("cannot build this network")
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "wb_test_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "wb_test_plugin"


def _one_error_line(capsys, command):
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"workbench {command}: error:") and "\n" not in err, err
    return err


def test_help_documents_the_exit_codes():
    text = build_parser().format_help()
    assert "exit codes:" in text and f"{EXIT_PARTIAL}    results written, but some units" in text
    assert "--allow-failures" in text


@pytest.mark.parametrize("command", ["score", "report"])
def test_every_argument_is_checked_before_any_work(command, tmp_path, monkeypatch, capsys):
    def never(*args, **kwargs):
        raise AssertionError("the study started")

    monkeypatch.setattr("workbench.reports.study.run_study", never)
    monkeypatch.setattr("workbench.reports.demo.run_report", never)
    base = [command, "--models", "resnet18", "--datasets", "cowley2023_v4", "--out", str(tmp_path / "run")]
    cases = [
        (["--protocol", "time_steps=abc"], "--protocol 'time_steps=abc': time_steps expects an integer, found 'abc'"),
        (["--protocol", "zscore=maybe"], "zscore expects true or false"),
        (["--protocol", "time_step=4"], "Protocol has no field 'time_step'"),
        (["--protocol", "bootstrap=-1"], "bootstrap must be >= 0"),
        (["--metrics", "rsa", "psnr"], "unknown ['psnr']"),
        (["--layers", "layer9"], "--layers ['layer9']: no such module in resnet18; expected layer specs"),
        (["--layers", "fc:inptu"], "--layers: layer spec 'fc:inptu' is not valid; expected"),
        (["--device", "tpu"], "--device 'tpu' is not valid; expected cpu, cuda or cuda:N"),
        (["--weights", str(tmp_path / "absent.pth")], "does not exist"),
        (["--weights", "alexnet=x.pth"], "--weights names model(s) ['alexnet'] that are not in --models"),
        (["--dask", "local:two"], "--dask: executor='local:two' is not valid; expected \"serial\", \"local:N\""),
    ]
    for extra, expected in cases:
        assert main(base + extra) == 1, extra
        assert expected in _one_error_line(capsys, command), extra
    assert main([command, "--models", "resnet19", "alexnet", "--datasets", "cowley2023_v4", "--out",
                 str(tmp_path / "run")]) == 1
    assert "unknown model 'resnet19'; did you mean 'resnet18'" in _one_error_line(capsys, command)
    assert main([command, "--models", "resnet18", "--datasets", "cowley2023", "--out", str(tmp_path / "run")]) == 1
    assert "cowley2023" in _one_error_line(capsys, command)
    existing = tmp_path / "a_file"
    existing.write_text("x")
    assert main([command, "--models", "resnet18", "--datasets", "cowley2023_v4", "--out", str(existing)]) == 1
    assert f"--out {existing} is an existing file; expected a directory" in _one_error_line(capsys, command)
    assert not (tmp_path / "run").exists()


def test_protocol_values_are_parsed_strictly_and_normalised_before_hashing():
    from workbench.analysis import Protocol
    from workbench.cli.study import parse_protocol

    assert parse_protocol(["zscore=0"]) == parse_protocol(["zscore=false"]) == {"zscore": False}
    assert Protocol(zscore=0).fingerprint == Protocol(zscore=False).fingerprint == \
        Protocol().replace(**parse_protocol(["zscore=no"])).fingerprint
    assert Protocol(time_steps=8.0).to_json() == Protocol(time_steps=8).to_json()
    assert parse_protocol(["reduce_neural_for=a, b", "reliability_threshold=a:0.3"]) == {
        "reduce_neural_for": ["a", "b"], "reliability_threshold": {"a": 0.3}}
    from workbench.errors import ValidationError

    with pytest.raises(ValidationError, match="Protocol.zscore must be true or false"):
        Protocol(zscore="maybe")
    with pytest.raises(ValidationError, match="Protocol.time_steps must be an integer"):
        Protocol(time_steps=2.5)


@pytest.mark.parametrize("content", ["whole_model", "garbage"])
def test_an_unreadable_weights_file_gives_one_line_naming_it(content, tmp_path, capsys):
    path = tmp_path / f"{content}.pth"
    if content == "whole_model":
        torch.save(nn.Linear(2, 2), path)
    else:
        path.write_bytes(b"not a checkpoint at all" * 8)
    argv = ["score", "--models", "cornet_z", "--datasets", "cowley2023_v4", "--out", str(tmp_path / "run"),
            "--weights", str(path)]
    assert main(argv) == 1
    err = _one_error_line(capsys, "score")
    assert f"checkpoint {path}" in err and "torch.save(model.state_dict(), PATH)" in err
    assert "Check the documentation of torch.load" not in err
    if content == "whole_model":
        assert "pickles the global torch.nn.modules.linear.Linear" in err


def test_weights_per_model(tmp_path, monkeypatch, capsys):
    from workbench.models import create

    checkpoint = tmp_path / "cornet_sd.pth"
    torch.save(create("cornet_z", seed=3).module.state_dict(), checkpoint)
    seen = {}
    monkeypatch.setattr("workbench.reports.study.run_study",
                        lambda models, datasets, out, **kw: seen.update(kw) or make_failed_scores())
    base = ["score", "--models", "cornet_z", "alexnet", "--datasets", "cowley2023_v4", "--out", str(tmp_path / "r")]
    # one checkpoint for both: alexnet does not fit it, said before any work
    assert main(base + ["--weights", str(checkpoint)]) == 1
    assert f"--weights for alexnet: checkpoint {checkpoint} does not match AlexNet" in _one_error_line(capsys, "score")
    assert not seen
    main(base + ["--weights", f"cornet_z={checkpoint}", "--allow-failures"])
    assert seen["weights"] == {"cornet_z": str(checkpoint), "alexnet": "random"}


def make_failed_scores():
    from workbench.analysis import merge_scores, new_scores

    part = new_scores(model="alexnet", family="cnn", weights="random(seed=0)", layer_names=[], regions=[],
                      datasets=[], species=[], metrics=["rsa"], error="cowley2023_v4: RuntimeError: x")
    scores = merge_scores([part], attrs={})
    scores.attrs["failed_units"] = json.dumps([{"model": "alexnet", "dataset": "cowley2023_v4",
                                                "error": "RuntimeError: x"}])
    return scores


@pytest.mark.slow
def test_failed_units_exit_3_stay_in_the_csv_and_can_be_tolerated(plugin, tiny_dataset, isolated_caches, capsys,
                                                                  caplog):
    out = isolated_caches / "run"
    # a factory that raises is refused before any work
    assert main(["score", "--models", f"{plugin}:broken", "--datasets", str(tiny_dataset), "--out", str(out)]) == 1
    assert (f"model '{plugin}:broken': its factory raised RuntimeError: cannot build this network"
            in _one_error_line(capsys, "score"))
    argv = ["score", "--models", f"{plugin}:tiny", f"{plugin}:mismatched", "--datasets", str(tiny_dataset),
            "--out", str(out), "--protocol", "svcca_n_components=8", "--protocol", "tsvd_n_components=4"]
    assert main(argv) == EXIT_PARTIAL
    err = capsys.readouterr().err
    assert f"failed: {plugin}:mismatched on {tiny_dataset}: " in err and "mat1 and mat2 shapes cannot be multiplied" in err
    assert err.count("mat1 and mat2 shapes cannot be multiplied") == 1  # the failed unit's error, said once:
    assert not [r for r in caplog.records  # not logged again as a warning beside the "failed:" line
                if r.levelno >= logging.WARNING and "mat1 and mat2 shapes" in r.getMessage()]
    assert "1 of 2 unit(s) (model x dataset) failed" in err
    # SVCCA with 8 + 8 canonical variables cannot fit 16 stimuli: said once, the model not failed
    assert err.count("svcca not applicable: 8 + 8 (one per neuroid, unreduced) canonical variables") == 1
    frame = pd.read_csv(out / "scores.csv", keep_default_na=False)
    broken = frame[frame["model"] == f"{plugin}:mismatched"]
    assert len(broken) == 4 and broken["error"].str.startswith(f"{tiny_dataset}: ").all()  # one row per metric
    assert broken["error"].str.contains("mat1 and mat2 shapes cannot be multiplied").all()
    tiny = frame[frame["model"] == f"{plugin}:tiny"]
    assert set(tiny["layer_name"]) == {"0", "1", "2"} and (tiny["error"] == "").all()
    assert not tiny[tiny["metric"] == "svcca"]["applicable"].astype(str).eq("True").any()
    assert pd.to_numeric(tiny[tiny["metric"] == "cka"]["score"]).notna().all()
    # explicit opt-in: the same run exits 0
    assert main(argv + ["--allow-failures"]) == 0
    assert "tolerated (--allow-failures)" in capsys.readouterr().err


@pytest.mark.slow
def test_a_plugin_model_scores_a_subset_of_layers_on_the_cpu(plugin, tiny_dataset, isolated_caches, capsys):
    out = isolated_caches / "run"
    argv = ["score", "--models", f"{plugin}:tiny", "--datasets", str(tiny_dataset), "--out", str(out),
            "--layers", "2", "0", "--device", "cpu", "--metrics", "rsa", "cka"]
    assert main(argv) == 0, capsys.readouterr().err
    scores = load_scores(out)
    assert list(scores["layer_name"].sel(model=f"{plugin}:tiny").values) == ["0", "2"]
    np.testing.assert_allclose(scores["relative_depth"].sel(model=f"{plugin}:tiny").values, [0.0, 1.0])
    assert np.isfinite(scores["score"].values).all()


def test_cuda_device_is_refused_where_there_is_none(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    argv = ["score", "--models", "resnet18", "--datasets", "cowley2023_v4", "--out", str(tmp_path), "--device", "cuda"]
    assert main(argv) == 1
    assert "--device cuda: no CUDA GPU is available" in _one_error_line(capsys, "score")


def test_cache_clear_of_an_unknown_model_says_nothing_matched(tmp_path, capsys):
    from workbench.activations.cache import StatsCache
    from workbench.metrics import GramStats

    cache = StatsCache(tmp_path / "cache")
    cache.save("a" * 64, GramStats.from_array(np.eye(4)), {"model": "cornet_z", "layer": "V1"})
    assert main(["cache", "clear", "--dir", str(tmp_path / "cache"), "--model", "nosuch"]) == 1
    err = _one_error_line(capsys, "cache")
    assert "no cache entry matched --model 'nosuch'" in err and "nothing removed" in err
    assert "models with entries: cornet_z" in err and len(cache.entries()) == 1


def test_cache_list_into_a_closed_pipe_exits_quietly(tmp_path):
    code = ("import sys, time; from workbench.cli import main; time.sleep(1.5); "
            f"sys.exit(main(['cache', 'list', '--dir', {str(tmp_path)!r}]))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # like `| head -1` exiting before the listing is written
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_BROKEN_PIPE and b"Traceback" not in err and b"BrokenPipe" not in err, err


def test_last_line_of_a_failed_unit_is_the_whole_final_exception():
    from workbench.analysis.sweeps import _last_line

    text = ('Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n    f()\n    ^^^\n'
            "workbench.errors.DataError: checkpoint a.pth is not readable\n\nCheck the documentation")
    assert _last_line(text) == "workbench.errors.DataError: checkpoint a.pth is not readable Check the documentation"


def test_ctrl_c_during_score_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("workbench.cli.study._score", interrupted)
    argv = ["score", "--models", "resnet18", "--datasets", "cowley2023_v4", "--out", str(tmp_path)]
    assert main(argv) == 130
    assert capsys.readouterr().err == "workbench score: interrupted; run the same command again to resume\n"
    assert "130  interrupted (Ctrl-C)" in build_parser().format_help()


def test_sigint_to_a_running_command_exits_130_with_one_line(tmp_path):
    # as from a terminal: a pytest-xdist worker ignores SIGINT, and an ignored signal is inherited
    code = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "import sys, time; import workbench.cli.study as study; from workbench.cli import main; "
            "study._score = lambda args: print('started', flush=True) or time.sleep(60); "
            f"sys.exit(main(['score', '--models', 'm', '--datasets', 'd', '--out', {str(tmp_path)!r}]))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"started\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == b"workbench score: interrupted; run the same command again to resume\n"


@pytest.mark.parametrize("command", [
    ["score", "--models", "resnet18", "--datasets", "cowley2023_v4", "--out", "run"],
    ["report", "--models", "resnet18", "--datasets", "cowley2023_v4", "--out", "run"],
    ["demo"],
    ["compare-models", "resnet18", "alexnet", "--dataset", "cowley2023_v4", "--out", "run"],
])
def test_protocol_takes_several_values_and_can_be_repeated(command):
    args = build_parser().parse_args(command + ["--protocol", "time_steps=8", "permutations=0",
                                                "--protocol", "bootstrap=3", "--device", "cpu"])
    assert args.protocol == ["time_steps=8", "permutations=0", "bootstrap=3"]
    assert build_parser().parse_args(command).protocol == []


def test_run_study_with_a_bad_executor_creates_no_folder(tmp_path):
    from workbench.errors import ValidationError
    from workbench.reports.study import run_study

    with pytest.raises(ValidationError, match="--dask: executor='local:two' is not valid"):
        run_study(["resnet18"], ["cowley2023_v4"], tmp_path / "run", executor="local:two")
    assert not (tmp_path / "run").exists()


def test_a_model_given_as_a_path_is_named_as_a_missing_or_unfinished_run(tmp_path, capsys):
    folder = tmp_path / "runs" / "latz"
    argv = ["score", "--datasets", "cowley2023_v4", "--out", str(tmp_path / "out"), "--models"]
    assert main(argv + [str(folder)]) == 1
    assert f"no run directory {folder} (expected the --out folder of `workbench train`" in _one_error_line(capsys, "score")
    folder.mkdir(parents=True)
    assert main(argv + ["resnet18", str(folder)]) == 1
    assert f"{folder} is a folder but not a finished run directory: no model_card.json" in \
        _one_error_line(capsys, "score")
    assert not (tmp_path / "out").exists()


CHECKPOINT_FACTORY = '''
import os

import torch
from torch import nn
from workbench.models import wrap_model


def net():
    """Loads the checkpoint $WB_TEST_CHECKPOINT names, as a user's factory loads its own."""
    module = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
    module.load_state_dict(torch.load(os.environ["WB_TEST_CHECKPOINT"], weights_only=True))
    return wrap_model(module, ["0", "1", "2"], input_size=32)
'''


def test_a_factory_whose_checkpoint_changed_is_scored_again_and_labelled_by_its_weights(
        tiny_dataset, isolated_caches, monkeypatch, capsys):
    """Issue 30, points 1 and 2: the same command after the factory's checkpoint was overwritten
    recomputes (the unit and the activation cache are keyed by the state dict's sha256), and
    scores.csv labels the network by its weights, never as randomly initialised."""
    from workbench.models import create

    tmp = isolated_caches
    (tmp / "wb_test_checkpoint_factory.py").write_text(CHECKPOINT_FACTORY)
    monkeypatch.syspath_prepend(str(tmp))
    checkpoint = tmp / "net.pth"
    monkeypatch.setenv("WB_TEST_CHECKPOINT", str(checkpoint))
    model = "wb_test_checkpoint_factory:net"

    def score(out):
        argv = ["score", "--models", model, "--datasets", str(tiny_dataset), "--out", str(out),
                "--metrics", "rsa", "--protocol", "permutations=0"]
        assert main(argv) == 0, capsys.readouterr().err
        return pd.read_csv(out / "scores.csv", keep_default_na=False)

    labels = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        torch.save(nn.Sequential(nn.Conv2d(3, 4, 3, stride=2)).state_dict(), checkpoint)
        again, fresh = score(tmp / "run"), score(tmp / f"fresh{seed}")
        pd.testing.assert_series_equal(again["score"], fresh["score"])
        labels.append(f"custom (sha256 {create(model).weights_id[:12]})")
        assert (again["weights"] == labels[-1]).all()
    first = pd.read_csv(tmp / "fresh1" / "scores.csv")["score"]
    assert not np.allclose(first, again["score"]) and labels[0] != labels[1]


def test_the_report_never_calls_a_factorys_own_weights_random(plugin):
    """Issue 30, point 2: the report's weights line for a factory that loads its own weights."""
    from workbench.reports import report_header

    first = report_header([f"{plugin}:tiny"], ["cowley2023_v4"]).splitlines()[0]
    assert first.startswith("**Weights: custom, loaded by each model's own factory**") and "random" not in first
    mixed = report_header([f"{plugin}:tiny", "resnet18"], ["cowley2023_v4"]).splitlines()[0]
    assert mixed == (f"**Weights per model:** {plugin}:tiny: `custom (loaded by its factory)`, "
                     "resnet18: `random (seed=0)`.")


def _without_ten_images(manifest):
    for image in sorted((manifest.parent / "tiny" / "images").iterdir())[:10]:
        image.unlink()
    return str(manifest), "responses to 16 stimuli but 6 images"


def _naming_a_missing_file(manifest):
    import yaml

    fields = yaml.safe_load(manifest.read_text())
    fields["files"].append({"path": "absent.npy"})
    manifest.write_text(yaml.safe_dump(fields))
    return str(manifest), f"file {manifest.parent / 'tiny' / 'absent.npy'} does not exist"


def _provided_by_the_user(manifest):
    """A dataset whose files the user supplies (as majajhong2015's were), not supplied."""
    import yaml

    fields = yaml.safe_load(manifest.read_text())
    del fields["root"]
    fields.update(name="tiny_user", user_provided=True, files=[{"path": "tiny_user/responses.npy"}])
    path = manifest.parent / "tiny_user.yaml"
    path.write_text(yaml.safe_dump(fields))
    return str(path), "tiny_user/responses.npy: dataset tiny_user is provided by the user, not downloaded"


@pytest.mark.parametrize("broken", [_naming_a_missing_file, _without_ten_images, _provided_by_the_user])
def test_missing_data_stop_the_study_before_any_extraction(broken, plugin, tiny_dataset, isolated_caches,
                                                           monkeypatch, capsys):
    """Issue 30, point 4: one line (the traceback only with -v), exit 1, no run directory."""
    monkeypatch.delenv("WORKBENCH_DATA_MIRROR", raising=False)
    monkeypatch.setattr("workbench.activations.extract_stats", lambda *a, **kw: pytest.fail("extraction started"))
    dataset, expected = broken(tiny_dataset)
    out = isolated_caches / "run"
    argv = ["score", "--models", f"{plugin}:tiny", "--datasets", dataset, "--out", str(out)]
    assert main(argv) == 1
    err = _one_error_line(capsys, "score")
    assert err.startswith(f"workbench score: error: --datasets {dataset}: ") and err.count(expected) == 1, err
    assert not out.exists()
    assert main(["-v"] + argv) == 1
    verbose = capsys.readouterr().err
    assert "Traceback (most recent call last)" in verbose and verbose.count(expected) == 2  # traceback + line


def test_published_weights_that_cannot_be_had_stop_the_study_before_any_work(tiny_dataset, isolated_caches,
                                                                            monkeypatch, capsys):
    """Issue 30, point 4: ``--weights imagenet`` offline, without the file."""
    def offline(url, destination):
        raise OSError("no network")

    monkeypatch.setenv("TORCH_HOME", str(isolated_caches / "torch"))
    monkeypatch.setattr("workbench.models.weights._download_url", offline)
    out = isolated_caches / "run"
    argv = ["score", "--models", "cornet_z", "--datasets", str(tiny_dataset), "--out", str(out), "--weights", "imagenet"]
    assert main(argv) == 1
    err = _one_error_line(capsys, "score")
    assert err.startswith("workbench score: error: --weights imagenet for cornet_z: cannot download the published "
                          "weights (OSError: no network)") and "put the file at" in err
    assert not out.exists()


def test_a_run_that_scores_nothing_writes_no_result_file(plugin, tiny_dataset, isolated_caches, capsys):
    """Issue 30, point 4: a failure that only extraction finds: its message once, exit 1, no
    scores.csv, scores.nc or store/."""
    out = isolated_caches / "run"
    argv = ["score", "--models", f"{plugin}:mismatched", "--datasets", str(tiny_dataset), "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err.replace("\r", "\n")  # the progress bar's lines, then the error
    assert "Traceback" not in err and err.count("mat1 and mat2 shapes cannot be multiplied") == 1
    err = err.strip().splitlines()[-1]
    assert err.startswith("workbench score: error: ")
    assert "no model produced any score, so no result file was written" in err
    assert not out.exists()  # not even the folder: the run made it and wrote nothing into it


def _subcommands(parser, path=""):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{path} {name}".strip(), sub
                yield from _subcommands(sub, f"{path} {name}")


def test_every_subcommand_help_has_a_description_and_an_example():
    """Issue 30, point 17: and `score --help` names run directories as models."""
    commands = dict(_subcommands(build_parser()))
    assert {"score", "train", "compare-models", "data info", "study run", "cache clear"} <= set(commands)
    for command, parser in commands.items():
        text = parser.format_help()
        assert parser.description and " ".join(parser.description.split()) in " ".join(text.split()), command
        assert "example:\n  workbench " in text or "examples:\n  workbench " in text, command
    score = " ".join(commands["score"].format_help().split())
    assert "training run directories (the --out folder of `workbench train`" in score
    assert "workbench score --models runs/lats resnet18" in score


def test_device_and_datasets_are_spelled_alike_by_every_command(capsys):
    """Issue 30, point 17: --device cpu|cuda|cuda:N for train as for score and compare-models;
    compare-models takes --datasets as score does (--dataset stays, unlisted)."""
    parser = build_parser()
    for argv in (["train", "lats", "--out", "x"], ["score", "--models", "m", "--datasets", "d", "--out", "x"],
                 ["compare-models", "a", "b", "--datasets", "d", "--out", "x"]):
        assert parser.parse_args(argv + ["--device", "cpu"]).device == "cpu"
        assert parser.parse_args(argv + ["--device", "cuda:0"]).device in ("cuda", "cuda:0")
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "lats", "--out", "x", "--device", "tpu"])
    assert "argument --device: 'tpu' is not valid; expected cpu, cuda or cuda:N" in capsys.readouterr().err
    assert parser.parse_args(["compare-models", "a", "b", "--dataset", "d", "--out", "x"]).dataset == "d"
    compare = " ".join(dict(_subcommands(parser))["compare-models"].format_help().split())
    assert "--datasets DATASET" in compare and "--dataset " not in compare


def test_a_run_directory_given_no_weights_is_labelled_by_its_run(train_micro):
    """Issue 30, point 2: a training run holds its own weights; neither a failed unit's row nor
    the report's weights line calls it randomly initialised."""
    from workbench.analysis.sweeps import weights_label
    from workbench.reports import report_header

    run = train_micro("supervised")
    assert weights_label(None, 0, str(run)) == f"run:{run.resolve()}"
    assert report_header([str(run)], ["cowley2023_v4"]).splitlines()[0] == f"**Weights: checkpoint `run:{run.resolve()}`.**"
