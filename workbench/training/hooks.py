"""The loop's own hooks: LR schedule, the method's callbacks, logging, evaluation, checkpoints.

:func:`~workbench.training.loop.fit` is a short loop over epochs and steps; everything else it
does is one of these hooks, called in list order at each event (``before_train``,
``before_step``, ``after_step``, ``after_epoch``, ``after_train``) with the
:class:`~workbench.training.loop.Trainer` they read and change. ``fit`` fixes their order:
the learning rate is stepped before the method's callbacks see the step, the logged window
includes what the callbacks added, and the checkpoint is written last, so it holds the
epoch's evaluation and the RNG states the next step starts from.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from workbench.errors import ValidationError
from workbench.training.checkpoint import load_verified, save_verified
from workbench.training.schedule import momentum_factor_fn

logger = logging.getLogger(__name__)


class Hook:
    """One part of the loop's work; every event is optional. ``trainer``: the loop's :class:`Trainer`."""

    def before_train(self, trainer) -> None: ...

    def before_step(self, trainer) -> None: ...

    def after_step(self, trainer, logs: dict[str, float]) -> None: ...

    def after_epoch(self, trainer) -> None: ...

    def after_train(self, trainer) -> None: ...


class LRSchedule(Hook):
    """Steps the per-step learning-rate schedule after every optimiser step, and sets the momentum
    of the next step where the config cycles it (a function of the step: a resumed run continues)."""

    def before_train(self, trainer) -> None:
        self.momentum = momentum_factor_fn(trainer.config, trainer.state.steps_per_epoch)
        self._set_momentum(trainer)

    def after_step(self, trainer, logs) -> None:
        trainer.scheduler.step()
        self._set_momentum(trainer)

    def _set_momentum(self, trainer) -> None:
        if self.momentum is None:
            return
        value = trainer.config.momentum * self.momentum(trainer.state.step)
        for group in trainer.optimizer.param_groups:
            if "betas" in group:  # AdamW: beta1
                group["betas"] = (value, group["betas"][1])
            else:
                group["momentum"] = value


class MethodCallbacks(Hook):
    """Calls the method's :class:`~workbench.training.loop.Callback` objects; logs their epoch values."""

    def __init__(self, callbacks: Sequence):
        self.callbacks = list(callbacks)

    def before_train(self, trainer) -> None:
        for callback in self.callbacks:
            callback.on_train_start(trainer.state, trainer.network)

    def before_step(self, trainer) -> None:
        for callback in self.callbacks:
            callback.on_step_start(trainer.state, trainer.network)

    def after_step(self, trainer, logs) -> None:
        for callback in self.callbacks:
            callback.on_step_end(trainer.state, trainer.network, logs)

    def after_epoch(self, trainer) -> None:
        extra = {}
        for callback in self.callbacks:
            extra.update(callback.on_epoch_end(trainer.state, trainer.network))
        if extra:
            trainer.run.log(trainer.state.step, trainer.state.epoch, "train", extra)


class MetricsLog(Hook):
    """Means of the step logs over every ``log_every`` steps (and at an epoch's end), across processes;
    a tqdm bar with loss, accuracy and images/s."""

    def before_train(self, trainer) -> None:
        state, limit = trainer.state, trainer.config.max_steps
        total = min(state.total_steps, limit) if limit else state.total_steps
        self.bar = tqdm(total=total, initial=state.step, desc=f"train {trainer.network.name}",
                        unit="step", disable=not trainer.ctx.is_main, dynamic_ncols=True)
        self.tick = time.perf_counter()

    def after_step(self, trainer, logs) -> None:
        state = trainer.state
        for key, value in logs.items():
            trainer.window[key] = trainer.window.get(key, 0.0) + value
        trainer.window_steps += 1
        if trainer.window_steps == trainer.config.log_every or state.step_in_epoch == state.steps_per_epoch:
            self._log(trainer)
        self.bar.update(1)

    def _log(self, trainer) -> None:
        keys = sorted(trainer.window)
        means = trainer.ctx.mean(torch.tensor([trainer.window[k] / trainer.window_steps for k in keys],
                                              dtype=torch.float64))
        logged = dict(zip(keys, means.tolist()))
        logged["lr"] = trainer.optimizer.param_groups[0]["lr"]
        trainer.run.log(trainer.state.step, trainer.state.epoch, "train", logged)
        now = time.perf_counter()
        rate = trainer.config.batch_size * trainer.window_steps / max(now - self.tick, 1e-9)
        self.bar.set_postfix(loss=f"{logged.get('loss', float('nan')):.4f}",
                             acc=f"{logged.get('acc', float('nan')):.3f}", img_s=f"{rate:.0f}")
        self.tick, trainer.window, trainer.window_steps = now, {}, 0

    def after_epoch(self, trainer) -> None:
        if trainer.window_steps:  # an epoch cut short by max_steps
            self._log(trainer)

    def after_train(self, trainer) -> None:
        self.bar.close()


