"""Dual-stream training (DST) of a full-spike SEW-ResNet, and its spike-only baseline.

What a run trains and writes (``DIR`` = ``--out``):

- ``DIR``: the FSNN trained by DST. The network trained is the DSNN (the FSNN plus the
  auxiliary accumulation pathway, :mod:`workbench.models.fsnn`); the loss of a batch is
  ``CE(spike head) + aap_weight * CE(AAP head)`` (the reference code's sum, ``aap_weight = 1``).
  The run's weights (``model.pt``) are the DSNN's with the AAP removed: the plain FSNN
  architecture (``fsnn_tiny``, ``fsnn18``, ...), whose output is bit-identical with the DSNN's
  spike head, so the run is scored as a full-spike network. Its evaluation: ``test_acc`` and
  ``test_loss`` of the spike head (the FSNN), ``test_acc_dsnn`` and ``test_loss_dsnn`` of the AAP
  head (the DSNN, the AAP kept at test time), ``test_acc_spike_only`` of the baseline.
- ``DIR/snapshots/dsnn/``: the DSNN (``dsnn_tiny``, ...; AAP kept, AAP head), a run directory of
  its own whose analysis layers are the accumulations ``x_acc`` after every block.
- ``DIR/snapshots/spike_only/``: the same FSNN, same initial weights, data order and
  augmentation, trained on the spike head alone (``baseline: true``; a full run directory with
  its own ``metrics.csv`` and checkpoints, resumed with the main run; its card's ``role`` is
  ``baseline``).

With ``grad_norms`` every step logs ``gnorm_<part>``: the L2 norm of the loss gradient over the
parameters of the stem (``stem``), of every block of the spike stream (``layerS.B``, the AAP's
parameters excluded) and of the classifier (``fc``). The card keeps their means over all steps
of both runs and the per-block ratio DST / spike-only (``gradient_norms``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from workbench.errors import ValidationError
from workbench.models.fsnn import CONNECT_FUNCTIONS, DSNN_OF, SURROGATES, FullSpikeResNet, fsnn_state_dict
from workbench.training import Callback, Network, TrainConfig, TrainOutcome, build_network, fit

logger = logging.getLogger(__name__)

#: Where the spike-only baseline and the DSNN are kept, relative to the run directory.
BASELINE_DIR = Path("snapshots") / "spike_only"
DSNN_DIR = Path("snapshots") / "dsnn"


@dataclasses.dataclass(frozen=True)
class DSTConfig(TrainConfig):
    """Shared training fields plus DST's.

    Parameters
    ----------
    arch : str, default: "fsnn_tiny"
        The FSNN trained (``fsnn_tiny``, ``fsnn18``, ``fsnn34``); DST trains its DSNN form.
    connect : {"IAND", "AND", "OR", "XOR"}, default: "IAND"
        Connect function of every block (passed to the architecture).
    surrogate : {"sigmoid", "atan"}, default: "sigmoid"
        Surrogate gradient of every IF neuron (passed to the architecture): spikingjelly's
        Sigmoid with alpha 4, what the reference code ran, or ATan with alpha 2 (the study's).
    aap : bool, default: True
        Train with the AAP (DST). ``False`` trains the FSNN on its spike head alone (the
        baseline, as a run of its own).
    aap_weight : float, default: 1.0
        Weight of the AAP head's cross-entropy in the loss.
    baseline : bool, default: True
        With ``aap``, also train the spike-only baseline into ``snapshots/spike_only``.
    grad_norms : bool, default: True
        Log the per-block gradient norms of every step (``gnorm_*``).
    """

    arch: str = "fsnn_tiny"
    connect: str = "IAND"
    surrogate: str = "sigmoid"
    aap: bool = True
    aap_weight: float = 1.0
    baseline: bool = True
    grad_norms: bool = True

    CHOICES = {**TrainConfig.CHOICES, "connect": CONNECT_FUNCTIONS, "surrogate": tuple(SURROGATES)}

    def __post_init__(self):
        super().__post_init__()
        if self.arch not in DSNN_OF:
            raise ValidationError(f"config field 'arch' is {self.arch!r}; DST trains a full-spike network, "
                                  f"expected one of {sorted(DSNN_OF)}")
        for field in ("connect", "surrogate"):
            if field in self.arch_kwargs:
                raise ValidationError(f"config field 'arch_kwargs' sets {field!r}; set the config field {field!r} "
                                      "instead (it is passed to the architecture)")
        if not (self.aap_weight >= 0 and math.isfinite(self.aap_weight)):
            raise ValidationError(f"config field 'aap_weight' must be a finite number >= 0, found {self.aap_weight}")


def _multi_step(images: torch.Tensor, time_steps: int) -> torch.Tensor:
    return images.unsqueeze(0).expand(time_steps, *images.shape)


def _forward(network: Network, module, images: torch.Tensor, head: str):
    """Per-image logits (mean over T) of ``head`` (a pair for ``"both"``); neuron states reset after."""
    from spikingjelly.activation_based import functional

    try:
        out = module(_multi_step(images, network.time_steps), head=head)
    finally:
        functional.reset_net(network.module)
    return tuple(o.mean(0) for o in out) if head == "both" else out.mean(0)


def dual_step(network: Network, module, images: torch.Tensor, labels: torch.Tensor,
              config: DSTConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One DST step: ``CE(spike head) + aap_weight * CE(AAP head)``; spike-only without the AAP.

    Logs ``loss`` (what is minimised), ``loss_spike`` and ``acc`` (spike head), and with the
    AAP ``loss_aap`` and ``acc_aap``.
    """
    smoothing = config.label_smoothing
    if getattr(network.module, "has_aap", False):
        spike, acc = _forward(network, module, images, "both")
        loss_spike = F.cross_entropy(spike.float(), labels, label_smoothing=smoothing)
        loss_aap = F.cross_entropy(acc.float(), labels, label_smoothing=smoothing)
        loss = loss_spike + config.aap_weight * loss_aap
        logs = {"loss_aap": loss_aap.detach(), "acc_aap": (acc.argmax(1) == labels).float().mean()}
    else:
        spike = _forward(network, module, images, "spike")
        loss = loss_spike = F.cross_entropy(spike.float(), labels, label_smoothing=smoothing)
        logs = {}
    logs |= {"loss": loss.detach(), "loss_spike": loss_spike.detach(),
             "acc": (spike.argmax(1) == labels).float().mean()}
    return loss, logs


@torch.no_grad()
def dual_evaluate(network: Network, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """Spike head (``loss``, ``acc``: the FSNN) and, with the AAP, AAP head (``loss_dsnn``, ``acc_dsnn``)."""
    was_training = network.module.training
    network.module.eval()
    dual = getattr(network.module, "has_aap", False)
    total, sums = 0, {"loss": 0.0, "acc": 0.0, "loss_dsnn": 0.0, "acc_dsnn": 0.0}
    try:
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            heads = _forward(network, network.module, images, "both" if dual else "spike")
            heads = heads if dual else (heads,)
            for suffix, logits in zip(("", "_dsnn"), heads):
                logits = logits.float()
                sums["loss" + suffix] += F.cross_entropy(logits, labels, reduction="sum").item()
                sums["acc" + suffix] += (logits.argmax(1) == labels).sum().item()
            total += len(labels)
    finally:
        network.module.train(was_training)
    keys = ("loss", "acc", "loss_dsnn", "acc_dsnn") if dual else ("loss", "acc")
    return {k: sums[k] / total for k in keys}


def gradient_groups(module: FullSpikeResNet) -> dict[str, list[torch.nn.Parameter]]:
    """Parameters of the spike stream by part: ``stem``, every block (``layerS.B``), ``fc``.

    The AAP's parameters belong to no group (its gradient is not the spike stream's).
    """
    groups = {"stem": [*module.conv1.parameters(), *module.bn1.parameters()]}
    for name, block in module.blocks:
        groups[name] = list(block.parameters())
    groups["fc"] = list(module.fc.parameters())
    return groups


def gradient_norm(params) -> float:
    """L2 norm of the gradients of ``params`` taken together (parameters without a gradient count 0)."""
    total = 0.0
    for p in params:
        if p.grad is not None:
            total += float(p.grad.detach().double().pow(2).sum())
    return math.sqrt(total)


class GradientNormCallback(Callback):
    """Logs ``gnorm_<part>`` after every step and keeps their sums for the run's means.

    The norms are of the gradients the optimiser just used (the loss's, before weight decay),
    so under torchrun of the gradients averaged over the processes.
    """

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.steps = 0
        self._groups = None

    def on_train_start(self, state, network) -> None:
        self._groups = gradient_groups(network.module)

    def on_step_end(self, state, network, logs) -> None:
        for name, params in self._groups.items():
            value = gradient_norm(params)
            logs[f"gnorm_{name}"] = value
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.steps += 1

    def means(self) -> dict[str, float]:
        """Mean gradient norm of every part over all steps of the run (resumed parts included)."""
        return {k: v / self.steps for k, v in self.sums.items()} if self.steps else {}

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums = dict(state.get("sums", {}))
        self.steps = int(state.get("steps", 0))


def build_dst_network(config: DSTConfig, num_classes: int, *, aap: bool | None = None) -> Network:
    """The DSNN (``aap``, default the config's) or the FSNN of ``config.arch``, seeded by ``config.seed``.

    The FSNN's initial weights equal the DSNN's with the AAP removed (the AAP is initialised
    last), so DST and its baseline start from the same network.
    """
    aap = config.aap if aap is None else aap
    name = DSNN_OF[config.arch] if aap else config.arch
    return build_network(name, time_steps=config.time_steps, seed=config.seed, num_classes=num_classes,
                         connect=config.connect, surrogate=config.surrogate, **config.arch_kwargs)


def export_fsnn(dsnn: Network, config: DSTConfig) -> Network:
    """The FSNN of a (trained) DSNN: the plain architecture with the AAP's parameters dropped."""
    fsnn = build_network(config.arch, time_steps=dsnn.time_steps, seed=config.seed,
                         **{k: v for k, v in dsnn.kwargs.items()})
    fsnn.module.load_state_dict(fsnn_state_dict(dsnn.module.state_dict()), strict=True)
    fsnn.module.to(next(dsnn.module.parameters()).device)
    return fsnn


def _train_baseline(config: DSTConfig, run, data) -> tuple[dict[str, float], dict[str, float], float]:
    """Train (or resume, or read) the spike-only baseline in ``run.path / BASELINE_DIR``.

    Returns its evaluation, its mean gradient norms and its training time (s).
    """
    card = run.finished_child(BASELINE_DIR.name)
    if card is not None:
        return card["evaluation"], (card.get("gradient_norms") or {}), float(card.get("wall_time_s", 0.0))
    base = run.child(BASELINE_DIR.name, config.replace(aap=False, baseline=False), role="baseline")
    network = build_dst_network(base.config, data.num_classes)
    callbacks = [GradientNormCallback()] if config.grad_norms else []
    result = fit(base.config, base, network, data, callbacks=callbacks, step_fn=dual_step, eval_fn=dual_evaluate)
    norms = callbacks[0].means() if callbacks else {}
    base.finish(network, network.module.state_dict(), data, {
        "description": "spike-only baseline: the same FSNN, initial weights and data order, trained on the "
                       "spike head alone",
        "evaluation": result.evaluation, "wall_time_s": round(result.wall_time_s, 3), "gradient_norms": norms})
    return result.evaluation, norms, result.wall_time_s


def train(config: DSTConfig, run) -> TrainOutcome:
    """Train the DSNN by DST (and the spike-only baseline); the outcome's weights are the FSNN's."""
    from workbench.data.training import load_training_data

    data = load_training_data(config.dataset, root=config.data_root, augment=config.augment)
    network = build_dst_network(config, data.num_classes)
    callbacks = [GradientNormCallback()] if config.grad_norms else []
    result = fit(config, run, network, data, callbacks=callbacks, step_fn=dual_step, eval_fn=dual_evaluate)
    norms = callbacks[0].means() if callbacks else {}
    evaluation = dict(result.evaluation)
    extra: dict[str, Any] = {"dst": {"aap": config.aap, "connect": config.connect,
                                     "aap_weight": config.aap_weight if config.aap else None}}
    if not config.aap:  # a spike-only run: the network is the FSNN already
        extra["gradient_norms"] = norms
        return TrainOutcome(network, network.module.state_dict(), data, evaluation, extra=extra,
                            wall_time_s=result.wall_time_s)
    run.write_snapshot(DSNN_DIR.name, network, network.module.state_dict(), data, {
        "description": "DSNN: the DST-trained network with its AAP kept (AAP head)",
        "evaluation": {"test_acc": evaluation.get("test_acc_dsnn"), "test_loss": evaluation.get("test_loss_dsnn"),
                       "test_acc_spike_head": evaluation.get("test_acc")}})
    extra["dst"] |= {"dsnn": str(DSNN_DIR), "dsnn_architecture": network.name}
    fsnn = export_fsnn(network, config)
    wall = result.wall_time_s
    extra["gradient_norms"] = {"dst": norms}
    if config.baseline:
        base_eval, base_norms, base_wall = _train_baseline(config, run, data)
        evaluation["test_acc_spike_only"] = base_eval.get("test_acc")
        evaluation["test_loss_spike_only"] = base_eval.get("test_loss")
        extra["dst"]["spike_only"] = str(BASELINE_DIR)
        extra["gradient_norms"] |= {"spike_only": base_norms, "ratio": {
            k: (norms[k] / base_norms[k] if base_norms.get(k) else float("nan")) for k in norms}}
        wall += base_wall
    return TrainOutcome(fsnn, fsnn.module.state_dict(), data, evaluation, extra=extra, wall_time_s=wall)


def evaluate(run_dir: str | os.PathLike, *, batch_size: int = 256) -> dict[str, float]:
    """Re-evaluate a finished DST run from its files.

    Returns
    -------
    dict
        ``test_loss``, ``test_acc`` of the FSNN (the run's weights); ``test_loss_dsnn``,
        ``test_acc_dsnn`` of the DSNN's AAP head (``snapshots/dsnn``) and ``test_acc_spike_only``,
        ``test_loss_spike_only`` of the baseline (``snapshots/spike_only``), when they exist.
    """
    from workbench.training.evaluation import evaluate_classifier_on, load_run_data, load_run_network
    from workbench.training.model_card import is_run_directory

    run_dir = Path(run_dir)
    card, network = load_run_network(run_dir)
    data, config = load_run_data(run_dir, card)
    result = evaluate_classifier_on(network, data, config, batch_size=batch_size)
    for folder, suffix in ((DSNN_DIR, "_dsnn"), (BASELINE_DIR, "_spike_only")):
        if is_run_directory(run_dir / folder):
            _, other = load_run_network(run_dir / folder)
            values = evaluate_classifier_on(other, data, config, batch_size=batch_size)  # a DSNN: its AAP head
            result |= {k + suffix: v for k, v in values.items()}
    return result
