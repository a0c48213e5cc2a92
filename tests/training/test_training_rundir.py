"""Run directories: contents, the model card, refusals, and verified checkpoints and weights."""

import json
import shutil

import pandas as pd
import pytest
import torch
import yaml

from tests.training.conftest import MICRO
from workbench.errors import DataError, ValidationError
from workbench.storage import sha256_file
from workbench.training import read_card, read_metrics, train
from workbench.training.config import config_hash


def test_a_finished_run_holds_its_files(micro_run):
    names = {p.name for p in micro_run.iterdir()}
    assert {"config.yaml", "metrics.csv", "model.pt", "model.pt.sha256", "model_card.json", "checkpoints"} <= names
    card = read_card(micro_run)
    assert card["weights_sha256"] == sha256_file(micro_run / "model.pt")
    assert card["architecture"] == "small_cnn" and card["architecture_kwargs"] == {"num_classes": 10}
    assert card["preprocessing"]["input_size"] == 32
    assert card["data"]["name"] == "digits32" and len(card["data"]["fingerprint"]) == 64
    for key in ("wall_time_s", "versions", "device", "seed", "evaluation", "preset"):
        assert key in card
    assert set(card["versions"]) >= {"torch", "numpy", "workbench"}
    config = yaml.safe_load((micro_run / "config.yaml").read_text())
    assert config["epochs"] == 3 and config["limit_train"] == 64


def test_metrics_rows_per_step_and_evaluation(micro_run):
    metrics = read_metrics(micro_run)
    assert list(metrics.columns) == ["step", "epoch", "split", "metric", "value"]
    train_loss = metrics[(metrics.split == "train") & (metrics.metric == "loss")]
    assert train_loss.step.tolist() == list(range(1, 13))  # 3 epochs x 4 steps, log_every=1
    test_acc = metrics[(metrics.split == "test") & (metrics.metric == "acc")]
    assert test_acc.epoch.tolist() == [0, 1, 2]
    assert read_card(micro_run)["evaluation"]["test_acc"] == pytest.approx(test_acc.value.iloc[-1])


def test_config_hash_in_card_matches_config(micro_run):
    from workbench.methods import get_method
    from workbench.training import resolve_config

    config = resolve_config(get_method("supervised"), "tiny", MICRO)
    assert read_card(micro_run)["config_hash"] == config_hash(config)


def test_finished_run_is_refused_without_resume_or_force(micro_run):
    with pytest.raises(ValidationError, match=r"holds a finished run; pass --resume to continue it or --force"):
        train("supervised", out=micro_run, overrides=MICRO)


def test_resume_with_a_differing_config_lists_the_keys(micro_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(micro_run, run)
    (run / "model_card.json").unlink()
    with pytest.raises(ValidationError, match=r"differs from .*config.yaml in 2 key\(s\): epochs: 3 -> 4, lr: 0.05 -> 0.1"):
        train("supervised", out=run, overrides=[*MICRO, "epochs=4", "lr=0.1"], resume=True)


def test_out_must_be_a_directory(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(ValidationError, match=r"--out .*file.txt is an existing file"):
        train("supervised", out=target, overrides=MICRO)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    with pytest.raises(ValidationError, match=r"non-empty folder that is not a run directory"):
        train("supervised", out=tmp_path / "notes", overrides=MICRO)


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:100]), r"truncated or was modified"),
    (lambda p: p.unlink(), r"does not exist"),
    (lambda p: p.with_name(p.name + ".sha256").unlink(), r"has no checksum record last.pt.sha256"),
])
def test_damaged_checkpoint_is_refused_by_name(micro_run, tmp_path, damage, message):
    run = tmp_path / "copy"
    shutil.copytree(micro_run, run)
    (run / "model_card.json").unlink()
    damage(run / "checkpoints" / "last.pt")
    with pytest.raises(DataError, match=rf"checkpoint .*last.pt .*{message}|checkpoint .*last.pt {message}"):
        train("supervised", out=run, overrides=MICRO, resume=True)


