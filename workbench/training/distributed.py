"""Scale-out through torchrun and DistributedDataParallel.

``torchrun --nproc_per_node N -m workbench train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`init_distributed` joins them in a process group
(gloo on CPU, NCCL on CUDA). The global batch is split evenly over the ranks, each rank takes
its contiguous slice of every global batch (:class:`GlobalBatchSampler`), and gradients are
averaged by DDP, so N processes follow the same loss curve as one process with the same
global batch. Only rank 0 writes the run directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from workbench.errors import ValidationError


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a launch: ``rank`` of ``world_size``, on ``device``."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of ``values`` over the ranks (itself when not distributed)."""
        if not self.enabled:
            return values
        values = values.detach().clone().to(self.device)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values / self.world_size

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def gather_in_rank_order(values: torch.Tensor) -> torch.Tensor:
    """Every rank's ``values`` (same shape on each) concatenated along dim 0, rank 0 first.

    Under torchrun each rank holds the r-th contiguous slice of the global batch
    (:class:`GlobalBatchSampler`), so this is the global batch's rows in one-process order;
    without a process group it returns ``values``. For state that a method updates from a batch
    outside the gradients (e.g. EMA anchors), so that every rank updates it as one process would.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    is_bool = values.dtype == torch.bool
    local = values.to(torch.uint8) if is_bool else values  # gloo gathers no bool tensors
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local.contiguous())
    gathered = torch.cat(parts)
    return gathered.bool() if is_bool else gathered


def init_distributed(device: str) -> DistributedContext:
    """Join the torchrun launch this process belongs to, or return a one-process context."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValidationError("--device cuda: no CUDA device is available here; use --device cpu")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext(0, 1, torch.device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
    else:
        target = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return DistributedContext(rank, world_size, target)


class MultiStepSyncBatchNorm(nn.SyncBatchNorm):
    """SyncBatchNorm that also takes spikingjelly's multi-step input ``(T, N, C, ...)``.

    The counterpart of ``spikingjelly.activation_based.layer.BatchNorm{1,2,3}d``: with
    ``step_mode == "m"`` the time and batch axes are merged into one batch of ``T * N``
    samples, normalised, and split again (the statistics are those of all ``T * N`` samples,
    as in spikingjelly); with ``"s"`` it is a plain SyncBatchNorm. Parameters and buffers are
    a BatchNorm's, so state dicts load either way.
    """

    step_mode: str = "s"

    def extra_repr(self) -> str:
        return super().extra_repr() + f", step_mode={self.step_mode}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.step_mode != "m":
            return super().forward(x)
        return super().forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def _is_spikingjelly_batchnorm(module: nn.Module) -> bool:
    """Whether ``module`` is spikingjelly's BatchNorm{1,2,3}d (a BatchNorm with a ``step_mode``)."""
    return (type(module).__module__.startswith("spikingjelly.") and type(module).__name__ in
            ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d"))


def _sync_copy(bn: nn.modules.batchnorm._BatchNorm, cls: type) -> nn.SyncBatchNorm:
    """A ``cls`` (SyncBatchNorm) with the hyper-parameters, parameters and buffers of ``bn``."""
    sync = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    if bn.affine:
        with torch.no_grad():
            sync.weight, sync.bias = bn.weight, bn.bias
    sync.running_mean, sync.running_var = bn.running_mean, bn.running_var
    sync.num_batches_tracked = bn.num_batches_tracked
    sync.train(bn.training)
    return sync


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm replaced by a SyncBatchNorm sharing its tensors.

    torch's BatchNorm{1,2,3}d become :class:`torch.nn.SyncBatchNorm` (as
    ``nn.SyncBatchNorm.convert_sync_batchnorm`` does); spikingjelly's multi-step
    BatchNorm{1,2,3}d become :class:`MultiStepSyncBatchNorm` with the same ``step_mode``, so
    a ``(T, N, C, H, W)`` input keeps working (torch's conversion turns them into plain
    SyncBatchNorms that read T as the batch and N as the channels). Other normalisation
    layers (e.g. spikingjelly's threshold-dependent BatchNorm) keep per-process statistics.
    Returns the converted module (a new one when ``module`` itself is a BatchNorm).
    """
    plain = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    if _is_spikingjelly_batchnorm(module):
        converted = _sync_copy(module, MultiStepSyncBatchNorm)
        converted.step_mode = module.step_mode
        return converted
    if type(module) in plain:
        return _sync_copy(module, nn.SyncBatchNorm)
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child))
    return module


class GlobalBatchSampler(DistributedSampler):
    """A DistributedSampler whose ranks share each global batch, in order.

    torch's ``DistributedSampler`` deals indices round-robin (rank r takes r, r + N, ...), so
    the union of the ranks' k-th batches is not the k-th batch of a one-process run. This one
    draws the same seeded permutation of the epoch (``seed + epoch``), cuts it into global
    batches of ``global_batch`` indices, and gives rank r the r-th contiguous slice of each;
    the last incomplete global batch is dropped. ``start_batch`` skips batches already trained
    in this epoch (resume).
    """

    def __init__(self, dataset, *, global_batch: int, rank: int, world_size: int, seed: int, shuffle: bool = True):
        if global_batch % world_size:
            raise ValidationError(f"batch_size {global_batch} is not divisible by the {world_size} processes")
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.global_batch = global_batch
        self.local_batch = global_batch // world_size
        self.batches_per_epoch = len(dataset) // global_batch
        if self.batches_per_epoch == 0:
            raise ValidationError(f"the training set has {len(dataset)} samples, fewer than one batch of {global_batch}")
        self.start_batch = 0

    def __iter__(self):
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(self.dataset), generator=generator).tolist()
        else:
            order = list(range(len(self.dataset)))
        for batch in range(self.start_batch, self.batches_per_epoch):
            start = batch * self.global_batch + self.rank * self.local_batch
            yield from order[start:start + self.local_batch]

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.local_batch
