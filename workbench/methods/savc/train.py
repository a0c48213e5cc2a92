"""Train SAVC and its two baselines on the FSCIL protocol: base session on the shared loop, then prototypes.

A run (``workbench train savc``):

1. loads the data and the session split (:mod:`.fscil`): ``split_dir`` when set, otherwise the
   tiny split of :func:`~.fscil.make_split`, written to ``RUN/split/session_<s>.txt``;
2. trains each baseline first when ``baselines`` is true, each into
   ``RUN/snapshots/<variant>/`` (its own ``metrics.csv`` and checkpoint, then a card: a
   scorable run directory), then the main ``variant`` into ``RUN``; every one goes through
   :func:`workbench.training.fit` on the base classes with the same seed, backbone and data:

   - ``savc``: cross-entropy over the ``B * M`` virtual classes of the fantasy + ``alpha *
     L_global + beta * L_small`` (:mod:`.contrastive`), labels of the contrastive part virtual;
   - ``scl``: cross-entropy over the ``B`` classes + the same contrastive part with class labels
     (naive supervised contrastive learning, no fantasy);
   - ``ce``: cross-entropy over the ``B`` classes (the mainstream framework);

3. runs the sessions (:func:`~.fscil.run_sessions`): classifier rows = class-mean embeddings of
   each (virtual) class, backbone frozen, aggregated inference; the per-session accuracies go
   to ``metrics.csv`` (split ``session``, step = session) and to the card (``fscil``).

The saved weights are the ``savc_net`` architecture with every session's prototypes, so the run
scores and classifies all classes like any run. Query and key views of the contrastive part:
two random resized crops of ``global_size`` px (area in ``[global_scale_min,
global_scale_max]``) and ``small_crops`` crops of ``small_size`` px, each with a random
horizontal flip, made on the (already augmented) training batch; every view goes through the
fantasy, and a small crop's positive key is the key of the same image and transformation
(``small_pairing="transformation"``) or the reference code's (``"reference"``, the paper presets).
CIFAR-100 is normalised with the reference's constants (:data:`REFERENCE_NORMALISATION`).
Deviations from the reference code (README.md, "Reference and here", with their measured
effects): no colour jitter/grayscale on the crops, no constrained cropping, no incremental
fine-tuning (its CIFAR-100 and miniImageNet results are without it), the sessions run from the
final base epoch (the reference: from the best one on the test set, recorded here with
``best_metric``).
Under torchrun the step's logits and projections come from one call through the DDP wrapper
and every process queues the whole global batch's keys (in one-process order); each process
draws its own crops.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from workbench.errors import ValidationError
from workbench.methods.savc import fscil
from workbench.methods.savc.contrastive import (SMALL_PAIRINGS, MomentumQueue, random_resized_crops,
                                                small_crop_keys, sup_contrastive_loss)
from workbench.models.savc import FANTASIES, aggregate_logits, apply_fantasy, load_backbone_weights, virtual_labels
from workbench.training import Callback, RunDir, TrainConfig, TrainOutcome, build_network, fit
from workbench.training.distributed import gather_in_rank_order

logger = logging.getLogger(__name__)

VARIANTS = ("savc", "ce", "scl")


@dataclasses.dataclass(frozen=True)
class SAVCConfig(TrainConfig):
    """Shared training fields plus the protocol's and SAVC's.

    Parameters
    ----------
    variant : {"savc", "ce", "scl"}, default: "savc"
        What the run trains (the baselines: ``ce``, cross-entropy only; ``scl``, with naive
        supervised contrastive learning).
    baselines : bool, default: True
        Also train the two other variants, as ``snapshots/<variant>/``.
    fantasy : str, default: "rotation2"
        Transformations making the virtual classes (:data:`workbench.models.savc.FANTASIES`);
        only ``savc`` uses it (the baselines have ``M = 1``).
    split_dir : str or None
        Folder of ``session_<s>.txt`` files (:mod:`.fscil`); ``None``: the generated split below.
    base_classes, ways, shots, sessions, split_seed : int
        The generated split: base classes, W, K, incremental sessions, seed of the shots.
    moco_dim, moco_k : int
        Projector output size; queue length.
    moco_m, moco_t : float
        Key-encoder momentum; temperature of the contrastive logits.
    global_size, small_size, small_crops : int
        Side of the 2 global crops and of the ``small_crops`` small crops, in px.
    global_scale_min, global_scale_max, small_scale_min, small_scale_max : float
        Area fractions of the crops.
    small_pairing : {"transformation", "reference"}, default: "transformation"
        The positive key (and virtual label) of each small crop
        (:func:`~workbench.methods.savc.contrastive.small_crop_keys`): the same image and
        transformation's, or the reference code's index pairing (the paper presets).
    backbone_weights : str or None
        Pretrained weights loaded into a ``resnet18`` backbone before training: ``"imagenet"``
        (torchvision's) or a state-dict file (:func:`workbench.models.savc.load_backbone_weights`);
        the reference's CUB-200 recipe starts from ImageNet weights.
    alpha, beta : float
        Weights of the global and small-crop contrastive losses.
    scale : float
        Cosine-classifier scale.
    """

    variant: str = "savc"
    baselines: bool = True
    fantasy: str = "rotation2"
    split_dir: str | None = None
    base_classes: int = 6
    ways: int = 2
    shots: int = 5
    sessions: int = 2
    split_seed: int = 0
    moco_dim: int = 32
    moco_k: int = 8192
    moco_m: float = 0.995
    moco_t: float = 0.07
    global_size: int = 32
    small_size: int = 18
    small_crops: int = 4
    global_scale_min: float = 0.9
    global_scale_max: float = 1.0
    small_scale_min: float = 0.2
    small_scale_max: float = 0.7
    small_pairing: str = "transformation"
    backbone_weights: str | None = None
    alpha: float = 0.2
    beta: float = 0.8
    scale: float = 16.0

    CHOICES = {**TrainConfig.CHOICES, "variant": VARIANTS, "fantasy": tuple(FANTASIES),
               "small_pairing": SMALL_PAIRINGS}

    def __post_init__(self):
        super().__post_init__()
        self.check_minimum(1, "moco_dim", "moco_k", "global_size", "small_size")
        self.check_minimum(0, "small_crops")
        if not 0 <= self.moco_m <= 1:
            raise ValidationError(f"config field 'moco_m' must be in [0, 1], found {self.moco_m}")
        if not self.moco_t > 0:
            raise ValidationError(f"config field 'moco_t' must be > 0, found {self.moco_t}")
        for lo, hi in (("global_scale_min", "global_scale_max"), ("small_scale_min", "small_scale_max")):
            a, b = getattr(self, lo), getattr(self, hi)
            if not 0 < a <= b <= 1:
                raise ValidationError(f"config fields {lo!r} and {hi!r} are {a} and {b}; expected 0 < min <= max <= 1")


def variant_fantasy(config: SAVCConfig, variant: str) -> str:
    """The fantasy a variant trains with (``none`` for the baselines)."""
    return config.fantasy if variant == "savc" else "none"


class ContrastiveState(Callback):
    """Holds the momentum queue of a contrastive variant; its state is checkpointed."""

    def __init__(self, queue: MomentumQueue):
        self.queue = queue

    def on_train_start(self, state, network) -> None:
        self.queue.to(next(network.module.parameters()).device)

    def state_dict(self) -> dict[str, Any]:
        return {"queue": self.queue.snapshot()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.queue.load_state_dict(state["queue"])


def make_step(config: SAVCConfig, variant: str, num_base: int, queue: MomentumQueue | None):
    """``step_fn`` of a variant for :func:`workbench.training.fit` (see the module docstring)."""

    def step(network, module, images, labels, cfg):
        net = network.module
        m = net.m
        n = images.shape[0]
        x = apply_fantasy(images, net.fantasy)
        y = virtual_labels(labels, m)
        contrastive = variant in ("savc", "scl")
        views, key = [], None
        if contrastive:  # the crops are drawn in this order: query, key, small crops
            global_scale = (config.global_scale_min, config.global_scale_max)
            views.append(apply_fantasy(random_resized_crops(images, config.global_size, global_scale), net.fantasy))
            key = random_resized_crops(images, config.global_size, global_scale)
            if config.small_crops:
                small = random_resized_crops(images.repeat_interleave(config.small_crops, 0), config.small_size,
                                             (config.small_scale_min, config.small_scale_max))
                views.append(apply_fantasy(small, net.fantasy))  # rows (i, crop, m)
        # one call through the (DDP) wrapper: logits and every projection that needs a gradient
        logits, *projections = module(x, base_classes=num_base, projections=views)
        ce = F.cross_entropy(logits.float(), y)
        acc = (aggregate_logits(logits.detach(), m).argmax(1) == labels).float().mean()
        logs = {"ce": ce.detach(), "acc": acc}
        loss = ce
        if contrastive:
            q = projections[0]
            queue.update(net)
            k = queue.keys(apply_fantasy(key, net.fantasy))
            lg, pg = queue.logits(q, k, y, config.moco_t)
            loss_global = sup_contrastive_loss(lg, pg)
            loss = loss + config.alpha * loss_global
            logs["loss_global"] = loss_global.detach()
            if config.small_crops:
                rows = small_crop_keys(n, config.small_crops, m, config.small_pairing).to(k.device)
                ls, ps = queue.logits(projections[1], k[rows], y[rows], config.moco_t)
                loss_small = sup_contrastive_loss(ls, ps)
                loss = loss + config.beta * loss_small
                logs["loss_small"] = loss_small.detach()
            # every process queues the whole global batch's keys, in one-process order
            queue.enqueue(gather_in_rank_order(k), gather_in_rank_order(y))
        logs["loss"] = loss.detach()
        return loss, logs

    return step


#: The reference's input normalisation where it differs from the registered dataset's own
#: (zysong0113/SAVC, dataloader/cifar100/cifar.py: ``transforms.Normalize``); CUB-200 and
#: miniImageNet use ImageNet's statistics in both.
REFERENCE_NORMALISATION = {"cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))}


class Renormalised(torch.utils.data.Dataset):
    """Items of ``base`` (normalised with ``mean``/``std``) normalised with ``new_mean``/``new_std`` instead.

    ``x' = (x * std + mean - new_mean) / new_std`` per channel, on every (3, H, W) image;
    ``targets`` (and ``paths``, when the base has them) are the base's.
    """

    def __init__(self, base, mean, std, new_mean, new_std):
        self.base = base
        old_m, old_s = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
        new_m, new_s = torch.tensor(new_mean)[:, None, None], torch.tensor(new_std)[:, None, None]
        self.scale, self.shift = old_s / new_s, (old_m - new_m) / new_s
        self.targets = base.targets
        if hasattr(base, "paths"):
            self.paths = base.paths

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index):
        image, label = self.base[index]
        return image * self.scale + self.shift, label


def load_data(config: SAVCConfig, *, augment: bool):
    """The registered dataset of ``config`` (``cub200`` and ``mini_imagenet`` at their default 224 / 84 px views),
    normalised as the reference normalises it (:data:`REFERENCE_NORMALISATION`)."""
    from workbench.data.training import load_training_data

    data = load_training_data(config.dataset, root=config.data_root, augment=augment)
    if config.dataset not in REFERENCE_NORMALISATION:
        return data
    mean, std = REFERENCE_NORMALISATION[config.dataset]
    old = data.preprocessing
    return dataclasses.replace(
        data, train=Renormalised(data.train, old.mean, old.std, mean, std),
        test=Renormalised(data.test, old.mean, old.std, mean, std),
        preprocessing=dataclasses.replace(old, mean=mean, std=std))


def resolve_split(config: SAVCConfig, data, run_path: Path | None = None) -> fscil.FSCILSplit:
    """The split of ``split_dir``, or the generated one (written to ``run_path/split/``)."""
    targets = np.asarray(data.train.targets)
    if config.split_dir:
        return fscil.read_split(config.split_dir, targets, getattr(data.train, "paths", None))
    split = fscil.make_split(targets, base_classes=config.base_classes, ways=config.ways, shots=config.shots,
                             sessions=config.sessions, seed=config.split_seed)
    if run_path is not None:
        fscil.write_split(split, Path(run_path) / "split")
    return split


def build_variant_network(config: SAVCConfig, variant: str, num_classes: int):
    """The variant's ``savc_net``, with ``backbone_weights`` loaded when set."""
    network = build_network(config.arch, seed=config.seed, num_classes=num_classes,
                            fantasy=variant_fantasy(config, variant), moco_dim=config.moco_dim, scale=config.scale,
                            **config.arch_kwargs)
    if config.backbone_weights:
        load_backbone_weights(network.module, config.backbone_weights)
    return network


def train_variant(config: SAVCConfig, variant: str, run: RunDir, data, plain, split: fscil.FSCILSplit):
    """Base session on the shared loop, then the incremental sessions; ``(network, fit result, sessions)``."""
    network = build_variant_network(config, variant, len(split.order))
    net = network.module
    net.num_seen.fill_(split.num_base)
    mapping = split.relabel()
    base = dataclasses.replace(data, train=fscil.SessionSubset(data.train, split.sessions[0], mapping),
                               test=fscil.session_test_set(data.test, split, 1))
    queue, callbacks = None, []
    if variant in ("savc", "scl"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed + 1)
            queue = MomentumQueue(net, config.moco_k, config.moco_dim, config.moco_m)
        callbacks = [ContrastiveState(queue)]
    else:  # no projection is asked for: frozen, DDP waits for no gradient of the projector
        net.projector.requires_grad_(False)
    result = fit(config, run, network, base, callbacks=callbacks,
                 step_fn=make_step(config, variant, split.num_base, queue))
    device = next(net.parameters()).device
    sessions = fscil.run_sessions(net, plain.train, plain.test, split, device=device)
    for row in sessions:
        run.log(row["session"], config.epochs, "session",
                {k: v for k, v in row.items() if k.startswith("acc") and v is not None})
    run.flush_metrics()
    net.cpu()
    return network, result, sessions


def _summary(sessions: list[dict], result) -> dict[str, float]:
    last = sessions[-1]
    out = {"test_acc": last["acc_all"], "test_acc_base": last["acc_base"], "base_session_acc": sessions[0]["acc_all"]}
    if last["acc_novel"] is not None:
        out["test_acc_novel"] = last["acc_novel"]
    out["mean_session_acc"] = float(np.mean([r["acc_all"] for r in sessions]))
    if "test_acc" in result.evaluation:
        out["base_train_test_acc"] = result.evaluation["test_acc"]  # learnt classifier, before prototypes
    if "best_test_acc" in result.evaluation:   # best_metric: the best base-session epoch, chosen on its test set
        out["best_base_train_test_acc"] = result.evaluation["best_test_acc"]
        out["best_epoch"] = result.evaluation["best_epoch"]
    return out


def train(config: SAVCConfig, run) -> TrainOutcome:
    """Train the baselines (snapshots) and the main variant; the outcome is the main one."""
    if config.arch != "savc_net":
        raise ValidationError(f"config field 'arch' is {config.arch!r}; SAVC trains the 'savc_net' architecture "
                              "(choose its backbone with arch_kwargs: {backbone: small|resnet20|resnet18})")
    data = load_data(config, augment=config.augment)
    plain = load_data(config, augment=False)
    split = resolve_split(config, data, run.path if run.ctx.is_main else None)
    logger.info("FSCIL split: %s", split.describe())
    baselines = {}
    if config.baselines:
        for variant in (v for v in VARIANTS if v != config.variant):
            baselines[variant] = _train_baseline(config, variant, run, data, plain, split)
    network, result, sessions = train_variant(config, config.variant, run, data, plain, split)
    extra = {"fscil": {"variant": config.variant, "fantasy": variant_fantasy(config, config.variant),
                       "split": split.describe(), "split_files": config.split_dir or "split/",
                       "sessions": sessions, "baselines": baselines}}
    return TrainOutcome(network, network.module.state_dict(), data, _summary(sessions, result), extra=extra,
                        wall_time_s=result.wall_time_s + sum(b["wall_time_s"] for b in baselines.values()))


def _train_baseline(config: SAVCConfig, variant: str, run, data, plain, split) -> dict:
    """Train ``variant`` into ``RUN/snapshots/<variant>/`` (or read it back when finished)."""
    card = run.finished_child(variant)
    if card is not None:
        return {"sessions": card["fscil"]["sessions"], "wall_time_s": card.get("wall_time_s", 0.0)}
    sub = run.child(variant, config.replace(variant=variant, baselines=False), role="baseline")
    network, result, sessions = train_variant(sub.config, variant, sub, data, plain, split)
    sub.finish(network, network.module.state_dict(), data, {
        "variant": variant, "evaluation": _summary(sessions, result), "wall_time_s": round(result.wall_time_s, 3),
        "fscil": {"variant": variant, "fantasy": variant_fantasy(config, variant), "split": split.describe(),
                  "sessions": sessions}})
    return {"sessions": sessions, "wall_time_s": result.wall_time_s}


def run_data_and_split(run_dir: Path, card: dict):
    """The evaluation data (no augmentation, fingerprint checked against the card) and the session
    split of a finished run or of the run a baseline snapshot belongs to: ``(TrainingData, FSCILSplit)``."""
    from workbench.training.evaluation import load_run_data

    data, config = load_run_data(run_dir, card, load_data=load_data)
    folder = config.split_dir or Path(card.get("snapshot_of", run_dir)) / "split"
    return data, fscil.read_split(folder, np.asarray(data.train.targets), getattr(data.train, "paths", None))


@torch.no_grad()
def evaluate(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Last-session accuracies of a finished run (or baseline snapshot), recomputed from its files.

    Returns
    -------
    dict
        ``test_acc`` (all classes), ``test_acc_base``, ``test_acc_novel`` (top-1, fractions),
        with the prototypes stored in the weights and the split in ``split/`` (or ``split_dir``).
    """
    from workbench.training.evaluation import load_run_network

    run_dir = Path(run_dir)
    card, network = load_run_network(run_dir)
    data, split = run_data_and_split(run_dir, card)
    row = fscil.session_accuracy(network.module, data.test, split, split.num_sessions)
    return {"test_acc": row["acc_all"], "test_acc_base": row["acc_base"], "test_acc_novel": row["acc_novel"]}
