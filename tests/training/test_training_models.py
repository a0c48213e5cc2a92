"""A run directory is a model: create(), model_info(), cache and result keys, workbench score."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.conftest import workbench_cli
from workbench.analysis.sweeps import run_identity
from workbench.errors import DataError, ValidationError
from workbench.models import create, model_family, model_info
from workbench.training import read_card

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_create_loads_the_trained_weights_and_declares_the_training_preprocessing(micro_run):
    card = read_card(micro_run)
    model = create(str(micro_run))
    saved = torch.load(micro_run / "model.pt", weights_only=True)
    for key, value in model.module.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert model.preprocessing.input_size == 32
    assert model.preprocessing.mean == tuple(card["preprocessing"]["mean"])
    assert model.layers == tuple(card["layers"]) and model.family == "cnn"
    assert model.weights == f"run:{micro_run.resolve()}"
    assert not model.module.training and not any(p.requires_grad for p in model.module.parameters())


def test_model_info_and_family_of_a_run(micro_run):
    info = model_info(str(micro_run))
    assert info.layers == tuple(read_card(micro_run)["layers"])
    assert info.preprocessing.input_size == 32
    assert model_family(str(micro_run)) == "cnn"


def test_a_run_refuses_other_weights(micro_run):
    with pytest.raises(ValidationError, match=r"is a training run, whose card names its own weights"):
        create(str(micro_run), weights="imagenet")


def test_tampered_weights_are_refused_on_create(micro_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(micro_run, run)
    state = torch.load(run / "model.pt", weights_only=True)
    state["fc.weight"][0, 0] += 1
    torch.save(state, run / "model.pt")
    with pytest.raises(DataError, match=r"model.pt is truncated or was modified"):
        create(str(run))


def test_retrained_weights_change_the_result_key(micro_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(micro_run, run)
    before = run_identity(str(run))
    assert before["weights_sha256"] == read_card(run)["weights_sha256"]
    from workbench.training import train

    with torch.random.fork_rng(devices=[]):
        train("supervised", out=run, force=True, overrides=["limit_train=64", "limit_test=64", "batch_size=16",
                                                             "epochs=1"])
    after = run_identity(str(run))
    assert after["weights_sha256"] != before["weights_sha256"]
    assert create(str(run)).weights_id != create(str(micro_run)).weights_id
    assert run_identity("resnet18") == {}


@pytest.mark.slow
def test_workbench_score_takes_a_run_directory(micro_run, tmp_path):
    if not (SHARED_DATA / "SHA256SUMS").is_file():
        pytest.skip(f"real data mirror not found at {SHARED_DATA}")
    out = tmp_path / "scores"
    env = {"WORKBENCH_DATA_MIRROR": str(SHARED_DATA), "WORKBENCH_DATA": str(tmp_path / "data"),
           "WORKBENCH_CACHE": str(tmp_path / "cache")}
    workbench_cli("score", "--models", str(micro_run), "--datasets", "kriegeskorte2008_92", "--metrics", "rsa",
                  "--out", str(out), env=env)
    import pandas as pd

    scores = pd.read_csv(out / "scores.csv")
    assert set(scores.layer_name) == set(read_card(micro_run)["layers"])
    assert np.isfinite(scores.score).all() and (scores.model == str(micro_run)).all()
