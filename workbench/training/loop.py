"""The one training loop every method uses.

:func:`fit` trains a :class:`~workbench.training.network.Network` on a
:class:`~workbench.data.training.TrainingData`: optimiser and learning-rate schedule from the
config, bf16 autocast on CUDA, DistributedDataParallel under torchrun. The loop itself is
short: a :class:`Trainer` holds what it works on and does one step; the per-step schedule
updates, a tqdm bar (loss, accuracy, images/s) and ``metrics.csv`` rows, an evaluation on the
test split after every epoch, and checkpoints from which ``--resume`` continues bit-identically
on the CPU are its internal hooks (:mod:`workbench.training.hooks`). A method changes what
happens in a step through ``step_fn`` and hooks into the loop through :class:`Callback` objects.

Determinism: the data order of epoch ``e`` is a permutation seeded with ``seed + e`` (not
the global RNG); augmentation and dropout draw from torch's global RNG, whose state every
checkpoint stores; each epoch's DataLoader has its own seeded generator, so creating one
mid-epoch on resume draws nothing from the global RNG.

Other kinds of data (e.g. detection targets): a ``data.collate_fn`` attribute batches the
items (both splits), batches are moved to the device recursively (tensors inside lists,
tuples and dicts), and ``sampler_fn`` replaces the shuffled permutation with a method's own
sampler (one process only; it must draw its order from its epoch, not the global RNG, so
that a resumed epoch skips exactly the batches already trained).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler, Subset

from workbench.errors import ValidationError
from workbench.training.config import TrainConfig
from workbench.training.distributed import GlobalBatchSampler, convert_sync_batchnorm
from workbench.training.hooks import (
    BestEpoch,
    Checkpointer,
    Evaluation,
    Hook,
    LRSchedule,
    MethodCallbacks,
    MetricsLog,
)
from workbench.training.network import Network
from workbench.training.schedule import lr_factor_fn


@dataclass
class TrainState:
    """Where the loop is. ``step`` counts optimiser steps done (0 before the first)."""

    step: int
    epoch: int
    step_in_epoch: int
    steps_per_epoch: int
    total_steps: int
    lr_factor: Callable[[int], float] = field(repr=False)
    base_lr: float = 0.0

    def lr_at(self, step: int) -> float:
        """Learning rate used by optimiser step ``step`` (0-based)."""
        return self.base_lr * self.lr_factor(step)


class Callback:
    """Hooks a method adds to the loop; every method is optional.

    Anything a callback keeps that is not a pure function of ``state.step`` must be returned
    by :meth:`state_dict` so that a resumed run continues exactly.
    """

    def on_train_start(self, state: TrainState, network: Network) -> None: ...

    def on_step_start(self, state: TrainState, network: Network) -> None: ...

    def on_step_end(self, state: TrainState, network: Network, logs: dict[str, float]) -> None: ...

    def on_epoch_end(self, state: TrainState, network: Network) -> dict[str, float]:
        """Extra values to log for the epoch just finished (split ``"train"``)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class FitResult:
    network: Network
    evaluation: dict[str, float]
    wall_time_s: float  # training time summed over the run's resumed parts


StepFn = Callable[[Network, nn.Module, torch.Tensor, torch.Tensor, TrainConfig], tuple[torch.Tensor, dict]]
EvalFn = Callable[[Network, DataLoader, torch.device], dict[str, float]]
SamplerFn = Callable[[Any], Sampler]


def to_device(batch: Any, device: torch.device, *, non_blocking: bool = False) -> Any:
    """``batch`` with every tensor moved to ``device``, recursing into lists, tuples and dicts."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {k: to_device(v, device, non_blocking=non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, non_blocking=non_blocking) for v in batch)
    return batch


class EpochBatches:
    """Batch sampler over a method's own sampler: epoch ``e`` = its order cut into batches.

    ``set_epoch(e)`` is passed on to ``sampler``; an epoch has ``ceil(len(sampler) /
    batch_size)`` batches (the last may be smaller; an order longer than ``len(sampler)`` is
    cut there); ``start_batch`` skips batches already trained in this epoch (resume). The
    sampler's order must be a function of its epoch (its own seeded generator), so that every
    torchrun process draws the same order: with ``world_size`` processes, each global batch of
    ``batch_size`` indices is cut into contiguous slices, rank ``r`` taking the r-th (as
    :class:`~workbench.training.distributed.GlobalBatchSampler` does), and a last incomplete
    global batch is dropped.
    """

    def __init__(self, sampler: Sampler, batch_size: int, *, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ValidationError(f"batch_size {batch_size} is not divisible by the {world_size} processes")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        whole = len(sampler) // self.batch_size
        self.batches_per_epoch = whole if self.world_size > 1 else math.ceil(len(sampler) / self.batch_size)
        if self.batches_per_epoch == 0:
            raise ValidationError(f"the training sampler {type(sampler).__name__} yields {len(sampler)} samples, "
                                  f"fewer than one batch of {self.batch_size}")
        self.start_batch = 0

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def _local(self, batch: list) -> list:
        """This rank's contiguous slice of a global batch (the whole batch in one process)."""
        size = self.batch_size // self.world_size
        return batch[self.rank * size:(self.rank + 1) * size]

    def __iter__(self):
        batch, done = [], 0
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                if done >= self.start_batch:
                    yield self._local(batch)
                batch, done = [], done + 1
                if done == self.batches_per_epoch:
                    return
        if batch and done >= self.start_batch:
            yield batch

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch


