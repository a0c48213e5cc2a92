"""torchrun with 2 CPU processes (gloo) follows the loss curve of 1 process with the same global batch."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.training.conftest import set_args, workbench_cli
from workbench.training import read_card, read_metrics

# GroupNorm: BatchNorm statistics are per process on CPU (SyncBatchNorm needs CUDA), so a BN
# network's curve differs by design; augmentation off: each rank draws from its own RNG.
DDP = ["limit_train=64", "limit_test=32", "batch_size=16", "epochs=2", "log_every=1", "augment=false",
       "arch_kwargs={norm: group}"]


@pytest.mark.slow
def test_two_processes_follow_the_one_process_curve(tmp_path):
    single = tmp_path / "single"
    workbench_cli("train", "supervised", "--out", str(single), *set_args(DDP))
    double = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
         "-m", "workbench", "train", "supervised", "--out", str(double), *set_args(DDP)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]

    a, b = read_metrics(single), read_metrics(double)
    assert a[["step", "epoch", "split", "metric"]].equals(b[["step", "epoch", "split", "metric"]])
    loss_a = a[(a.split == "train") & (a.metric == "loss")].value.to_numpy()
    loss_b = b[(b.split == "train") & (b.metric == "loss")].value.to_numpy()
    assert len(loss_a) == 8
    np.testing.assert_allclose(loss_b, loss_a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.value.to_numpy(), a.value.to_numpy(), rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in double.iterdir()) == sorted(p.name for p in single.iterdir())
    assert "x 2 processes" in read_card(double)["device"]
