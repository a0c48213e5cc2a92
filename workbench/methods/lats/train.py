"""Train a zoo network with soft-threshold pruning (LATS and its baselines) on the shared loop.

Timeline of a run (``E = epochs``, ``E0 = dense_epochs``, ``S`` steps per epoch):

- epochs ``0 .. E0-1``: dense training (threshold 0; the network computes exactly its plain
  forward). The network at the end of this phase is kept as the snapshot ``dense``.
- epochs ``E0 .. E-1``: the pruning phase of ``T = (E - E0) * S`` steps. ``schedule`` says how
  the global threshold rises from 0 to ``D`` (:mod:`.schedules`); ``"oneshot"`` instead prunes
  by global weight magnitude to ``target_sparsity`` at the first step of the phase and
  fine-tunes with the mask fixed. A snapshot ``prune_eNN`` is written after every pruning
  epoch (its card holds the sparsity, threshold, step and epoch).

The learning rate is the shared loop's (cosine over all ``E`` epochs by default, updated every
step). ``"ista"`` reads it (constant L1 coefficient whatever the learning rate); ``"lats"``,
``"slats"`` and ``"pgh"`` are the reference code's closed forms for a cosine over the pruning
phase (``--low-freq``, ``sinp``, ``sinppgh``), whatever the actual learning rate, as there.

The weights saved as ``model.pt`` are the effective (pruned) weights of the plain zoo
architecture (:func:`~.pruning.export_effective_state_dict`), so the run loads, scores and
re-evaluates like any run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch

from workbench.errors import ValidationError
from workbench.methods.lats import pruning
from workbench.methods.lats.schedules import SCHEDULES, threshold_schedule
from workbench.training import Callback, TrainConfig, TrainOutcome, build_network, fit

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LATSConfig(TrainConfig):
    """Shared training fields plus the pruning ones.

    Parameters
    ----------
    schedule : {"lats", "slats", "pgh", "linear", "ista", "oneshot"}, default: "lats"
        Threshold schedule of the pruning phase (see :mod:`workbench.methods.lats.schedules`).
    beta : float or None, default: None
        ``"pgh"`` only (required there): the growth base of its L1 coefficient (> 0).
    D : float or None, default: 0.05
        Final threshold (weight units). The final sparsity is an outcome of ``D``. ``None``
        (the paper preset) must be replaced with ``--set D=...`` before training.
    dense_epochs : int, default: 2
        Epochs of dense training before pruning starts (< ``epochs``; >= 1 for ``"oneshot"``).
    prune_first_last : bool, default: False
        Also prune the first conv and the last linear layer. The reference code prunes every
        layer (its configs leave ``--first-layer-dense`` / ``--last-layer-dense`` off): the paper
        preset sets ``true``; the default keeps them dense, the small presets' choice.
    init : {"zoo", "kaiming_fan_in"}, default: "zoo"
        Initial weights of the pruned layers: the zoo architecture's own, or, as the reference
        code's builder does for every conv (fc included), kaiming-normal with fan-in and the
        ReLU gain, drawn from ``seed`` (the paper preset). One global threshold prunes every
        layer, so the per-layer scale of the initial weights shapes where the sparsity falls.
    target_sparsity : float, default: 0.9
        ``"oneshot"`` only: fraction of the pruned layers' weights zeroed (global magnitude).
    snapshots : bool, default: True
        Keep the dense network and one network per pruning epoch under ``snapshots/``.
    """

    schedule: str = "lats"
    beta: float | None = None
    D: float | None = 0.05
    dense_epochs: int = 2
    prune_first_last: bool = False
    init: str = "zoo"
    target_sparsity: float = 0.9
    snapshots: bool = True

    CHOICES = {**TrainConfig.CHOICES, "schedule": SCHEDULES, "init": ("zoo", "kaiming_fan_in")}

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.dense_epochs < self.epochs:
            raise ValidationError(f"config field 'dense_epochs' is {self.dense_epochs}; expected 0 <= "
                                  f"dense_epochs < epochs ({self.epochs}) so that pruning has epochs left")
        if self.schedule == "oneshot" and self.dense_epochs < 1:
            raise ValidationError("config field 'dense_epochs' must be >= 1 with schedule 'oneshot': "
                                  "magnitude pruning needs trained weights to rank")
        if self.D is not None and not self.D >= 0:
            raise ValidationError(f"config field 'D' (final threshold) must be >= 0, found {self.D}")
        if self.schedule == "pgh" and not (self.beta is not None and math.isfinite(self.beta) and self.beta > 0):
            raise ValidationError(f"config field 'beta' is {self.beta}; schedule 'pgh' needs its growth base, "
                                  "a finite beta > 0: pass --set beta=<beta>")
        if not 0 <= self.target_sparsity < 1:
            raise ValidationError(f"config field 'target_sparsity' must be in [0, 1), found {self.target_sparsity}")


class PruningCallback(Callback):
    """Sets the global threshold from the step (or applies the one-shot mask) and keeps snapshots.

    The threshold is a pure function of ``state.step``; it is set before every step's forward
    pass and after every optimiser step, so that the test evaluation and the exported network
    at the end of an epoch use ``d`` of the steps done (``D`` after the last one).
    """

    def __init__(self, config: LATSConfig, layers: list[str], run=None, data=None):
        self.config = config
        self.layers = list(layers)
        self.run = run
        self.data = data
        self.masked = False
        self._fn = None
        self._start = 0
        self.threshold = 0.0

    # --- threshold as a function of the step ------------------------------------------------
    def _setup(self, state) -> None:
        self._start = self.config.dense_epochs * state.steps_per_epoch
        if self.config.schedule != "oneshot":
            self._fn = threshold_schedule(
                self.config.schedule, D=self.config.D, total_steps=state.total_steps - self._start,
                steps_per_epoch=state.steps_per_epoch, lr_at=lambda t: state.lr_at(self._start + t),
                beta=self.config.beta)

    def threshold_at(self, step: int) -> float:
        """``d`` after ``step`` optimiser steps of the whole run (0 during the dense phase)."""
        return 0.0 if step <= self._start else float(self._fn(step - self._start))

    def _sync(self, state, network) -> None:
        if self.config.schedule == "oneshot":
            if state.step >= self._start and not self.masked:
                self._apply_mask(network)
            return
        self.threshold = self.threshold_at(state.step)
        pruning.set_threshold(network.module, self.threshold)

    @torch.no_grad()
    def _apply_mask(self, network) -> None:
        module = network.module
        layers = self.layers
        weights = {name: module.get_submodule(name).weight for name in layers}
        masks = pruning.magnitude_masks(weights, self.config.target_sparsity)
        for name in layers:
            sub = module.get_submodule(name)
            for p in sub.parametrizations.weight:
                if isinstance(p, pruning.FixedMask):
                    p.mask.copy_(masks[name])
            sub.parametrizations.weight.original.mul_(masks[name].to(sub.weight.dtype))
        self.masked = True
        logger.info("one-shot magnitude pruning to %.3f of %d layers", self.config.target_sparsity, len(layers))

    # --- hooks ------------------------------------------------------------------------------
    def on_train_start(self, state, network) -> None:
        self._setup(state)
        self._sync(state, network)

    def on_step_start(self, state, network) -> None:
        self._sync(state, network)

    def on_step_end(self, state, network, logs) -> None:
        if self.config.schedule != "oneshot":
            self._sync(state, network)
            logs["threshold"] = self.threshold

    def on_epoch_end(self, state, network) -> dict[str, float]:
        report = pruning.sparsity_report(network.module)
        values = {"sparsity": report.overall, "sparsity_pruned": report.pruned_overall}
        if self.config.snapshots and self.run is not None:
            epoch = state.epoch + 1  # epochs done
            name = None
            if epoch == self.config.dense_epochs:
                name = "dense"
            elif epoch > self.config.dense_epochs:
                name = f"prune_e{epoch:02d}"
            if name is not None:
                self.run.write_snapshot(
                    name, network, pruning.export_effective_state_dict(network.module), self.data,
                    {"sparsity": report.overall, "sparsity_pruned": report.pruned_overall,
                     "threshold": self.threshold, "step": state.step, "epoch": epoch,
                     "schedule": self.config.schedule, "pruning": {"pruned_layers": self.layers}})
        return values

    def state_dict(self) -> dict[str, Any]:
        return {"masked": self.masked}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masked = bool(state.get("masked", False))


@torch.no_grad()
def reference_init(module: torch.nn.Module, layers: list[str], seed: int) -> None:
    """Kaiming-normal weights (fan-in, ReLU gain: std ``sqrt(2 / fan_in)``) for ``layers``, in order.

    What the reference code's builder gives every conv of its networks (``init: kaiming_normal``,
    ``mode: fan_in`` in its configs; its fc is a 1x1 conv). Drawn from a generator seeded by ``seed``.
    """
    generator = torch.Generator().manual_seed(int(seed))
    for name in layers:
        weight = module.get_submodule(name).weight
        fresh = torch.empty(weight.shape, dtype=weight.dtype)
        torch.nn.init.kaiming_normal_(fresh, mode="fan_in", nonlinearity="relu", generator=generator)
        weight.copy_(fresh)


def prepare_network(network, config: LATSConfig) -> list[str]:
    """Parametrise the prunable layers: soft threshold (d = 0), or an all-keep mask for oneshot.

    With ``config.init == "kaiming_fan_in"`` their weights are first re-drawn as the reference's.
    """
    layers = pruning.prunable_layers(network.module, prune_first_last=config.prune_first_last)
    if config.init == "kaiming_fan_in":
        reference_init(network.module, layers, config.seed)
    if config.schedule == "oneshot":
        for name in layers:
            sub = network.module.get_submodule(name)
            torch.nn.utils.parametrize.register_parametrization(
                sub, "weight", pruning.FixedMask(torch.ones_like(sub.weight, dtype=torch.bool)))
    else:
        pruning.apply_soft_threshold(network.module, layers, threshold=0.0)
    return layers


def train(config: LATSConfig, run) -> TrainOutcome:
    """Train, prune and export; the outcome's weights are the plain architecture's, pruned."""
    from workbench.data.training import load_training_data

    if config.D is None and config.schedule != "oneshot":
        raise ValidationError(f"config field 'D' (final threshold) is not set; schedule {config.schedule!r} "
                              "needs it: pass --set D=<threshold> (the final sparsity grows with D)")
    data = load_training_data(config.dataset, root=config.data_root, augment=config.augment)
    network = build_network(config.arch, time_steps=config.time_steps, seed=config.seed,
                            num_classes=data.num_classes, **config.arch_kwargs)
    layers = prepare_network(network, config)
    callback = PruningCallback(config, layers, run, data)
    result = fit(config, run, network, data, callbacks=[callback])
    report = pruning.sparsity_report(network.module)
    evaluation = dict(result.evaluation) | {"sparsity": report.overall,
                                            "sparsity_pruned": report.pruned_overall}
    extra = {"pruning": {"schedule": config.schedule, "final_threshold": callback.threshold,
                         "D": config.D, "beta": config.beta, "init": config.init,
                         "dense_epochs": config.dense_epochs,
                         "target_sparsity": config.target_sparsity if config.schedule == "oneshot" else None,
                         "pruned_layers": layers},
             "sparsity": report.to_dict()}
    return TrainOutcome(network, pruning.export_effective_state_dict(network.module), data, evaluation,
                        extra=extra, wall_time_s=result.wall_time_s)


@torch.no_grad()
def evaluate(run_dir: str | os.PathLike, *, batch_size: int = 256) -> dict[str, Any]:
    """Re-evaluate a finished run (or one of its snapshots) from its files.

    Returns
    -------
    dict
        ``test_loss``, ``test_acc`` (top-1, fraction), ``sparsity`` (all conv/linear weights),
        ``sparsity_pruned`` (the layers the run pruned) and ``sparsity_layers``
        (layer -> fraction of zero weights).
    """
    from workbench.training.evaluation import evaluate_classifier_on, load_run_data, load_run_network

    run_dir = Path(run_dir)
    card, network = load_run_network(run_dir)
    data, config = load_run_data(run_dir, card)
    result = evaluate_classifier_on(network, data, config, batch_size=batch_size)
    pruned = set((card.get("pruning") or {}).get("pruned_layers") or [])
    report = pruning.sparsity_report(network.module)
    if pruned:  # mark the layers the run pruned (a plain network cannot tell a dense layer apart)
        report = pruning.SparsityReport({name: dataclasses.replace(layer, pruned=name in pruned)
                                         for name, layer in report.layers.items()})
    result.update({"sparsity": report.overall, "sparsity_pruned": report.pruned_overall,
                   "sparsity_layers": {n: layer.sparsity for n, layer in report.layers.items()}})
    return result
