"""SyncBatchNorm only with sync_batchnorm, and a conversion that keeps spikingjelly's multi-step BatchNorm working."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from workbench.errors import ValidationError
from workbench.training import TrainConfig
from workbench.training.distributed import DistributedContext, MultiStepSyncBatchNorm, convert_sync_batchnorm
from workbench.training.loop import Trainer
from workbench.training.network import build_network


def _trained_statistics(network, batches: int = 3):
    """``network`` after a few training-mode forwards (non-trivial running statistics), in eval mode."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(batches):
        network.logits(torch.randn(4, 3, 32, 32, generator=generator))
    network.module.eval()
    return network


@pytest.mark.parametrize("arch", ["fsnn_tiny", "small_sew_resnet"])
def test_converted_multistep_snn_runs_a_multistep_forward_with_the_same_output(arch):
    network = _trained_statistics(build_network(arch, time_steps=4, seed=0, num_classes=10))
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = network.logits(images)
    bns = [name for name, m in network.module.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(m.step_mode == "m" for m in network.module.modules() if hasattr(m, "step_mode")
                       and isinstance(m, nn.modules.batchnorm._BatchNorm))
    # torch's own conversion reads (T, N, C, H, W) as a batch of T with N channels: the bug it fixes
    broken = copy.deepcopy(network)
    broken.module = nn.SyncBatchNorm.convert_sync_batchnorm(broken.module).eval()
    with pytest.raises(RuntimeError, match="running_mean should contain"):
        broken.logits(images)
    state = {k: v.clone() for k, v in network.module.state_dict().items()}
    network.module = convert_sync_batchnorm(network.module)
    converted = dict(network.module.named_modules())
    assert all(type(converted[name]) is MultiStepSyncBatchNorm and converted[name].step_mode == "m" for name in bns)
    with torch.no_grad():  # eval mode: SyncBatchNorm normalises with its running statistics, no process group
        after = network.logits(images)
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    assert network.module.state_dict().keys() == state.keys()
    assert all(torch.equal(network.module.state_dict()[k], v) for k, v in state.items())


def test_plain_batchnorm_becomes_torch_syncbatchnorm_sharing_its_tensors():
    bn = nn.BatchNorm2d(3)
    model = nn.Sequential(nn.Conv2d(3, 3, 1), bn, nn.Sequential(nn.BatchNorm1d(2)), nn.GroupNorm(1, 3))
    converted = convert_sync_batchnorm(model)
    assert [type(m) for m in converted.modules()][1:] == [nn.Conv2d, nn.SyncBatchNorm, nn.Sequential,
                                                          nn.SyncBatchNorm, nn.GroupNorm]
    assert converted[1].weight is bn.weight and converted[1].running_mean is bn.running_mean
    assert type(convert_sync_batchnorm(nn.BatchNorm2d(2))) is nn.SyncBatchNorm


def _placing(sync: bool, device: str = "cpu"):
    """The fields Trainer._place reads, for a 2-process launch."""
    return SimpleNamespace(config=TrainConfig(sync_batchnorm=sync), device=torch.device(device),
                           ctx=DistributedContext(0, 2, torch.device(device)))


def test_sync_batchnorm_is_off_by_default_and_refused_without_cuda():
    assert TrainConfig().sync_batchnorm is False
    network = build_network("small_sew_resnet", time_steps=2, seed=0, num_classes=10)
    with pytest.raises(ValidationError, match="sync_batchnorm' is true, but SyncBatchNorm needs CUDA"):
        Trainer._place(_placing(True), network)


def test_without_sync_batchnorm_ddp_keeps_per_process_batchnorm(tmp_path):
    import torch.distributed as dist

    network = build_network("small_sew_resnet", time_steps=2, seed=0, num_classes=10)
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        module = Trainer._place(_placing(False), network)
    finally:
        dist.destroy_process_group()
    assert isinstance(module, nn.parallel.DistributedDataParallel)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in network.module.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in network.module.modules())
