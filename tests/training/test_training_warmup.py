"""Warm-up counted in optimiser steps (mmcv's linear warm-up) and mmcv's cyclic schedule (lr and momentum),
shared by every method: the lr at chosen steps against the formulas written out, the errors, the momentum the
loop sets, and runs resumed mid-warm-up and mid-cycle."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from workbench.errors import ValidationError
from workbench.training import Callback, TrainConfig
from workbench.training.checkpoint import load_verified
from workbench.training import loop
from workbench.training.loop import fit
from workbench.training.network import Network
from workbench.training.rundir import RunDir
from workbench.training.schedule import lr_factor_fn

#: Large-UniDet's joint schedule (configs/rvc/cascade_rcnn_nasfpn_crpn_32gf_1x_rvc.py): lr 0.01, steps at
#: epochs 6 and 7, warmup="linear", warmup_iters=4000, warmup_ratio=0.00005.
REFERENCE = TrainConfig(epochs=8, lr=0.01, scheduler="multistep", milestones=(6, 7), gamma=0.1,
                        warmup_steps=4000, warmup_start_factor=5e-5)


def mmcv_linear_warmup_lr(step: int, regular_lr: float, warmup_iters: int, ratio: float) -> float:
    """mmcv's ``LrUpdaterHook.get_warmup_lr`` (``linear``) at ``runner.iter == step``, written out."""
    if step >= warmup_iters:
        return regular_lr
    k = (1 - step / warmup_iters) * (1 - ratio)
    return regular_lr * (1 - k)


