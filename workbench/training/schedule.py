"""The learning-rate (and momentum) schedule of the shared loop: a multiplier per optimiser step.

Every factor is a function of the step alone, so the loop's ``LambdaLR`` (its step count in the
checkpoint) and the momentum set by :class:`~workbench.training.hooks.LRSchedule` continue on the
same curve after ``--resume``. The shapes follow :class:`~workbench.training.config.TrainConfig`:
linear warm-up in epochs (this package's) or in steps (mmcv's ``warmup="linear"``), then cosine,
constant, multistep or mmcv's ``cyclic`` policy (with its cyclic momentum).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from workbench.training.config import TrainConfig


def lr_factor_fn(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Per-step multiplier of the peak lr: the config's warm-up and schedule (:class:`TrainConfig`).

    ``warmup_epochs``: ``(step + 1) / W`` for the first ``W`` steps, the schedule starting after
    them. ``warmup_steps``: mmcv's linear warm-up, the schedule's own factor times ``r + (1 - r)
    step / warmup_steps``. The factor is a function of the step only, so a resumed run (the
    scheduler's step count restored from its checkpoint) continues on the same curve.
    """
    warmup = config.warmup_epochs * steps_per_epoch
    start = config.warmup_start_factor

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        value = schedule_factor(config, step, steps_per_epoch, after=warmup)
        if step < config.warmup_steps:
            value *= start + (1.0 - start) * step / config.warmup_steps
        return value

    return factor


def schedule_factor(config: TrainConfig, step: int, steps_per_epoch: int, *, after: int = 0) -> float:
    """The schedule's multiplier of the peak lr at ``step`` (0-based) of ``epochs x steps_per_epoch``,
    warm-up aside.

    ``after``: the steps of an epoch warm-up, after which the cosine starts (``multistep`` and
    ``cyclic`` count from step 0, as mmcv does).
    """
    if config.scheduler == "constant":
        return 1.0
    if config.scheduler == "multistep":
        epoch = step // steps_per_epoch
        return config.gamma ** sum(epoch >= m for m in config.milestones)
    if config.scheduler == "cyclic":
        return cyclic_factor(step, cycle_steps(config, steps_per_epoch))
    total = config.epochs * steps_per_epoch
    return 0.5 * (1.0 + math.cos(math.pi * (step - after) / max(1, total - after)))


def momentum_factor_fn(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float] | None:
    """Per-step multiplier of the momentum: mmcv's cyclic momentum (``cyclic_momentum`` at each lr
    peak) with a ``cyclic`` schedule whose ``cyclic_momentum`` is not 1; None (constant) otherwise."""
    if config.scheduler != "cyclic" or config.cyclic_momentum == 1:
        return None
    cycle = cycle_steps(config, steps_per_epoch)
    return lambda step: cyclic_factor(step, cycle, peak=config.cyclic_momentum, end=1.0)


def cycle_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """Optimiser steps of one of ``cyclic``'s ``cycles`` (mmcv: ``max_iters // cyclic_times``), at least 1."""
    return max(1, config.epochs * steps_per_epoch // config.cycles)


def cyclic_factor(step: int, cycle: int, *, peak: float = 10.0, end: float = 1e-4, up: float = 0.4) -> float:
    """mmcv's ``cyclic`` policy (lr and momentum): within each ``cycle`` steps, a cosine from 1 to
    ``peak`` over its first ``int(up x cycle)`` steps, then from ``peak`` to ``end``."""
    position, rise = step % cycle, int(up * cycle)
    if position < rise:
        first, last, progress = 1.0, peak, position / rise
    else:
        first, last, progress = peak, end, (position - rise) / (cycle - rise)
    return last + 0.5 * (first - last) * (1.0 + math.cos(math.pi * progress))
