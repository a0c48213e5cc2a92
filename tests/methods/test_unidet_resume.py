"""A unidet run interrupted mid-epoch (inside a baseline) and resumed ends with the weights of one that never stopped."""

from __future__ import annotations

import importlib

import pandas as pd
import pytest
import torch

from workbench.training import train
from workbench.training.checkpoint import load_verified

#: 18 training images (3 datasets x 6), 2 steps of 9 per epoch, 2 epochs, a checkpoint every step,
#: the flat baseline (snapshots/flat) then the hierarchy-aware detector, horizontal flips on.
RESUMABLE = ["synthetic_train=6", "synthetic_test=4", "epochs=2", "batch_size=9", "log_every=1",
             "checkpoint_every=1", "fpn_channels=8", "arch_kwargs={widths: [4, 4, 8, 8]}",
             "per_dataset_baselines=false", "augment=true"]


class Interrupted(RuntimeError):
    pass


def _weights(folder):
    return load_verified(folder / "model.pt", what="weights"), torch.load(folder / "detector.pt", weights_only=True)


@pytest.mark.slow
def test_a_run_stopped_mid_epoch_resumes_to_the_same_weights(tmp_path, monkeypatch):
    unidet_train = importlib.import_module("workbench.methods.unidet.train")  # the module, not the function

    with torch.random.fork_rng(devices=[]):
        train("unidet", out=tmp_path / "reference", preset="tiny", overrides=RESUMABLE)

    real_step, calls = unidet_train.detection_step, []

    def failing_step(*args):
        calls.append(1)
        if len(calls) == 4:  # the flat baseline's 4th step: epoch 1, after the checkpoint of step 3
            raise Interrupted("stopped")
        return real_step(*args)

    stopped = tmp_path / "stopped"
    monkeypatch.setattr(unidet_train, "detection_step", failing_step)
    with torch.random.fork_rng(devices=[]), pytest.raises(Interrupted):
        train("unidet", out=stopped, preset="tiny", overrides=RESUMABLE)
    checkpoint = load_verified(stopped / "snapshots" / "flat" / "checkpoints" / "last.pt")
    assert (checkpoint["step"], checkpoint["epoch"], checkpoint["step_in_epoch"]) == (3, 1, 1)
    assert not (stopped / "snapshots" / "flat" / "model_card.json").exists()
    assert not (stopped / "checkpoints").exists()  # the main detector had not started

    monkeypatch.setattr(unidet_train, "detection_step", real_step)
    with torch.random.fork_rng(devices=[]):
        train("unidet", out=stopped, preset="tiny", overrides=RESUMABLE, resume=True)

    for sub in ("", "snapshots/flat"):
        (ref_model, ref_det), (got_model, got_det) = _weights(tmp_path / "reference" / sub), _weights(stopped / sub)
        assert ref_model.keys() == got_model.keys() and ref_det["state_dict"].keys() == got_det["state_dict"].keys()
        for key in ref_model:
            assert torch.equal(ref_model[key], got_model[key]), f"{sub or 'main'} model.pt {key}"
        for key in ref_det["state_dict"]:
            assert torch.equal(ref_det["state_dict"][key], got_det["state_dict"][key]), f"{sub or 'main'} detector {key}"
        ref_rows = pd.read_csv(tmp_path / "reference" / sub / "metrics.csv")
        got_rows = pd.read_csv(stopped / sub / "metrics.csv")
        pd.testing.assert_frame_equal(ref_rows, got_rows)
        assert set(ref_rows.metric[ref_rows.split == "train"]) == {"loss", "cls", "box", "lr"}
        assert (ref_rows.split == "test").any()