def test_the_step_warmup_follows_mmcv_linear_formula_then_the_schedule():
    steps_per_epoch = 1000  # the warm-up spans 4 epochs, the decays come after it
    factor = lr_factor_fn(REFERENCE, steps_per_epoch)
    for step in (0, 1, 2000, 3999, 4000, 5999, 6000, 7999):
        regular = 0.01 * 0.1 ** ((step // steps_per_epoch >= 6) + (step // steps_per_epoch >= 7))
        assert REFERENCE.lr * factor(step) == pytest.approx(mmcv_linear_warmup_lr(step, regular, 4000, 5e-5),
                                                            rel=1e-12)
    assert REFERENCE.lr * factor(0) == pytest.approx(5e-7, rel=1e-12)  # 5e-5 x lr at the first step
    assert REFERENCE.lr * factor(2000) == pytest.approx(0.00500025, rel=1e-12)
    # a warm-up longer than an epoch of a decaying schedule multiplies the decayed lr, as mmcv does
    short = lr_factor_fn(REFERENCE.replace(milestones=(1,)), 1000)
    assert short(1500) == pytest.approx(0.1 * mmcv_linear_warmup_lr(1500, 1.0, 4000, 5e-5), rel=1e-12)
    cosine = lr_factor_fn(TrainConfig(epochs=2, warmup_steps=3, warmup_start_factor=0.5), steps_per_epoch=4)
    assert cosine(2) == pytest.approx((0.5 + 0.5 * 2 / 3) * 0.5 * (1 + math.cos(math.pi * 2 / 8)), rel=1e-12)


def test_the_epoch_warmup_is_unchanged():
    factor = lr_factor_fn(TrainConfig(epochs=3, warmup_epochs=1, scheduler="multistep", milestones=(2,)), 4)
    assert [factor(s) for s in range(12)] == [0.25, 0.5, 0.75, 1.0, 1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1]


def mmcv_cyclic(step: int, base: float, max_iters: int, cyclic_times: int, target_ratio=(10, 1e-4)) -> float:
    """mmcv's ``CyclicLrUpdaterHook.get_lr`` (and ``CyclicMomentumUpdaterHook.get_momentum``) with
    ``target_ratio``, step_ratio_up 0.4, cos annealing."""
    per_cycle = max_iters // cyclic_times
    up = int(0.4 * per_cycle)
    phases = [(0, up, 1.0, target_ratio[0]), (up, per_cycle, target_ratio[0], target_ratio[1])]
    position = step % per_cycle
    for begin, end, start_ratio, end_ratio in phases:
        if begin <= position < end:
            start, stop, fraction = base * start_ratio, base * end_ratio, (position - begin) / (end - begin)
            return stop + 0.5 * (start - stop) * (math.cos(math.pi * fraction) + 1)
    raise AssertionError(step)


def test_the_cyclic_schedule_follows_mmcv_cyclic_policy():
    config = TrainConfig(epochs=6, lr=0.01, scheduler="cyclic", cycles=2)  # the OpenImages fine-tuning's shape
    factor = lr_factor_fn(config, steps_per_epoch=50)  # 300 steps, cycles of 150, 60 up
    for step in (0, 30, 59, 60, 100, 149, 150, 209, 299):
        assert config.lr * factor(step) == pytest.approx(mmcv_cyclic(step, 0.01, 300, 2), rel=1e-12)
    assert config.lr * factor(60) == pytest.approx(0.1) and config.lr * factor(150) == pytest.approx(0.01)


def test_the_loop_cycles_lr_and_momentum_as_mmcv(tmp_path, monkeypatch):
    seen = []

    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            seen.append((self.param_groups[0]["lr"], self.param_groups[0]["momentum"]))
            return super().step(closure)

    monkeypatch.setattr(loop, "make_optimizer", lambda config, params: Recording(params, lr=config.lr,
                                                                                momentum=config.momentum))
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(4))
    data = SimpleNamespace(train=TensorDataset(x, (x[:, 0] > 0).long()), test=TensorDataset(x, (x[:, 0] > 0).long()))
    # the reference's fine-tuning policy: momentum_config cyclic, target_ratio (0.85 / 0.95, 1)
    config = TrainConfig(epochs=5, batch_size=2, lr=0.01, momentum=0.9, scheduler="cyclic", cycles=2,
                         cyclic_momentum=0.85 / 0.95, augment=False)
    torch.manual_seed(0)
    fit(config, RunDir(tmp_path / "run"), Network("linear", {}, "cnn", nn.Linear(4, 2), (), 1), data)
    assert len(seen) == 20  # cycles of 10 steps, 4 up
    for step, (lr, momentum) in enumerate(seen):
        assert lr == pytest.approx(mmcv_cyclic(step, 0.01, 20, 2), rel=1e-12)
        assert momentum == pytest.approx(mmcv_cyclic(step, 0.9, 20, 2, (0.85 / 0.95, 1)), rel=1e-12)
    assert seen[4][1] == pytest.approx(0.9 * 0.85 / 0.95) and seen[0][1] == seen[10][1] == pytest.approx(0.9)


def test_warmup_in_steps_and_in_epochs_exclude_each_other():
    with pytest.raises(ValidationError, match=r"^TrainConfig\.warmup_steps is 4000 and TrainConfig\.warmup_epochs "
                                              r"is 1: a warm-up is counted in steps or in epochs, not both; "
                                              r"set one of them to 0$"):
        TrainConfig(warmup_steps=4000, warmup_epochs=1)
    with pytest.raises(ValidationError, match=r"^TrainConfig\.warmup_start_factor must be in \(0, 1\], found 0\.0$"):
        TrainConfig(warmup_steps=10, warmup_start_factor=0.0)
    with pytest.raises(ValidationError, match=r"^TrainConfig\.warmup_steps must be >= 0, found -1$"):
        TrainConfig(warmup_steps=-1)
    with pytest.raises(ValidationError, match=r"^TrainConfig\.cycles must be >= 1, found 0$"):
        TrainConfig(cycles=0)
    with pytest.raises(ValidationError, match=r"^TrainConfig\.cyclic_momentum must be in \(0, 1\], found 1\.5$"):
        TrainConfig(cyclic_momentum=1.5)
    assert TrainConfig.parse_overrides(["warmup_steps=4000", "warmup_start_factor=5e-5"]) == {
        "warmup_steps": 4000, "warmup_start_factor": 5e-5}


class StopAt(Callback):
    """Stops the run at the end of optimiser step ``step``, before that step's checkpoint (a crash)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, state, network, logs):
        if state.step == self.step:
            raise KeyboardInterrupt


def _fit(tmp_path, name: str, *, resume: bool = False, callbacks=(), **schedule):
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(3))
    y = (x[:, 0] > 0).long()
    data = SimpleNamespace(train=TensorDataset(x, y), test=TensorDataset(x, y))
    schedule = schedule or {"scheduler": "multistep", "milestones": (1,), "warmup_steps": 6, "warmup_start_factor": 0.1}
    config = TrainConfig(epochs=2, batch_size=4, optimizer="sgd", lr=0.5, momentum=0.9, log_every=1,
                         checkpoint_every=1, augment=False, **schedule)
    torch.manual_seed(0)
    network = Network("linear", {}, "cnn", nn.Linear(4, 2), (), 1)
    run = RunDir(tmp_path / name)
    run.resume = resume
    fit(config, run, network, data, callbacks=callbacks)
    return run, network


def test_a_run_resumed_mid_warmup_continues_on_the_same_lr_curve(tmp_path):
    whole, whole_net = _fit(tmp_path, "whole")
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, "stopped", callbacks=[StopAt(4)])
    saved = load_verified(tmp_path / "stopped" / "checkpoints" / "last.pt")
    assert (saved["step"], saved["epoch"], saved["step_in_epoch"]) == (3, 0, 3)  # inside the 6-step warm-up
    resumed, resumed_net = _fit(tmp_path, "stopped", resume=True)
    lrs = [value for step, _, split, metric, value in resumed.rows if metric == "lr"]
    assert lrs == [value for step, _, split, metric, value in whole.rows if metric == "lr"]
    # the lr logged after step s is the lr of step s (0-based): mmcv's warm-up, then x0.1 from epoch 1 (step 4)
    expected = [mmcv_linear_warmup_lr(s, 0.5 * 0.1 ** (s >= 4), 6, 0.1) for s in range(1, 9)]
    assert lrs == pytest.approx(expected, rel=1e-12)
    for a, b in zip(whole_net.module.parameters(), resumed_net.module.parameters()):
        assert torch.equal(a, b)


def test_a_run_resumed_mid_cycle_continues_the_cyclic_lr_and_momentum(tmp_path):
    cyclic = {"scheduler": "cyclic", "cycles": 2, "cyclic_momentum": 0.8}  # cycles of 4 steps, 1 up
    whole, whole_net = _fit(tmp_path, "whole", **cyclic)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, "stopped", callbacks=[StopAt(3)], **cyclic)
    assert load_verified(tmp_path / "stopped" / "checkpoints" / "last.pt")["step"] == 2  # inside the first cycle
    resumed, resumed_net = _fit(tmp_path, "stopped", resume=True, **cyclic)
    lrs = [value for step, _, split, metric, value in resumed.rows if metric == "lr"]
    assert lrs == pytest.approx([mmcv_cyclic(s, 0.5, 8, 2) for s in range(1, 9)], rel=1e-12)
    for a, b in zip(whole_net.module.parameters(), resumed_net.module.parameters()):
        assert torch.equal(a, b)  # the momentum of every step as well: the updates are the same
