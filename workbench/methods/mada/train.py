"""Train MADA / MADAv2 and their baselines on the shared loop; evaluate target mIoU.

Timeline of a run (each phase is one :func:`workbench.training.fit` in ``DIR/phases/<name>/``
with its own ``metrics.csv`` and checkpoint; a finished phase keeps ``model.pt`` and
``evaluation.json``, so ``--resume`` skips it):

1. ``source``: the warm-up, cross-entropy on the labelled source domain (``epochs``,
   ``batch_size``, ``lr``...). Its weights are the ``source_only`` baseline.
2. Descriptors of the warm-up model (:mod:`.anchors`): source images with their ground truth,
   target training images with the model's predictions. Source anchors: k-means with
   ``num_anchors`` clusters; target anchors (MADAv2): k-means on the target descriptors.
3. Selection, each strategy at the same budget (``budget`` of the target pool, at least one
   image): ``mada`` (distance to the nearest source anchor), ``madav2`` (+ distance to the
   nearest target anchor), ``centroid`` (MADA's score with one source anchor) and ``random``.
   The strategy ``selection`` names gives the run's model; with ``baselines`` every other one
   is trained too, from the same warm-up, and kept as a snapshot, with ``source_only`` and
   (``self_training``) plain self-training without active labels.
4. ``<strategy>_stage1`` (``adapt_steps`` steps): CE on a source batch + CE on a batch of the
   selected target images (``adapt_batch_size`` images per stream, ``adapt_lr``).
5. ``<strategy>_stage2`` (``adapt2_steps`` steps, ``stage2``): target anchors re-clustered from
   the stage-1 model's descriptors of the target pool; loss = CE source + CE selected + CE on
   pseudo-labels of unselected target images at image resolution (``pseudo_labels: reference``:
   of every target image, at the output stride; the argmax of the model, or of its mean teacher
   with ``mean_teacher``, pixels under ``pseudo_threshold`` confidence ignored) +
   ``anchor_weight`` x the anchor loss (harmonic mean over the target anchors of the masked
   MSE of each target descriptor), the nearest anchor of each descriptor updated by EMA
   (``anchor_momentum``). MADAv2's reference stage 2 (:mod:`.madav2`, :mod:`.cutmix`): no source stream
   (``stage2_source``), AEL's class-sampled CE (``pseudo_loss``) and CutMix bank (``cutmix_bank``). The
   reference code computes pseudo-labels and descriptors from the
   same forward pass of the student; the mean teacher (EMA of the student, ``teacher_momentum``)
   is MADAv2's stage-2 refinement, as an option.
6. mIoU on the target test set (confusion matrix, ignore label 255; ``eval_labels``) of every network:
   ``miou.csv`` (per class), ``miou_summary.csv`` (per model) and ``selection.csv`` (each
   strategy's selected images, their scores and, for generated scenes, their target condition).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import typing
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from workbench.errors import ValidationError
from workbench.methods.mada.anchors import (
    AnchorBank,
    agreeing_labels,
    anchor_loss,
    class_descriptors,
    fit_anchors,
    select_top,
    selection_scores,
)
from workbench.methods.mada import madav2
from workbench.methods.mada.cutmix import CutMixBank, box_mask, cutmix_box, swap_box
from workbench.methods.mada.data import load_domains
from workbench.methods.mada.metrics import (
    IGNORE,
    confusion_matrix,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
    upsampled_argmax,
)
from workbench.models.segmentation import Segmenter
from workbench.training import Callback, TrainConfig, TrainOutcome, build_network
from workbench.training.distributed import gather_in_rank_order
from workbench.training.evaluation import load_run_config
from workbench.training.phases import adopt_phase_metrics, phase_wall_time, run_phase

logger = logging.getLogger(__name__)

STRATEGIES = ("mada", "madav2", "centroid", "random")
MIOU_FILE, SUMMARY_FILE, SELECTION_FILE = "miou.csv", "miou_summary.csv", "selection.csv"


@dataclasses.dataclass(frozen=True)
class MADAConfig(TrainConfig):
    """Shared fields (the source warm-up's schedule) plus MADA's.

    Parameters
    ----------
    dataset : {"scenes", "gta5_cityscapes", "synthia_cityscapes"}
    source_root, target_root : str
        GTA5 / SYNTHIA-RAND-CITYSCAPES folder and Cityscapes folder (real datasets).
    num_classes : int
        19 or 16 (SYNTHIA protocol) for real datasets; the scenes have 6.
    image_size : tuple of int
        ``(S,)`` side of generated scenes; ``(H, W)`` the real images are resized to.
    data_seed : int
        Seed of the generated domains (-1: the run's ``seed``).
    source_images, target_images, test_images : int
        Sizes of the generated source set, target pool and target test set.
    selection : {"mada", "madav2", "centroid", "random"}
        The strategy of the run's model.
    baselines : bool
        Also train every other strategy, keep ``source_only`` (and ``self_training``) as snapshots.
    self_training : bool
        With ``baselines``: plain self-training (source CE + pseudo-label CE, no active labels).
    budget : float
        Fraction of the target pool to label.
    num_anchors : int
        K of the k-means anchors (source and target).
    min_pixels : int
        Pixels (at feature resolution) for a class to count as present in a descriptor.
    source_descriptors : {"label", "label_and_prediction"}
        Pixels of a source descriptor's class c: labelled c (``label``), or labelled c and
        predicted c by the warm-up model (``label_and_prediction``, the reference code's).
    anchor_gradient_scaling : bool
        The reference's ``normalisation_pooling``: the anchor loss's gradient through each
        class descriptor is multiplied by 2 x the class's pixel fraction (forward unchanged).
    adapt_steps, adapt2_steps : int
        Steps of stage 1 and stage 2.
    adapt_batch_size : int
        Images per stream (source, selected target, unselected target) in each adaptation step.
    adapt_lr : float
    stage2 : bool
    stage2_source : bool
        Stage 2 keeps the source stream's CE (MADA); off: no source images in stage 2 (MADAv2's reference).
    active_loss : {"ce", "ohem"}
        Stage 2's loss on the selected target images: CE, or OHEM (MADAv2's reference, :mod:`.madav2`).
    ohem_thresh, ohem_min_kept : float, int
        OHEM: pixels with label probability <= ``ohem_thresh`` count, at least ``ohem_min_kept`` per batch.
    anchor_weight : float
        Factor of the anchor loss (the reference code's ``cls_feature_weight``: 0.7).
    anchor_momentum : float
        EMA momentum of the target anchors (0.999).
    anchor_start_epoch : int
        First stage-2 epoch (0-based; an epoch is ``pool // adapt_batch_size`` steps, :mod:`.madav2`)
        with the anchor loss and its EMA updates (0: from the first step; MADAv2's reference: 51).
    pseudo_entropy_percent : float
        Percent of pseudo-label pixels dropped by entropy at the start of stage 2, decaying
        linearly to 0 over its epochs (MADAv2's reference: 20; 0: off).
    pseudo_entropy_drop : {"lowest", "highest"}
        Which end is dropped: the lowest-entropy pixels (the reference code as run) or the highest (U2PL).
    pseudo_loss : {"ce", "class_sampled"}
        Stage 2's loss on teacher labels: CE on the pseudo-labels; or (``class_sampled``, MADAv2's
        reference, AEL's ``Criterion_cons``) the class-sampled CE weighted by the teacher's confidence
        ** ``pseudo_loss_gamma``, on the pseudo-labels and on the selected images against the teacher's
        argmax, both at image resolution (:func:`.madav2.class_sampled_cross_entropy`).
    pseudo_loss_gamma : float
        The power of the teacher's confidence in ``class_sampled`` (the reference's ``cons.gamma``: 2).
    cutmix_bank : bool
        MADAv2's reference (AEL's ACM, :mod:`.cutmix`): the pseudo stream's first image of each step and a
        partner drawn through a class bank are trained on as two composites (a box swapped between them,
        teacher logits alike); the anchor loss on the pair unmixed. Needs ``mean_teacher`` and
        ``pseudo_loss: class_sampled`` (the reference's combination).
    pseudo_threshold : float
        Pseudo-labels with a lower softmax confidence are ignored (0: every pixel, the reference).
    mean_teacher : bool
        Pseudo-labels from an EMA teacher of the student (MADAv2's stage 2).
    teacher_momentum : float
    teacher_batchnorm : {"student", "reference"}
        The mean teacher's BatchNorm: always in eval mode, the student's buffers (running statistics)
        copied into it after every step (``student``); or its own (``reference``, MADAv2's
        ``step_active_stage2``; needs ``mean_teacher``): each step the selected images forwarded in
        train mode first (their teacher logits from batch statistics, running statistics updated;
        dropout active too, as the reference's ``.train()``), then the pseudo-labelled images in eval
        mode, then with ``cutmix_bank`` the 2 composites in train mode (output unused), and never a
        buffer copy. A stream of one image (``--smoke``) is forwarded in eval mode: torchvision's ASPP
        image-pooling BatchNorm cannot train on one image.
    pseudo_labels : {"unselected_upsampled", "reference"}
        Stage 2's pseudo-label stream: the unselected target images, CE at image resolution
        (logits upsampled); or (``reference``, the reference code's) every target training image,
        selected ones too, CE on the logits at the output stride against their own argmax.
    eval_labels : {"resized", "full_resolution"}
        Real datasets: target-test labels nearest-resized to ``image_size``; or kept at their
        file's size, the low-resolution logits upsampled to it (bilinear, as the network's own
        upsampling) before the argmax (the reference's mIoU at 1024 x 2048).
    """

    arch: str = "seg_cnn"
    dataset: str = "scenes"
    source_root: str = ""
    target_root: str = ""
    num_classes: int = 19
    image_size: tuple[int, ...] = (48,)
    data_seed: int = -1
    source_images: int = 240
    target_images: int = 200
    test_images: int = 100
    selection: str = "mada"
    baselines: bool = True
    self_training: bool = True
    budget: float = 0.05
    num_anchors: int = 10
    min_pixels: int = 1
    source_descriptors: str = "label"
    anchor_gradient_scaling: bool = False
    adapt_steps: int = 60
    adapt2_steps: int = 60
    adapt_batch_size: int = 8
    adapt_lr: float = 0.02
    stage2: bool = True
    stage2_source: bool = True
    active_loss: str = "ce"
    ohem_thresh: float = 0.7
    ohem_min_kept: int = 100000
    anchor_weight: float = 0.7
    anchor_momentum: float = 0.999
    anchor_start_epoch: int = 0
    pseudo_entropy_percent: float = 0.0
    pseudo_entropy_drop: str = "lowest"
    pseudo_loss: str = "ce"
    pseudo_loss_gamma: float = 2.0
    cutmix_bank: bool = False
    pseudo_threshold: float = 0.0
    mean_teacher: bool = False
    teacher_momentum: float = 0.99
    teacher_batchnorm: str = "student"
    pseudo_labels: str = "unselected_upsampled"
    eval_labels: str = "resized"

    CHOICES: typing.ClassVar[dict[str, tuple[str, ...]]] = {
        **TrainConfig.CHOICES, "selection": STRATEGIES, "source_descriptors": ("label", "label_and_prediction"),
        "pseudo_entropy_drop": madav2.ENTROPY_DROPS, "active_loss": madav2.ACTIVE_LOSSES,
        "pseudo_loss": madav2.PSEUDO_LOSSES, "teacher_batchnorm": ("student", "reference"),
        "dataset": ("scenes", "gta5_cityscapes", "synthia_cityscapes"),
        "pseudo_labels": ("unselected_upsampled", "reference"), "eval_labels": ("resized", "full_resolution")}
    #: ``--smoke`` (:mod:`workbench.training.smoke`): one image per adaptation stream (stage 2 still
    #: forwards 3 images at once) and the run's own strategy only, so that the paper preset fits a CPU.
    SMOKE_VALUES: typing.ClassVar[dict[str, Any]] = {"adapt_batch_size": 1, "baselines": False}

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.budget <= 1:
            raise ValidationError(f"config field 'budget' is {self.budget}; expected a fraction in (0, 1]")
        self.check_minimum(1, "num_anchors", "adapt_steps", "adapt_batch_size", "source_images", "target_images",
                           "test_images", "min_pixels")
        self.check_minimum(0, "adapt2_steps", "anchor_start_epoch", "ohem_min_kept")
        if self.pseudo_loss_gamma < 0:
            raise ValidationError(f"config field 'pseudo_loss_gamma' is {self.pseudo_loss_gamma}; "
                                  "expected a power >= 0")
        if self.cutmix_bank and not (self.mean_teacher and self.pseudo_loss == "class_sampled"):
            raise ValidationError("config field 'cutmix_bank' is true; it needs 'mean_teacher: true' and "
                                  "'pseudo_loss: class_sampled' (the reference's combination, the only one built)")
        if self.teacher_batchnorm == "reference" and not self.mean_teacher:
            raise ValidationError("config field 'teacher_batchnorm' is 'reference'; it needs 'mean_teacher: true' "
                                  "(the BatchNorm of a teacher)")
        if not 0 <= self.pseudo_entropy_percent <= 100:
            raise ValidationError(f"config field 'pseudo_entropy_percent' is {self.pseudo_entropy_percent}; "
                                  "expected a percentage in [0, 100]")
        for name in ("anchor_momentum", "teacher_momentum", "pseudo_threshold", "ohem_thresh"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValidationError(f"config field {name!r} is {getattr(self, name)}; expected a value in [0, 1]")
        if len(self.image_size) not in (1, 2) or min(self.image_size) < 8 or any(s % 8 for s in self.image_size):
            raise ValidationError(f"config field 'image_size' is {list(self.image_size)}; expected [S] or [H, W], "
                                  "multiples of 8")
        if self.dataset != "scenes" and self.num_classes not in (16, 19):
            raise ValidationError(f"config field 'num_classes' is {self.num_classes}; expected 19 or 16")
        if self.dataset == "scenes" and self.eval_labels != "resized":
            raise ValidationError(f"config field 'eval_labels' is {self.eval_labels!r}; the generated scenes have "
                                  "labels at the image size only: expected 'resized'")
        if "num_classes" in self.arch_kwargs:
            raise ValidationError("arch_kwargs must not set 'num_classes': it comes from the data")

    @property
    def scene_seed(self) -> int:
        return self.seed if self.data_seed < 0 else self.data_seed


# --- datasets of the adaptation phases -----------------------------------------------------------

class Streams(Dataset):
    """Item ``i``: (images (S, 3, H, W), labels (S, H, W)) with item ``i % len`` of each stream.

    ``unlabelled`` streams get labels of 255 everywhere (pseudo-labels are made in the step).
    ``with_index``: the labels come as (labels, index of the item in the last stream).
    """

    def __init__(self, streams: list[Dataset], length: int, unlabelled: tuple[bool, ...], with_index: bool = False):
        if any(len(s) == 0 for s in streams):
            raise ValidationError("an adaptation stream is empty (no selected or no unselected target image)")
        self.streams, self.length, self.unlabelled, self.with_index = streams, int(length), unlabelled, with_index

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        images, labels = [], []
        for stream, hidden in zip(self.streams, self.unlabelled):
            image, label = stream[index % len(stream)]
            images.append(image)
            labels.append(torch.full_like(label, IGNORE) if hidden else label)
        if self.with_index:
            return torch.stack(images), (torch.stack(labels), index % len(self.streams[-1]))
        return torch.stack(images), torch.stack(labels)


class _Subset(Dataset):
    def __init__(self, dataset: Dataset, indices):
        self.dataset, self.indices = dataset, [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.dataset[self.indices[index]]


@dataclasses.dataclass
class PhaseData:
    """What :func:`fit` reads of a data object."""

    train: Dataset
    test: Dataset


# --- steps, evaluation, callbacks ---------------------------------------------------------------

def _seg_net(network):
    return network.module


def source_step(network, module, images, labels, config):
    """Cross-entropy (ignore 255) on a source batch (N, 3, H, W) / (N, H, W)."""
    logits = module(images).float()
    loss = F.cross_entropy(logits, labels, ignore_index=IGNORE)
    valid = labels != IGNORE
    acc = ((logits.argmax(1) == labels) & valid).sum() / valid.sum().clamp(min=1)
    return loss, {"loss": loss.detach(), "acc": acc.detach()}


def stage1_step(network, module, images, labels, config):
    """CE on the source chunk + CE on the selected-target chunk of (N, 2, 3, H, W) batches."""
    n = images.shape[0]
    x = images.transpose(0, 1).reshape(2 * n, *images.shape[2:])
    y = labels.transpose(0, 1).reshape(2 * n, *labels.shape[2:])
    logits = module(x).float()
    ce_source = F.cross_entropy(logits[:n], y[:n], ignore_index=IGNORE)
    ce_active = F.cross_entropy(logits[n:], y[n:], ignore_index=IGNORE)
    loss = ce_source + ce_active
    acc = ((logits[n:].argmax(1) == y[n:]) & (y[n:] != IGNORE)).sum() / (y[n:] != IGNORE).sum().clamp(min=1)
    return loss, {"loss": loss.detach(), "ce_source": ce_source.detach(), "ce_active": ce_active.detach(),
                  "acc": acc.detach()}


class AdaptationState(Callback):
    """Stage 2's state: the EMA target anchors, the optional mean teacher and CutMix bank (checkpointed),
    the class criterion's fixed start (C,) of ``pseudo_loss: class_sampled`` (a function of the seed) and
    the pool the CutMix partners come from (``cutmix_pool``: with it, a bank over its items). After each step
    the teacher's weights are EMA'd towards the student's and, with ``copy_buffers``, its buffers copied from
    the student's (``teacher_batchnorm: student``)."""

    def __init__(self, network, bank: AnchorBank | None, *, teacher: bool, momentum: float, epoch_steps: int = 1,
                 epochs: int = 1, class_start: torch.Tensor | None = None, cutmix_pool: Dataset | None = None,
                 copy_buffers: bool = True):
        self.bank, self.class_start, self.cutmix_pool = bank, class_start, cutmix_pool
        self.copy_buffers = copy_buffers
        self.cutmix_bank = None if cutmix_pool is None else CutMixBank(len(class_start), len(cutmix_pool))
        self.momentum = float(momentum)
        self.epoch_steps, self.epochs, self.step = int(epoch_steps), int(epochs), 0  # the stage's epoch clock
        self.teacher = None
        if teacher:
            self.teacher = copy.deepcopy(_seg_net(network)).eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)

    @property
    def epoch(self) -> int:
        """The 0-based stage-2 epoch of the step being taken (:func:`.madav2.stage2_epoch`)."""
        return madav2.stage2_epoch(self.step, self.epoch_steps)

    def on_step_start(self, state, network) -> None:
        self.step = state.step

    @torch.no_grad()
    def on_step_end(self, state, network, logs) -> None:
        if self.teacher is None:
            return
        student = dict(_seg_net(network).named_parameters())
        for name, p in self.teacher.named_parameters():
            p.mul_(self.momentum).add_(student[name].detach(), alpha=1 - self.momentum)
        if not self.copy_buffers:
            return
        student_buffers = dict(_seg_net(network).named_buffers())
        for name, b in self.teacher.named_buffers():
            b.copy_(student_buffers[name])

    def state_dict(self) -> dict[str, Any]:
        return {"bank": self.bank.state_dict() if self.bank else None,
                "teacher": self.teacher.state_dict() if self.teacher is not None else None,
                "cutmix_bank": self.cutmix_bank.state_dict() if self.cutmix_bank is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.bank is not None and state.get("bank") is not None:
            self.bank.load_state_dict(state["bank"])
        if self.teacher is not None and state.get("teacher") is not None:
            self.teacher.load_state_dict(state["teacher"])
        if self.cutmix_bank is not None and state.get("cutmix_bank") is not None:
            self.cutmix_bank.load_state_dict(state["cutmix_bank"])


def pseudo_labels(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Argmax of logits (N, C, H, W); pixels with softmax confidence below ``threshold`` -> 255."""
    prob = logits.detach().float().softmax(1)
    conf, label = prob.max(1)
    return torch.where(conf >= threshold, label, torch.full_like(label, IGNORE))


def stage2_layout(config: MADAConfig, active: bool) -> tuple[str, ...]:
    """Stage 2's streams in batch order: ``source`` (with ``stage2_source``), ``active`` (the selected
    images, with ``active``) and ``pseudo`` (the pseudo-labelled target images)."""
    return ("source",) * config.stage2_source + ("active",) * active + ("pseudo",)


def _teacher_logits(state: AdaptationState, images: torch.Tensor, scores: torch.Tensor, at_stride: bool):
    """Logits the teacher labels come from: the mean teacher's on ``images`` (output stride or image
    resolution), or without a teacher the student's own ``scores``."""
    if state.teacher is None:
        return scores.detach()
    return _teacher_forward(state, images, at_stride=at_stride)


def _teacher_forward(state: AdaptationState, images: torch.Tensor, *, at_stride: bool = False,
                     batch_statistics: bool = False) -> torch.Tensor:
    """The mean teacher's logits (N, C, h, w) of ``images`` (N, 3, H, W), float, without gradient, at the output
    stride or image resolution. ``batch_statistics``: in train mode (BatchNorm on the batch's statistics, its
    running statistics updated: ``teacher_batchnorm: reference``), except for one image (eval mode: torchvision's
    ASPP image-pooling BatchNorm cannot train on one). The teacher is left in eval mode."""
    state.teacher.train(batch_statistics and len(images) > 1)
    try:
        with torch.no_grad():
            return (state.teacher.forward_features(images)[1] if at_stride else state.teacher(images)).float()
    finally:
        state.teacher.eval()


def _filtered_pseudo_labels(state: AdaptationState, config: MADAConfig, teacher: torch.Tensor) -> torch.Tensor:
    labels = pseudo_labels(teacher, config.pseudo_threshold)
    return madav2.filter_pseudo_labels(teacher, labels, config, state.epoch, state.epochs)


def _pseudo_terms(state: AdaptationState, config: MADAConfig, x, y, logits, low, chunks,
                  teachers: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stage 2's losses on teacher labels: ``ce_pseudo`` on the pseudo stream and, with ``pseudo_loss:
    class_sampled``, ``ce_consistency`` on the selected images against the teacher's argmax (the
    reference's two consistency terms, selected images first, at image resolution). ``teachers``: the
    chunks' teacher logits already made (``active`` with ``teacher_batchnorm: reference``, ``pseudo`` the
    CutMix composites'), by chunk name."""
    t = chunks["pseudo"]
    if config.pseudo_loss == "ce":
        at_stride = config.pseudo_labels == "reference"  # the reference's CE: output-stride logits, their argmax
        scores = low[t].float() if at_stride else logits[t]
        target = _filtered_pseudo_labels(state, config, _teacher_logits(state, x[t], scores, at_stride))
        return {"ce_pseudo": F.cross_entropy(scores, target, ignore_index=IGNORE)}
    terms, gamma = {}, config.pseudo_loss_gamma
    a = chunks.get("active")
    confidence = (madav2.category_confidence(logits[a], y[a]) if a is not None
                  else torch.zeros(logits.shape[1], device=logits.device))
    criterion = madav2.class_criterion(state.class_start, confidence)
    if a is not None:
        teacher = teachers["active"] if "active" in teachers else _teacher_logits(state, x[a], logits[a], False)
        terms["ce_consistency"] = madav2.class_sampled_cross_entropy(logits[a], teacher, teacher.argmax(1),
                                                                     criterion, gamma)
    teacher = teachers["pseudo"] if "pseudo" in teachers else _teacher_logits(state, x[t], logits[t], False)
    target = _filtered_pseudo_labels(state, config, teacher)
    terms["ce_pseudo"] = madav2.class_sampled_cross_entropy(logits[t], teacher, target, criterion, gamma)
    return terms


def _cutmix_pair(state: AdaptationState, config: MADAConfig, image: torch.Tensor, index: int):
    """The reference's ACM on one pseudo-stream image (3, H, W), item ``index`` of the pool: a partner drawn
    through the class bank, the teacher's logits of both (eval mode), both bank entries rewritten, the box
    swapped; with ``teacher_batchnorm: reference`` the teacher then forwards the composites in train mode
    (output unused: its running statistics updated, as the reference's). Returns the composites
    (2, 3, H, W), their mixed teacher logits (2, C, H, W) and the pair unmixed."""
    partner_index, cls = state.cutmix_bank.draw(state.class_start)
    pair = torch.stack([image, state.cutmix_pool[partner_index][0].to(image.device)])
    teacher = _teacher_forward(state, pair)  # cutmix_bank needs the mean teacher (config check)
    predicted = teacher.argmax(1)
    mask = box_mask(predicted.shape[-2:], cutmix_box(predicted[1], cls), image.device)
    state.cutmix_bank.update(index, predicted[0])
    state.cutmix_bank.update(partner_index, predicted[1])
    mixed = swap_box(pair, mask)
    if config.teacher_batchnorm == "reference":
        _teacher_forward(state, mixed, batch_statistics=True)
    return mixed, swap_box(teacher, mask), pair


def _anchor_on(state: AdaptationState, config: MADAConfig) -> bool:
    """Whether this step has the anchor loss (MADAv2: none, and no EMA update, before ``anchor_start_epoch``)."""
    return state.bank is not None and config.anchor_weight > 0 and state.epoch >= config.anchor_start_epoch


def _stage2_batch(state: AdaptationState, config: MADAConfig, images, targets, active: bool):
    """The step's images (B, 3, H, W), labels (B, H, W), chunks (name -> slice) and the teacher logits made
    here, by chunk name, from an (N, S, 3, H, W) batch in :func:`stage2_layout`'s order. With ``cutmix_bank``
    the pseudo chunk is the 2 composites of its first image (``targets``: (labels, pool indices)) and the
    chunk ``anchor`` the pair unmixed; else ``anchor`` is the pseudo chunk. With ``teacher_batchnorm:
    reference`` the teacher's train-mode forward of the selected images comes first, every step (whether or
    not the loss uses it), as the reference's."""
    labels, indices = targets if config.cutmix_bank else (targets, None)
    parts = {name: (images[:, i], labels[:, i]) for i, name in enumerate(stage2_layout(config, active))}
    teachers = {}
    if config.teacher_batchnorm == "reference" and active:
        teachers["active"] = _teacher_forward(state, parts["active"][0], batch_statistics=True)
    if config.cutmix_bank:
        mixed, teachers["pseudo"], pair = _cutmix_pair(state, config, images[0, -1], int(indices[0]))
        unlabelled = torch.full((2, *labels.shape[-2:]), IGNORE, dtype=labels.dtype, device=labels.device)
        parts["pseudo"] = (mixed, unlabelled)
        if _anchor_on(state, config):
            parts["anchor"] = (pair, unlabelled)
    chunks, start = {}, 0
    for name, (part, _) in parts.items():
        chunks[name], start = slice(start, start + len(part)), start + len(part)
    chunks.setdefault("anchor", chunks["pseudo"])
    x = torch.cat([part for part, _ in parts.values()])
    return x, torch.cat([part for _, part in parts.values()]), chunks, teachers


def _anchor_term(state: AdaptationState, config: MADAConfig, features, low, num_classes: int):
    """The anchor loss of the anchor chunk's ``features`` / ``low`` logits, the bank's EMA updated."""
    desc, present = class_descriptors(features.float(), low.detach().argmax(1), num_classes,
                                      min_pixels=config.min_pixels, scale_gradient=config.anchor_gradient_scaling)
    bank = state.bank
    l_anchor = anchor_loss(desc, present, bank.centers.to(desc.device), bank.present.to(desc.device))
    # every rank applies the whole global batch's updates, in one-process order
    bank.update(gather_in_rank_order(desc.detach()), gather_in_rank_order(present))
    return l_anchor


def stage2_step(state: AdaptationState, num_classes: int, *, active: bool):
    """``step_fn`` of stage 2 on (N, S, 3, H, W) batches, streams in :func:`stage2_layout`'s order."""

    def step(network, module, images, targets, config):
        x, y, chunks, teachers = _stage2_batch(state, config, images, targets, active)
        features, low = module(x, return_features=True)  # through DDP's wrapper: gradients synced
        logits = F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=False).float()
        terms = {}
        if "source" in chunks:
            terms["ce_source"] = F.cross_entropy(logits[chunks["source"]], y[chunks["source"]], ignore_index=IGNORE)
        terms["ce_active"] = (madav2.active_loss(logits[chunks["active"]], y[chunks["active"]], config) if active
                              else logits.sum() * 0)
        terms.update(_pseudo_terms(state, config, x, y, logits, low, chunks, teachers))
        loss = sum(terms.values())
        logs = {name: value.detach() for name, value in terms.items()}
        shown = chunks.get("active", chunks.get("source"))  # pixel accuracy on the labelled target (or source) chunk
        if shown is not None:
            valid = y[shown] != IGNORE
            logs["acc"] = (((logits[shown].argmax(1) == y[shown]) & valid).sum() / valid.sum().clamp(min=1)).detach()
        if _anchor_on(state, config):
            a = chunks["anchor"]
            l_anchor = _anchor_term(state, config, features[a], low[a], num_classes)
            loss = loss + config.anchor_weight * l_anchor
            logs["anchor"] = l_anchor.detach()
        elif state.bank is not None and config.anchor_weight > 0:
            logs["anchor"] = loss.detach() * 0
        logs["loss"] = loss.detach()
        return loss, logs

    return step


def predicted_classes(module: Segmenter, images: torch.Tensor, size) -> torch.Tensor:
    """Classes (N, H, W) a segmentation module predicts for images (N, 3, h, w) at the label size ``size``.

    Labels at the image size: the argmax of the module's logits. Labels of another size
    (``eval_labels: full_resolution``): the output-stride logits upsampled to it, as the
    reference evaluates (:func:`~workbench.methods.mada.metrics.upsampled_argmax`).
    """
    if tuple(size) == tuple(images.shape[-2:]):
        return module(images).argmax(1)
    return upsampled_argmax(module.forward_features(images)[1], size)


@torch.no_grad()
def loader_confusion(module: torch.nn.Module, batches, num_classes: int, device: torch.device | str) -> np.ndarray:
    """(C, C) confusion matrix of a segmentation module (eval mode) over ``(images, labels)`` batches."""
    was = module.training
    module.eval()
    total = np.zeros((num_classes, num_classes), np.int64)
    try:
        for images, labels in batches:
            pred = predicted_classes(module, images.to(device), labels.shape[-2:]).cpu()
            total += confusion_matrix(pred, labels, num_classes)
    finally:
        module.train(was)
    return total


def confusion_of(module: torch.nn.Module, dataset: Dataset, num_classes: int, *, batch_size: int = 64,
                 device: torch.device | str = "cpu") -> np.ndarray:
    """(C, C) confusion matrix of a segmentation module on a dataset (eval mode)."""
    return loader_confusion(module, DataLoader(dataset, batch_size=batch_size), num_classes, device)


def miou_eval(num_classes: int):
    """``eval_fn`` of every phase: target-test mIoU and pixel accuracy."""

    def evaluate(network, loader, device):
        total = loader_confusion(network.module, loader, num_classes, device)
        return {"miou": mean_iou(total), "pixel_acc": pixel_accuracy(total)}

    return evaluate


@torch.no_grad()
def dataset_descriptors(module, dataset: Dataset, num_classes: int, *, use_labels: bool, min_pixels: int = 1,
                        batch_size: int = 64, agreeing_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors (N, C, D) and masks (N, C) of a dataset: ground truth or the module's predictions.

    ``agreeing_only`` (with ``use_labels``): only the pixels the module predicts as labelled count.
    """
    was = module.training
    module.eval()
    out, masks = [], []
    try:
        for images, labels in DataLoader(dataset, batch_size=batch_size):
            features, low = module.forward_features(images)
            if not use_labels:
                labels = low.argmax(1)
            elif agreeing_only:
                labels = agreeing_labels(labels, low)
            desc, present = class_descriptors(features.float(), labels, num_classes, min_pixels=min_pixels)
            out.append(desc.numpy())
            masks.append(present.numpy())
    finally:
        module.train(was)
    return np.concatenate(out), np.concatenate(masks)


# --- phases -----------------------------------------------------------------------------------

def _adapt_config(config: MADAConfig, steps: int) -> MADAConfig:
    return dataclasses.replace(config, epochs=1, batch_size=config.adapt_batch_size, lr=config.adapt_lr,
                               warmup_epochs=0, limit_train=0, log_every=min(config.log_every, max(1, steps)))


def _build(config: MADAConfig, num_classes: int):
    return build_network(config.arch, seed=config.seed, num_classes=num_classes, **config.arch_kwargs)


def pseudo_label_pool(config: MADAConfig, target_train: Dataset, selected: np.ndarray) -> Dataset:
    """Stage 2's unlabelled target stream: the target training images not ``selected`` (indices), or
    every one (``pseudo_labels: reference``: the reference's target loader is the whole Cityscapes train split)."""
    if config.pseudo_labels == "reference":
        return target_train
    return _Subset(target_train, np.setdiff1d(np.arange(len(target_train)), selected))


def adapt(run, config: MADAConfig, domains, warm_state: dict, name: str, selected: np.ndarray, *,
          active: bool = True):
    """Stages 1 and 2 from the warm-up weights with the target images ``selected`` labelled.

    Returns the adapted network and ``{"stage1": evaluation, "stage2": evaluation}``.
    """
    network = _build(config, domains.num_classes)
    network.module.load_state_dict(warm_state)
    selected = np.asarray(selected, dtype=np.int64)
    chosen = _Subset(domains.target_train, selected)
    pseudo_pool = pseudo_label_pool(config, domains.target_train, selected)
    evaluation = {}
    eval_fn = miou_eval(domains.num_classes)
    if active:
        cfg1 = _adapt_config(config, config.adapt_steps)
        data1 = PhaseData(Streams([domains.train, chosen], config.adapt_steps * cfg1.batch_size, (False, False)),
                          domains.test)
        evaluation["stage1"] = run_phase(run, f"{name}_stage1", cfg1, network, data1, step_fn=stage1_step,
                                          eval_fn=eval_fn)
    if config.stage2 and config.adapt2_steps > 0:
        bank = None
        if config.anchor_weight > 0:
            desc, present = dataset_descriptors(network.module, domains.target_train, domains.num_classes,
                                                use_labels=False, min_pixels=config.min_pixels)
            bank = AnchorBank(fit_anchors(desc, present, config.num_anchors, seed=config.seed),
                              config.anchor_momentum)
        epoch_steps = madav2.epoch_steps(len(domains.target_train), config.adapt_batch_size)
        class_start = (madav2.initial_class_criterion(domains.num_classes, config.seed)
                       if config.pseudo_loss == "class_sampled" else None)
        state = AdaptationState(network, bank, teacher=config.mean_teacher, momentum=config.teacher_momentum,
                                epoch_steps=epoch_steps, epochs=madav2.stage2_epochs(config.adapt2_steps, epoch_steps),
                                class_start=class_start, cutmix_pool=pseudo_pool if config.cutmix_bank else None,
                                copy_buffers=config.teacher_batchnorm == "student")
        cfg2 = _adapt_config(config, config.adapt2_steps)
        named = {"source": domains.train, "active": chosen, "pseudo": pseudo_pool}
        streams = [named[name] for name in stage2_layout(config, active)]
        data2 = PhaseData(Streams(streams, config.adapt2_steps * cfg2.batch_size,
                                  (False,) * (len(streams) - 1) + (True,), with_index=config.cutmix_bank),
                          domains.test)
        evaluation["stage2"] = run_phase(run, f"{name}_stage2", cfg2, network, data2, callbacks=[state],
                                          step_fn=stage2_step(state, domains.num_classes, active=active),
                                          eval_fn=eval_fn)
    network.module.eval()
    return network, evaluation


def select_all(config: MADAConfig, module, domains, strategies) -> tuple[dict[str, np.ndarray], pd.DataFrame, dict]:
    """Selected target indices of each strategy, the selection table and the anchors used."""
    src_desc, src_present = dataset_descriptors(
        module, domains.source_plain, domains.num_classes, use_labels=True, min_pixels=config.min_pixels,
        agreeing_only=config.source_descriptors == "label_and_prediction")
    tgt_desc, tgt_present = dataset_descriptors(module, domains.target_train, domains.num_classes,
                                                use_labels=False, min_pixels=config.min_pixels)
    anchors = {"source": fit_anchors(src_desc, src_present, config.num_anchors, seed=config.seed),
               "centroid": fit_anchors(src_desc, src_present, 1, seed=config.seed),
               "target": fit_anchors(tgt_desc, tgt_present, config.num_anchors, seed=config.seed)}
    selected, rows = {}, []
    for strategy in strategies:
        scores = selection_scores(strategy, tgt_desc, tgt_present,
                                  source_anchors=anchors["centroid" if strategy == "centroid" else "source"],
                                  target_anchors=anchors["target"], seed=config.seed)
        selected[strategy] = select_top(scores, config.budget)
        for i in selected[strategy]:
            rows.append((strategy, int(i), float(scores[i]), int(domains.target_conditions[i])))
    table = pd.DataFrame(rows, columns=["strategy", "index", "score", "condition"])
    return selected, table, {"anchors": anchors, "source": (src_desc, src_present), "target": (tgt_desc, tgt_present)}


def miou_table(networks: dict[str, Any], dataset, num_classes: int, classes) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-class IoU (model, class, iou) and per-model (model, miou, pixel_acc) on ``dataset``."""
    rows, summary = [], []
    for name, network in networks.items():
        confusion = confusion_of(network.module, dataset, num_classes)
        for cls, value in zip(classes, iou_per_class(confusion)):
            rows.append((name, cls, float(value)))
        summary.append((name, mean_iou(confusion), pixel_accuracy(confusion)))
    return (pd.DataFrame(rows, columns=["model", "class", "iou"]),
            pd.DataFrame(summary, columns=["model", "miou", "pixel_acc"]))


def train(config: MADAConfig, run) -> TrainOutcome:
    domains = load_domains(config)
    network = _build(config, domains.num_classes)
    if not isinstance(network.module, Segmenter):
        raise ValidationError(f"config field 'arch' is {config.arch!r}, not a segmentation network; MADA trains a "
                              "workbench.models.segmentation.Segmenter (seg_cnn, deeplabv3_resnet50_seg, "
                              "deeplabv3_resnet101_seg, or a subclass defining forward_features)")
    eval_fn = miou_eval(domains.num_classes)
    source_eval = run_phase(run, "source", config, network, PhaseData(domains.train, domains.test),
                             step_fn=source_step, eval_fn=eval_fn)
    warm_state = {k: v.detach().clone() for k, v in network.module.state_dict().items()}
    strategies = [config.selection] + ([s for s in STRATEGIES if s != config.selection] if config.baselines else [])
    selected, selection, _ = select_all(config, network.module, domains, strategies)
    networks, phases = {"source_only": network}, {"source_only": {"source": source_eval}}
    for strategy in strategies:
        networks[strategy], phases[strategy] = adapt(run, config, domains, warm_state, strategy, selected[strategy])
    if config.baselines and config.self_training and config.stage2 and config.adapt2_steps > 0:
        networks["self_training"], phases["self_training"] = adapt(run, config, domains, warm_state, "self_training",
                                                                   np.zeros(0, np.int64), active=False)
    per_class, summary = miou_table(networks, domains.test, domains.num_classes, domains.classes)
    for name, table in ((MIOU_FILE, per_class), (SUMMARY_FILE, summary), (SELECTION_FILE, selection)):
        run.write_text(name, table.to_csv(index=False))
    values = {row.model: {"test_miou": float(row.miou), "test_pixel_acc": float(row.pixel_acc)}
              for row in summary.itertuples()}
    for name, net in networks.items():
        if name != config.selection:
            run.write_snapshot(name, net, net.module.state_dict(), domains, {
                "evaluation": values[name], "phases": phases.get(name, {})}, role="baseline")
    main = networks[config.selection]
    run.log(adopt_phase_metrics(run, "source"), config.epochs, "test",
            {f"{k}_miou": v["test_miou"] for k, v in values.items()})
    run.flush_metrics()
    extra = {"mada": {
        "selection": config.selection, "budget": config.budget,
        "selected": int(len(selected[config.selection])), "pool": int(len(domains.target_train)),
        "miou": {k: v["test_miou"] for k, v in values.items()}, "classes": list(domains.classes),
        "phases": phases[config.selection]}}
    wall = phase_wall_time(run)
    return TrainOutcome(main, main.module.state_dict(), domains, values[config.selection], extra=extra,
                        wall_time_s=wall)


def evaluate(run_dir: str | os.PathLike) -> dict[str, float]:
    """Target-test mIoU and pixel accuracy of a finished run (or snapshot), from its files."""
    from workbench.training.evaluation import check_data_fingerprint, load_run_network

    card, network = load_run_network(run_dir)
    domains = load_domains(load_run_config(run_dir, card))
    check_data_fingerprint(domains, card, run_dir)
    confusion = confusion_of(network.module, domains.test, domains.num_classes)
    return {"test_miou": mean_iou(confusion), "test_pixel_acc": pixel_accuracy(confusion)}