def classification_step(network: Network, module: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                        config: TrainConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy (with the config's label smoothing) and accuracy of one batch."""
    logits = network.logits(images, module=module)
    loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
    acc = (logits.argmax(1) == labels).float().mean()
    return loss, {"loss": loss.detach(), "acc": acc.detach()}


@torch.no_grad()
def evaluate_classifier(network: Network, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """Mean cross-entropy and top-1 accuracy over ``loader`` (network in eval mode)."""
    was_training = network.module.training
    network.module.eval()
    total, loss_sum, correct = 0, 0.0, 0
    try:
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            logits = network.logits(images).float()
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(1) == labels).sum().item()
            total += len(labels)
    finally:
        network.module.train(was_training)
    return {"loss": loss_sum / total, "acc": correct / total}


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               nesterov=config.nesterov)
    return torch.optim.AdamW(params, lr=config.lr, betas=(config.momentum, 0.999), weight_decay=config.weight_decay)


def limited(dataset, limit: int):
    """The first ``limit`` samples of ``dataset`` (all of it for 0)."""
    return dataset if not limit or limit >= len(dataset) else Subset(dataset, range(limit))


class Trainer:
    """What one :func:`fit` works on: network, data, optimiser, schedule, position; the hooks read and change it.

    Built in a fixed order (seeds, device and DDP, data and sampler, optimiser, scheduler), so
    that a run and its resumed continuation draw the same random numbers.
    """

    def __init__(self, config: TrainConfig, run, network: Network, data, step_fn: StepFn,
                 sampler_fn: SamplerFn | None):
        self.config, self.run, self.network, self.step_fn = config, run, network, step_fn
        self.ctx, self.device = run.ctx, run.ctx.device
        self.start_time, self.elapsed_before = time.perf_counter(), 0.0
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed)
        self.module = self._place(network)
        self.train_set = limited(data.train, config.limit_train)
        self.test_set = limited(data.test, config.limit_test)
        self.collate_fn = getattr(data, "collate_fn", None)
        self.own_sampler = sampler_fn is not None
        if sampler_fn is None:
            self.sampler = GlobalBatchSampler(self.train_set, global_batch=config.batch_size, rank=self.ctx.rank,
                                              world_size=self.ctx.world_size, seed=config.seed)
        else:
            self.sampler = EpochBatches(sampler_fn(self.train_set), config.batch_size, rank=self.ctx.rank,
                                        world_size=self.ctx.world_size)
        steps_per_epoch = self.sampler.batches_per_epoch
        self.optimizer = make_optimizer(config, [p for p in network.module.parameters() if p.requires_grad])
        factor = lr_factor_fn(config, steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.use_bf16 = config.amp == "bf16" or (config.amp == "auto" and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=False)  # bf16 needs no loss scaling
        self.state = TrainState(0, 0, 0, steps_per_epoch, config.epochs * steps_per_epoch, factor, config.lr)
        self.window: dict[str, float] = {}  # step logs summed since the last logged row
        self.window_steps = 0
        self.evaluation: dict[str, float] = {}
        self.best: dict[str, Any] | None = None  # the best epoch so far (hooks.BestEpoch)

    def _place(self, network: Network) -> nn.Module:
        """Move the network to the device; under torchrun wrap it in DDP (SyncBatchNorm with
        ``config.sync_batchnorm``, per-process BatchNorm statistics otherwise)."""
        network.module.to(self.device)
        if not self.ctx.enabled:
            return network.module
        if self.config.sync_batchnorm:
            if self.device.type != "cuda":
                raise ValidationError("config field 'sync_batchnorm' is true, but SyncBatchNorm needs CUDA "
                                      f"(device is {self.device.type!r}); set sync_batchnorm=false")
            network.module = convert_sync_batchnorm(network.module)
        return nn.parallel.DistributedDataParallel(
            network.module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def epoch_batches(self):
        """The (inputs, targets) batches left in the current epoch, on the device (network in train mode)."""
        config, state = self.config, self.state
        self.sampler.set_epoch(state.epoch)
        self.sampler.start_batch = state.step_in_epoch
        generator = torch.Generator()
        generator.manual_seed(config.seed * 100_003 + state.epoch)
        batching = ({"batch_sampler": self.sampler} if self.own_sampler  # EpochBatches yields whole batches
                    else {"batch_size": self.sampler.local_batch, "sampler": self.sampler})
        loader = DataLoader(self.train_set, **batching, num_workers=config.num_workers, generator=generator,
                            collate_fn=self.collate_fn, persistent_workers=False,
                            pin_memory=self.device.type == "cuda")
        self.network.module.train()
        for inputs, targets in loader:
            yield to_device(inputs, self.device, non_blocking=True), to_device(targets, self.device, non_blocking=True)

    def run_step(self, inputs, targets) -> dict[str, float]:
        """One optimiser step on a batch; returns its logs as floats."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            loss, logs = self.step_fn(self.network, self.module, inputs, targets, self.config)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.network.module.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.state.step += 1
        self.state.step_in_epoch += 1
        return {k: float(v) for k, v in logs.items()}

    @property
    def reached_max_steps(self) -> bool:
        """Whether ``config.max_steps`` (when set) optimiser steps are done."""
        return bool(self.config.max_steps) and self.state.step >= self.config.max_steps

    def elapsed_s(self) -> float:
        """Training time of the run so far, its resumed parts summed (s)."""
        return self.elapsed_before + time.perf_counter() - self.start_time


def fit(config: TrainConfig, run, network: Network, data, *, callbacks: Sequence[Callback] = (),
        step_fn: StepFn | None = None, eval_fn: EvalFn | None = None,
        sampler_fn: SamplerFn | None = None) -> FitResult:
    """Train ``network`` on ``data`` as ``config`` says, writing into ``run``.

    Parameters
    ----------
    config : TrainConfig
    run : RunDir
        Where metrics and checkpoints go; ``run.ctx`` is the distributed context and
        ``run.resume`` says whether to continue from ``run.checkpoint_file``.
    network : Network
        Trained in place (its module is moved to the context's device).
    data : TrainingData
        ``data.train`` and ``data.test`` datasets of (image (3, H, W), label) items; an
        optional ``data.collate_fn`` batches other items (both splits), e.g. detection
        images and target dicts. Batches go to the device recursively (lists, tuples, dicts).
    callbacks : sequence of Callback
    step_fn : callable, default: :func:`classification_step`
        ``step_fn(network, module, images, labels, config) -> (loss, logs)``; ``module`` is
        the (possibly DDP-wrapped) network to call.
    eval_fn : callable, default: :func:`evaluate_classifier`
        ``eval_fn(network, loader, device) -> {name: value}`` on the test split.
    sampler_fn : callable, optional
        ``sampler_fn(train_set) -> Sampler`` replaces the shuffled permutation of every epoch
        (e.g. re-sampling datasets); its ``set_epoch(epoch)`` is called when it has one and its
        order must depend only on the epoch. An epoch is ``ceil(len(sampler) / batch_size)``
        steps (the last batch may be smaller; under torchrun it is dropped, and each process
        takes its slice of every batch); a checkpoint mid-epoch resumes exactly.

    Returns
    -------
    FitResult
        The trained network, the last evaluation (``{"test_" + name: value}``; with
        ``config.best_metric`` also the best epoch's, ``{"best_test_" + name: value}``, and
        ``best_epoch``, the epochs trained up to it) and wall time (s).
    """
    trainer = Trainer(config, run, network, data, step_fn or classification_step, sampler_fn)
    checkpointer = Checkpointer(callbacks)
    if run.resume:
        checkpointer.load(trainer)
    best = [BestEpoch(config.best_metric)] if config.best_metric else []
    hooks = [LRSchedule(), MethodCallbacks(callbacks), MetricsLog(), Evaluation(eval_fn or evaluate_classifier),
             *best, checkpointer]  # in this order at every event: the checkpoint last
    _call(hooks, "before_train", trainer)
    state = trainer.state
    while state.epoch < config.epochs and not trainer.reached_max_steps:
        for inputs, targets in trainer.epoch_batches():
            _call(hooks, "before_step", trainer)
            logs = trainer.run_step(inputs, targets)
            _call(hooks, "after_step", trainer, logs)
            if trainer.reached_max_steps:
                break
        _call(hooks, "after_epoch", trainer)
        state.epoch += 1
        state.step_in_epoch = 0
    _call(hooks, "after_train", trainer)
    return FitResult(network, {**trainer.evaluation, **best_entries(trainer.best)}, trainer.elapsed_s())


def best_entries(best: dict[str, Any] | None) -> dict[str, float]:
    """The best epoch's evaluation as ``{"best_" + name: value}`` and ``best_epoch`` ({} without one)."""
    if best is None:
        return {}
    return {**{f"best_{k}": v for k, v in best["evaluation"].items()}, "best_epoch": int(best["epoch"])}


def _call(hooks: Sequence[Hook], event: str, *args) -> None:
    for hook in hooks:
        getattr(hook, event)(*args)
