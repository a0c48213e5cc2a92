"""Train PART and its baseline on the shared loop; the saved network runs the global branch only.

A run (``workbench train part``):

1. with ``baseline: true`` (default), trains the **baseline** first, into
   ``RUN/snapshots/baseline/`` (its own ``metrics.csv``, checkpoint and card: a scorable run
   directory): the same backbone and global transformer, same data and seed, cross-entropy on
   the global branch only (``part_net`` with ``parts=0``);
2. trains **PART** into ``RUN``: every step discovers the parts of the batch from the last
   stage's channel maps with thresholds ``tau ~ U(tau_min, tau_max)`` (one per candidate
   channel, drawn from torch's global RNG, so a resumed run draws the same) and minimises

   ``L = CE(global) + part_loss_weight * sum_p CE(part_p)``

   with label smoothing ``label_smoothing`` on every term (the reference's ``loss_g +
   (loss_1 + ... + loss_4) / 10`` with ``CrossEntropyLabelSmooth``, epsilon 0.1;
   ``processor/processor.py``);
3. saves the **global-only** network (``part_net`` with ``parts=0``, the part branches
   dropped): test-time inference is the global branch alone, as in the paper; the
   evaluation after every epoch already uses only that branch.

The card's ``part`` field holds both networks' test accuracies (``accuracy``: PART vs
baseline) and, on ``fg_motifs``, the part hit rate on the generator's motif boxes and its
chance level (:func:`workbench.methods.part.analysis.hit_rate`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import torch
import torch.nn.functional as F

from workbench.errors import ValidationError
from workbench.models.part import PART_ENCODERS, PART_POOLINGS, PART_SELECTIONS
from workbench.training import RunDir, TrainConfig, TrainOutcome, build_network, fit

logger = logging.getLogger(__name__)

VARIANTS = ("part", "baseline")
#: ``part_net`` arguments taken from the config fields of the same names (never from ``arch_kwargs``).
ARCH_FIELDS = ("top_channels", "nms_iou", "part_selection", "part_pooling", "part_encoders")


@dataclasses.dataclass(frozen=True)
class PARTConfig(TrainConfig):
    """Shared training fields plus PART's.

    Parameters
    ----------
    variant : {"part", "baseline"}, default: "part"
        What the run trains (``baseline``: the global branch alone).
    baseline : bool, default: True
        Also train the baseline, as ``snapshots/baseline/`` (``variant: part`` only).
    parts : int, default: 4
        Part branches (``NUM_SELECT_PART``).
    top_channels : int, default: 64
        Candidate channels of part discovery (``NUM_PART_STACK``).
    tau_min, tau_max : float, default: 0.4, 0.6
        Training thresholds are drawn uniformly in ``[tau_min, tau_max]``.
    tau_test : float, default: 0.5
        Threshold of the parts shown and scored after training.
    nms_iou : float, default: 0.6
    part_selection : {"connected_region", "reference_as_run"}, default: "connected_region"
        Part discovery rule (``workbench.models.part.discover_parts``): the paper's description,
        or the reference's main loop as it runs (the ``paper`` preset).
    part_pooling : {"inside_mask", "all_positions"}, default: "inside_mask"
        What a part branch averages (``all_positions``: the reference, the ``paper`` preset).
    part_encoders : {"separate", "reference_shared_p3"}, default: "separate"
        An encoder per part branch, or the 4th branch through the 3rd's encoder (the reference's
        ``forward_multi``, the ``paper`` preset; ``parts`` must be 4).
    part_loss_weight : float, default: 0.1
        Weight of the summed part losses (the reference's ``/ 10``).
    data_seed : int, default: 0
        Seed of the generated ``fg_motifs`` task.
    tiny_classes, tiny_train_per_class, tiny_test_per_class : int
        Size of ``fg_motifs``.
    """

    variant: str = "part"
    baseline: bool = True
    parts: int = 4
    top_channels: int = 64
    tau_min: float = 0.4
    tau_max: float = 0.6
    tau_test: float = 0.5
    nms_iou: float = 0.6
    part_selection: str = "connected_region"
    part_pooling: str = "inside_mask"
    part_encoders: str = "separate"
    part_loss_weight: float = 0.1
    data_seed: int = 0
    tiny_classes: int = 10
    tiny_train_per_class: int = 80
    tiny_test_per_class: int = 40

    CHOICES = {**TrainConfig.CHOICES, "variant": VARIANTS, "part_selection": PART_SELECTIONS,
               "part_pooling": PART_POOLINGS, "part_encoders": PART_ENCODERS}

    def __post_init__(self):
        super().__post_init__()
        self.check_minimum(1, "parts", "tiny_classes", "tiny_train_per_class", "tiny_test_per_class")
        self.check_minimum(0, "part_loss_weight")
        if self.top_channels < self.parts:
            raise ValidationError(f"config field 'top_channels' ({self.top_channels}) must be >= "
                                  f"'parts' ({self.parts})")
        if not 0 < self.tau_min <= self.tau_max <= 1 or not 0 < self.tau_test <= 1:
            raise ValidationError(f"config fields 'tau_min', 'tau_max', 'tau_test' are {self.tau_min}, {self.tau_max}, "
                                  f"{self.tau_test}; expected 0 < tau_min <= tau_max <= 1 and 0 < tau_test <= 1")
        if not 0 <= self.nms_iou <= 1:
            raise ValidationError(f"config field 'nms_iou' must be in [0, 1], found {self.nms_iou}")


def arch_kwargs(config: PARTConfig, num_classes: int, parts: int) -> dict[str, Any]:
    """Keyword arguments of ``part_net`` for a variant (``parts=0``: the global-only network)."""
    return {"num_classes": num_classes, "parts": parts, **{name: getattr(config, name) for name in ARCH_FIELDS},
            **config.arch_kwargs}


def make_step(config: PARTConfig, variant: str):
    """``step_fn`` of a variant for :func:`workbench.training.fit` (see the module docstring)."""

    def step(network, module, images, labels, cfg):
        if variant == "baseline":
            logits = module(images)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
            acc = (logits.argmax(1) == labels).float().mean()
            return loss, {"loss": loss.detach(), "acc": acc.detach()}
        taus = torch.empty(images.shape[0], config.top_channels).uniform_(config.tau_min, config.tau_max)
        global_logits, part_logits, _ = module(images, part_taus=taus)
        loss_global = F.cross_entropy(global_logits.float(), labels, label_smoothing=cfg.label_smoothing)
        part_losses = [F.cross_entropy(part_logits[:, p].float(), labels, label_smoothing=cfg.label_smoothing)
                       for p in range(part_logits.shape[1])]
        loss_parts = torch.stack(part_losses).sum()
        loss = loss_global + config.part_loss_weight * loss_parts
        acc = (global_logits.argmax(1) == labels).float().mean()
        acc_parts = (part_logits.argmax(2) == labels[:, None]).float().mean()
        return loss, {"loss": loss.detach(), "acc": acc.detach(), "loss_global": loss_global.detach(),
                      "loss_parts": loss_parts.detach(), "acc_parts": acc_parts.detach()}

    return step


def global_network(config: PARTConfig, network, num_classes: int):
    """The global-only ``part_net`` (``parts=0``) holding ``network``'s global weights."""
    from workbench.models.part import global_state_dict

    plain = build_network("part_net", seed=config.seed, **arch_kwargs(config, num_classes, 0))
    plain.module.load_state_dict(global_state_dict(network.module.state_dict()), strict=True)
    plain.module.eval()
    return plain


def train_variant(config: PARTConfig, variant: str, run: RunDir, data):
    """Train one variant on the shared loop; ``(global-only network, fit result)``."""
    parts = config.parts if variant == "part" else 0
    network = build_network("part_net", seed=config.seed, **arch_kwargs(config, data.num_classes, parts))
    result = fit(config, run, network, data, step_fn=make_step(config, variant))
    network.module.cpu()
    plain = global_network(config, network, data.num_classes) if parts else network
    return plain, result


def _part_stats(config: PARTConfig, network, data) -> dict[str, Any]:
    """Hit rate of the discovered parts on ``fg_motifs`` (empty for other data)."""
    if getattr(data.test, "motif_boxes", None) is None:
        return {}
    from workbench.methods.part.analysis import hit_rate

    return hit_rate(network.module, data.test, tau=config.tau_test, parts=config.parts,
                    limit=config.limit_test or None)


def train(config: PARTConfig, run) -> TrainOutcome:
    """Train the baseline (snapshot) and PART; the outcome is PART's global-only network."""
    from workbench.methods.part.data import load_data

    if config.arch != "part_net":
        raise ValidationError(f"config field 'arch' is {config.arch!r}; PART trains the 'part_net' architecture "
                              "(its backbone and widths go in arch_kwargs)")
    bad = sorted(set(config.arch_kwargs) & {"num_classes", "parts", *ARCH_FIELDS})
    if bad:
        raise ValidationError(f"config field 'arch_kwargs' sets {bad}; set them as config fields instead "
                              f"({', '.join(ARCH_FIELDS)}; num_classes and parts follow from the data and the variant)")
    data = load_data(config, augment=config.augment)
    plain_data = load_data(config, augment=False) if config.augment else data
    baseline = None
    if config.variant == "part" and config.baseline:
        baseline = _train_baseline(config, run, data, plain_data)
    network, result = train_variant(config, config.variant, run, data)
    stats = _part_stats(config, network, plain_data)
    evaluation = dict(result.evaluation)
    accuracy = {config.variant: evaluation.get("test_acc")}
    if baseline is not None:
        accuracy["baseline"] = baseline["evaluation"].get("test_acc")
    extra = {"part": {"variant": config.variant, "inference": "global branch only", "accuracy": accuracy,
                      "hit_rate": stats, "baseline_hit_rate": (baseline or {}).get("hit_rate", {}),
                      "tau_test": config.tau_test, "parts": config.parts}}
    wall = result.wall_time_s + (baseline or {}).get("wall_time_s", 0.0)
    return TrainOutcome(network, network.module.state_dict(), data, evaluation, extra=extra, wall_time_s=wall)


def _train_baseline(config: PARTConfig, run, data, plain_data) -> dict:
    """Train the baseline into ``RUN/snapshots/baseline/`` (or read it back when finished)."""
    card = run.finished_child("baseline")
    if card is not None:
        return {"evaluation": card["evaluation"], "wall_time_s": card.get("wall_time_s", 0.0),
                "hit_rate": card.get("part", {}).get("hit_rate", {})}
    sub = run.child("baseline", config.replace(variant="baseline", baseline=False), role="baseline")
    network, result = train_variant(sub.config, "baseline", sub, data)
    stats = _part_stats(config, network, plain_data)
    sub.finish(network, network.module.state_dict(), data, {
        "variant": "baseline", "evaluation": result.evaluation, "wall_time_s": round(result.wall_time_s, 3),
        "part": {"variant": "baseline", "inference": "global branch only", "hit_rate": stats,
                 "tau_test": config.tau_test, "parts": config.parts}})
    return {"evaluation": result.evaluation, "wall_time_s": result.wall_time_s, "hit_rate": stats}


def load_run(run_dir: str | os.PathLike):
    """``(card, network (eval), data without augmentation, config)`` of a finished run or snapshot."""
    from workbench.methods.part.data import load_data
    from workbench.training.evaluation import load_run_data, load_run_network

    card, network = load_run_network(run_dir)
    data, config = load_run_data(run_dir, card, load_data=load_data)
    return card, network, data, config


@torch.no_grad()
def evaluate(run_dir: str | os.PathLike, *, batch_size: int = 256) -> dict[str, Any]:
    """Global-only test loss and accuracy of a finished run (or its baseline), and the part hit rate.

    Returns
    -------
    dict
        ``test_loss``, ``test_acc`` (top-1, fraction) of the saved global-only network, and on
        ``fg_motifs`` ``hit_rate``, ``chance``, ``mean_box_area`` (:func:`.analysis.hit_rate`).
    """
    from workbench.training.evaluation import evaluate_classifier_on

    card, network, data, config = load_run(run_dir)
    result = evaluate_classifier_on(network, data, config, batch_size=batch_size)
    result.update(_part_stats(config, network, data))
    return result
