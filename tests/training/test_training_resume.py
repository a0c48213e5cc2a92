"""A run killed with SIGKILL mid-epoch and resumed ends bit-identical to one that never stopped."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.training.conftest import set_args, workbench_cli
from workbench.storage import sha256_file
from workbench.training.checkpoint import load_verified

#: 3 epochs x 8 steps of 16 images, augmentation on, a checkpoint every 3 steps.
RESUMABLE = ["limit_train=128", "limit_test=32", "batch_size=16", "epochs=3", "log_every=2", "checkpoint_every=3"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    reference = tmp_path / "reference"
    workbench_cli("train", "supervised", "--out", str(reference), *set_args(RESUMABLE))

    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "workbench", "train", "supervised", "--out", str(killed),
                                *set_args(RESUMABLE)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sidecar = killed / "checkpoints" / "last.pt.sha256"
    deadline = time.monotonic() + 240
    while not sidecar.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "model_card.json").exists(), "the run finished before it could be killed"
    checkpoint = load_verified(killed / "checkpoints" / "last.pt")
    assert 0 < checkpoint["step"] < 24

    refused = workbench_cli("train", "supervised", "--out", str(killed), *set_args(RESUMABLE), check=False)
    assert refused.returncode == 1 and "holds an unfinished run; pass --resume" in refused.stderr
    workbench_cli("train", "supervised", "--out", str(killed), "--resume", *set_args(RESUMABLE))

    assert sha256_file(killed / "model.pt") == sha256_file(reference / "model.pt")
    assert (killed / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()
    final = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    expected = torch.load(reference / "checkpoints" / "last.pt", weights_only=True)
    for key, value in expected["optimizer"]["state"].items():
        assert torch.equal(final["optimizer"]["state"][key]["momentum_buffer"], value["momentum_buffer"])