class Evaluation(Hook):
    """After every epoch, on the main process: ``eval_fn`` on the test split, logged as ``test``.

    It draws nothing from the global RNG (forked), so training continues as without it.
    """

    def __init__(self, eval_fn: Callable):
        self.eval_fn = eval_fn

    def after_epoch(self, trainer) -> None:
        config, device, state = trainer.config, trainer.device, trainer.state
        if trainer.ctx.is_main:
            with torch.random.fork_rng(devices=[]):
                loader = DataLoader(trainer.test_set, batch_size=max(config.batch_size, 256), shuffle=False,
                                    num_workers=config.num_workers, collate_fn=trainer.collate_fn)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=trainer.use_bf16):
                    values = self.eval_fn(trainer.network, loader, device)
            trainer.evaluation = {f"test_{k}": v for k, v in values.items()}
            trainer.run.log(state.step, state.epoch, "test", values)
            logger.info("epoch %d: %s", state.epoch, trainer.evaluation)
        trainer.ctx.barrier()


class BestEpoch(Hook):
    """After every epoch's evaluation, on the main process: keep the epoch with the highest
    ``test_<metric>`` so far (``trainer.best``) and its weights in ``run.best_checkpoint_file``.

    ``trainer.best`` is ``{"metric": "test_<metric>", "value", "epoch" (epochs trained, from 1),
    "step", "evaluation" (that epoch's whole evaluation)}``; a tie keeps the earlier epoch.
    Choosing the epoch on the test set it reports makes the number optimistic (the maximum of
    noisy estimates); the final epoch's evaluation is kept beside it.
    """

    def __init__(self, metric: str):
        self.metric = metric

    def after_epoch(self, trainer) -> None:
        if not trainer.ctx.is_main:
            return
        key = f"test_{self.metric}"
        if key not in trainer.evaluation:
            raise ValidationError(f"config field 'best_metric' is {self.metric!r}, but the evaluation has no "
                                  f"{key!r}; expected one of {sorted(k[5:] for k in trainer.evaluation)}")
        value = float(trainer.evaluation[key])
        if trainer.best is not None and not value > trainer.best["value"]:
            return
        state = trainer.state
        trainer.best = {"metric": key, "value": value, "epoch": state.epoch + 1, "step": state.step,
                        "evaluation": dict(trainer.evaluation)}
        save_verified({"model": trainer.network.module.state_dict(), **trainer.best}, trainer.run.best_checkpoint_file)


class Checkpointer(Hook):
    """Writes ``run.checkpoint_file`` (and ``metrics.csv``) every ``checkpoint_every`` steps and
    at every epoch's end; :meth:`load` puts a run back where its checkpoint left it.

    A checkpoint holds model, optimiser, scheduler, AMP scaler, the callbacks' states, every
    RNG state, the position (step, epoch, step in epoch), the open logging window, the last
    evaluation, the best epoch so far (:class:`BestEpoch`), the metrics rows and the training
    time so far.
    """

    def __init__(self, callbacks: Sequence):
        self.callbacks = list(callbacks)

    def after_step(self, trainer, logs) -> None:
        state, every = trainer.state, trainer.config.checkpoint_every
        if every and state.step % every == 0 and state.step_in_epoch < state.steps_per_epoch:
            self.save(trainer, state.epoch, state.step_in_epoch)

    def after_epoch(self, trainer) -> None:
        self.save(trainer, trainer.state.epoch + 1, 0)  # where the next epoch starts

    def save(self, trainer, epoch: int, step_in_epoch: int) -> None:
        if not trainer.ctx.is_main:
            return
        save_verified({
            "model": trainer.network.module.state_dict(), "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(), "scaler": trainer.scaler.state_dict(),
            "callbacks": [c.state_dict() for c in self.callbacks], "rng": rng_state(),
            "step": trainer.state.step, "epoch": epoch, "step_in_epoch": step_in_epoch,
            "window": trainer.window, "window_steps": trainer.window_steps, "evaluation": trainer.evaluation,
            "rows": trainer.run.rows, "elapsed_s": trainer.elapsed_s(), "best": trainer.best,
        }, trainer.run.checkpoint_file)
        trainer.run.flush_metrics()

    def load(self, trainer) -> None:
        """Restore everything :meth:`save` wrote (a missing or damaged file raises, naming it)."""
        run, state = trainer.run, trainer.state
        checkpoint = load_verified(run.checkpoint_file)
        trainer.network.module.load_state_dict(checkpoint["model"])
        trainer.optimizer.load_state_dict(checkpoint["optimizer"])
        trainer.scheduler.load_state_dict(checkpoint["scheduler"])
        trainer.scaler.load_state_dict(checkpoint["scaler"])
        for callback, saved in zip(self.callbacks, checkpoint["callbacks"]):
            callback.load_state_dict(saved)
        state.step, state.epoch = checkpoint["step"], checkpoint["epoch"]
        state.step_in_epoch = checkpoint["step_in_epoch"]
        trainer.window, trainer.window_steps = checkpoint["window"], checkpoint["window_steps"]
        trainer.evaluation = checkpoint["evaluation"]
        trainer.best = checkpoint.get("best")  # absent in checkpoints written before best_metric existed
        trainer.elapsed_before = checkpoint["elapsed_s"]
        run.rows = list(checkpoint["rows"])
        set_rng_state(checkpoint["rng"])
        logger.info("resumed %s at step %d (epoch %d)", run.path, state.step, state.epoch)


def rng_state() -> dict[str, Any]:
    """The torch (and CUDA), numpy and python RNG states, as a checkpoint stores them."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
