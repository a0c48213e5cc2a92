"""torchrun with 2 CPU processes (gloo) follows the loss curve of 1 process with the same global batch."""

import numpy as np
import pytest

from tests.training.conftest import set_args, workbench_cli
from workbench.training import read_metrics

# GroupNorm: BatchNorm statistics are per process on CPU (SyncBatchNorm needs CUDA), so a BN
# network's curve differs by design; augmentation off: each rank draws from its own RNG.
DDP = ["limit_train=64", "limit_test=32", "batch_size=16", "epochs=2", "log_every=1", "augment=false",
       "arch_kwargs={norm: group}"]


@pytest.mark.slow
def test_two_processes_follow_the_one_process_curve(tmp_path, train_under_torchrun):
    single = tmp_path / "single"
    workbench_cli("train", "supervised", "--out", str(single), *set_args(DDP))
    double = train_under_torchrun("supervised", DDP, tmp_path / "ddp", like=single, same_curves=True)
    a, b = read_metrics(single), read_metrics(double)
    loss_a = a[(a.split == "train") & (a.metric == "loss")].value.to_numpy()
    loss_b = b[(b.split == "train") & (b.metric == "loss")].value.to_numpy()
    assert len(loss_a) == 8
    np.testing.assert_allclose(loss_b, loss_a, rtol=1e-5, atol=1e-6)