def test_damaged_card_or_weights_is_refused_by_name(micro_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(micro_run, run)
    card = json.loads((run / "model_card.json").read_text())
    (run / "model_card.json").write_text(json.dumps(card)[:-20])
    with pytest.raises(DataError, match=r"model_card.json is not valid JSON"):
        read_card(run)
    (run / "model_card.json").write_text(json.dumps({**card, "time_steps": "4"}))
    with pytest.raises(DataError, match=r"model_card.json field 'time_steps' is '4'; expected a JSON int"):
        read_card(run)
    del card["weights_sha256"]
    (run / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match=r"lacks the field 'weights_sha256'"):
        read_card(run)
    shutil.copy(micro_run / "model_card.json", run / "model_card.json")
    state = torch.load(run / "model.pt", weights_only=True)
    state["fc.bias"] += 1
    torch.save(state, run / "model.pt")
    with pytest.raises(DataError, match=r"weights file .*model.pt is truncated or was modified"):
        read_card(run)


def test_resume_of_a_finished_run_changes_nothing(micro_run):
    before = sha256_file(micro_run / "model.pt")
    train("supervised", out=micro_run, overrides=MICRO, resume=True)
    assert sha256_file(micro_run / "model.pt") == before


def test_force_trains_again(micro_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(micro_run, run)
    with torch.random.fork_rng(devices=[]):
        train("supervised", out=run, overrides=MICRO, force=True)
    assert read_card(run)["weights_sha256"] == read_card(micro_run)["weights_sha256"]  # same seed, same weights
    pd.testing.assert_frame_equal(read_metrics(run), read_metrics(micro_run))


def test_a_nested_run_shares_the_context_writes_its_config_and_names_its_role_and_run(micro_run, tmp_path):
    from workbench.models import create
    from workbench.training import RunDir, list_snapshots
    from workbench.training.evaluation import load_run_config, load_run_network

    card, network = load_run_network(micro_run)
    data = type("Data", (), {"name": "digits32", "fingerprint": card["data"]["fingerprint"],
                             "description": "", "preprocessing": create(str(micro_run)).preprocessing})()
    run = RunDir(tmp_path / "run")
    run.method, run.config, run.resume = "supervised", load_run_config(micro_run), True
    other = run.config.replace(epochs=7)
    base = run.child("base", other, role="baseline")
    assert base.path == run.path / "snapshots" / "base" and base.ctx is run.ctx and base.method == "supervised"
    assert not base.resume  # no checkpoint of its own yet
    assert yaml.safe_load(base.config_file.read_text())["epochs"] == 7
    assert run.finished_child("base") is None
    base.finish(network, network.module.state_dict(), data, {"evaluation": {"test_acc": 0.5}})
    snap = run.write_snapshot("along", network, network.module.state_dict(), data)
    base_card, snap_card = run.finished_child("base"), read_card(snap)
    assert (base_card["role"], snap_card["role"]) == ("baseline", "snapshot")
    assert base_card["snapshot_of"] == snap_card["snapshot_of"] == str(run.path.resolve())
    assert base_card["config_hash"] == config_hash(other) and snap_card["config_hash"] == config_hash(run.config)
    assert base_card["evaluation"] == {"test_acc": 0.5}
    assert list_snapshots(run.path) == [snap, base.path]
    phase = run.child("stage1", other, kind="phases")
    assert phase.path == run.path / "phases" / "stage1" and list_snapshots(run.path) == [snap, base.path]
    with pytest.raises(ValidationError, match=r"kind is 'baselines'; expected one of \['snapshots', 'phases'\]"):
        run.child("x", kind="baselines")
    with pytest.raises(ValidationError, match=r"role is 'teacher'; expected one of \['baseline', 'snapshot'\]"):
        run.child("x", role="teacher")


def test_a_run_config_is_rebuilt_typed_with_its_keys_checked(micro_run, tmp_path):
    from workbench.methods.supervised import SupervisedConfig
    from workbench.training.evaluation import load_run_config

    config = load_run_config(micro_run)
    assert isinstance(config, SupervisedConfig) and config.epochs == 3 and config.limit_train == 64
    run = tmp_path / "copy"
    shutil.copytree(micro_run, run)
    (run / "config.yaml").write_text((run / "config.yaml").read_text() + "epoks: 3\n")
    with pytest.raises(ValidationError, match=r"config of the run .*copy: SupervisedConfig has no field 'epoks'; "
                                              r"did you mean 'epochs'"):
        load_run_config(run)


def test_reloaded_data_must_have_the_fingerprint_of_the_card(micro_run):
    from workbench.training.evaluation import check_data_fingerprint

    card = read_card(micro_run)
    same = type("Data", (), {"name": "digits32", "fingerprint": card["data"]["fingerprint"]})()
    check_data_fingerprint(same, card, micro_run)
    other = type("Data", (), {"name": "digits32", "fingerprint": "0" * 64})()
    with pytest.raises(DataError, match=r"'digits32' data found now \(fingerprint 000000000000\.\.\.\) differ "
                                        r"from the data .*model_card.json was trained on"):
        check_data_fingerprint(other, card, micro_run)


def test_run_data_come_from_a_method_loader_with_the_fingerprint_checked(micro_run):
    from workbench.data.training import load_training_data
    from workbench.training.evaluation import load_run_config, load_run_data

    card, calls = read_card(micro_run), []

    def loader(fingerprint):
        def load(config, *, augment):
            calls.append((config.data_root, augment))
            return type("Data", (), {"name": "digits32", "fingerprint": fingerprint})()
        return load

    data, config = load_run_data(micro_run, card, load_data=loader(card["data"]["fingerprint"]))
    assert data.fingerprint == card["data"]["fingerprint"] and config == load_run_config(micro_run)
    assert calls == [(config.data_root, False)]
    with pytest.raises(DataError, match=r"'digits32' data found now \(fingerprint 000000000000\.\.\.\) differ"):
        load_run_data(micro_run, card, load_data=loader("0" * 64))
    registered, _ = load_run_data(micro_run, card)
    assert registered.fingerprint == load_training_data("digits32", root=config.data_root).fingerprint
