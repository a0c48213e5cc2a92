"""Train QSAM (two stages) and its baselines on the shared loop; evaluate them at every JPEG quality.

Timeline of a run (each phase is one call of :func:`workbench.training.fit` with its own folder
``DIR/phases/<name>/`` holding its ``metrics.csv`` and checkpoint; a finished phase keeps its
weights in ``phases/<name>/model.pt``, so ``--resume`` skips the phases already done):

1. ``qsam_stage1``: quantisation-aware training. Each training image is JPEG-encoded at the
   base qualities (default 90, 60, 30, 10), then, with ``augment``, the K decoded versions get one
   shared reflect-pad (4 px), horizontal flip and crop, in the reference's order
   (:class:`~workbench.methods.qsam.data.JointAugment`); the K versions are concatenated into one batch and
   chunk ``k`` goes through BN branch ``k`` of every QABN (shared convolutions). Loss
   ``sum_k QAC(QF_k) * CE_k`` (``qac_scale="raw"``, the paper's) or its version rescaled to a
   weighted mean (``"normalised"``: ``QAC`` divided by its mean over the base qualities, and the
   sum over chunks divided by K; the relative weights are the same, the loss has the scale of a
   plain cross-entropy, which the short tiny preset needs).
2. ``qsam_stage2``: the backbone (convolutions, BN branches and their running statistics, the
   classifier) is frozen; the mixer MLP is meta-learned in the MLDG style: at a random base
   quality ``k`` (one draw per batch from torch's RNG) ``meta_train = N * QAC * CE`` with the
   mixed network (``N`` the batch size: the reference's ``qac()`` sums over the batch),
   ``L1 = mean |w - onehot_k|``; inner step ``theta' = theta - meta_step_size *
   grad(meta_train)`` (graph kept); at a random held-out quality ``j`` of ``meta_qualities``
   ``meta_test = N * QAC * CE`` with ``theta'`` on the same images (``meta_images="same"``) or on
   independently drawn ones (``"separate"``, the reference's); total ``meta_train + meta_test +
   L1``. Each epoch is evaluated at every quality of ``eval_qualities`` (``acc`` is their mean,
   the reference's criterion for its best epoch). Optimiser:
   the shared loop's AdamW (lr ``meta_lr``, decoupled weight decay ``meta_weight_decay``; the
   paper uses Adam with L2 5e-4).
3. With ``baselines=True``, as snapshots (each a scorable run directory):
   ``qsam_noqac`` (stages 1 and 2 with every QAC weight replaced by 1), ``single_bn`` (the same
   network with one BN branch, trained on the same mixed-quality batches with the same loss as
   stage 1) and ``uncompressed`` (one BN branch, trained on the uncompressed images only, plain
   cross-entropy). Each has ``epochs`` epochs as stage 1.
4. Evaluation: every test image is written as a JPEG file at each quality of ``eval_qualities``
   (95 down to 10 in steps of 5); each file's tables are read back from the file
   (:func:`~workbench.methods.qsam.jpeg.decode`), as a user's JPEGs would be; top-1 accuracy per
   quality and its mean, for QSAM and every baseline (``accuracy_by_quality.csv``), and the mean
   mixing weights at each quality (``mixing_weights.csv``, with the uncompressed PNG path).

During training the tables of the base and held-out qualities come from
:func:`~workbench.methods.qsam.jpeg.quality_tables` (read from a file Pillow writes at that
quality): every file of one quality from this encoder holds the same tables (tested).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from workbench.errors import ValidationError
from workbench.methods.qsam.data import (JointAugment, JpegVersions, MetaPairs, SelectVersions, encoded_files,
                                        from_pixels)
from workbench.methods.qsam.jpeg import decode, qac, quality_tables
from workbench.training import TrainConfig, TrainOutcome, build_network
from workbench.training.loop import limited
from workbench.training.phases import adopt_phase_metrics, phase_wall_time, run_phase

logger = logging.getLogger(__name__)

#: Qualities of the evaluation: 95, 90, ..., 10.
EVAL_QUALITIES = tuple(range(95, 5, -5))
#: The baselines a run trains next to QSAM (snapshot names).
BASELINES = ("qsam_noqac", "single_bn", "uncompressed")
ACCURACY_FILE = "accuracy_by_quality.csv"
#: First epoch (1-based) of the decay of stage 2's ``exponential`` schedule (the reference's ``exp_decay_at_epoch``).
EXP_DECAY_START = 21
WEIGHTS_FILE = "mixing_weights.csv"


@dataclasses.dataclass(frozen=True)
class QSAMConfig(TrainConfig):
    """Shared training fields (stage 1 and the baselines) plus QSAM's.

    Parameters
    ----------
    base_qualities : tuple of int, default: (90, 60, 30, 10)
        JPEG qualities of stage 1, one BN branch each (K = their number).
    meta_qualities : tuple of int, default: (80, 70, 50, 40, 20)
        Held-out qualities of the meta-test in stage 2.
    eval_qualities : tuple of int, default: 95, 90, ..., 10
    use_qac : bool, default: True
        QAC loss weights (False: every weight 1, the "QSAM without QAC" ablation).
    qac_scale : {"raw", "normalised"}, default: "raw"
        ``raw``: ``sum_k QAC_k CE_k`` as in the paper; ``normalised``: QAC divided by its mean
        over the base qualities and chunk losses averaged (same relative weights).
    meta_epochs, meta_batch_size : int
        Stage 2's epochs and batch size.
    meta_lr, meta_weight_decay, meta_step_size : float
        Stage 2's AdamW lr and weight decay, and the MLDG inner step size.
    meta_scheduler : {"constant", "cosine", "exponential"}
        Stage 2's schedule; ``exponential`` is the reference's ``adjust_lr_exp``: ``meta_lr`` up
        to epoch 20, then ``meta_lr * 0.001 ** ((e - 20) / (meta_epochs - 21))`` at epoch ``e``
        (1-based; ``meta_epochs = 150`` gives the reference's 129).
    meta_images : {"same", "separate"}, default: "same"
        Stage 2's meta-test image: ``same``, the meta-train image at a held-out quality;
        ``separate``, an independent draw from the training set (the reference's separate
        loaders; with ``augment`` each image also gets its own reflect-pad, flip and crop).
    baselines : bool, default: True
        Also train the baselines (``qsam_noqac``, ``single_bn``, ``uncompressed``).
    """

    arch: str = "qsam_cnn"
    base_qualities: tuple[int, ...] = (90, 60, 30, 10)
    meta_qualities: tuple[int, ...] = (80, 70, 50, 40, 20)
    eval_qualities: tuple[int, ...] = EVAL_QUALITIES
    use_qac: bool = True
    qac_scale: str = "raw"
    meta_epochs: int = 2
    meta_batch_size: int = 64
    meta_lr: float = 0.004
    meta_weight_decay: float = 5e-4
    meta_step_size: float = 0.001
    meta_scheduler: str = "constant"
    meta_images: str = "same"
    baselines: bool = True

    CHOICES: typing.ClassVar[dict[str, tuple[str, ...]]] = {
        **TrainConfig.CHOICES, "qac_scale": ("raw", "normalised"),
        "meta_scheduler": ("constant", "cosine", "exponential"),
        "meta_images": ("same", "separate")}

    def __post_init__(self):
        super().__post_init__()
        for name in ("base_qualities", "meta_qualities", "eval_qualities"):
            values = getattr(self, name)
            if not values or any(isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 100 for q in values):
                raise ValidationError(f"config field {name!r} is {list(values)}; expected a non-empty list of "
                                      "JPEG qualities (integers 1..100)")
        if len(set(self.base_qualities)) != len(self.base_qualities):
            raise ValidationError(f"config field 'base_qualities' repeats a quality: {list(self.base_qualities)}")
        self.check_minimum(1, "meta_epochs", "meta_batch_size")
        if "branches" in self.arch_kwargs:
            raise ValidationError("arch_kwargs must not set 'branches': it is len(base_qualities)")


# --- loss weights ----------------------------------------------------------------------------

def qac_of_quality(quality: int | None) -> float:
    """QAC of the tables Pillow writes at ``quality`` (1 for ``None``, uncompressed)."""
    return quality_tables(quality).qac


def loss_weight(config: QSAMConfig, quality: int | None, *, use_qac: bool | None = None) -> float:
    """The factor of a cross-entropy at ``quality`` in every QSAM loss."""
    use_qac = config.use_qac if use_qac is None else use_qac
    if not use_qac:
        return 1.0
    value = qac_of_quality(quality)
    if config.qac_scale == "normalised":
        value /= float(np.mean([qac_of_quality(q) for q in config.base_qualities]))
    return value


def chunk_weights(config: QSAMConfig, qualities, *, use_qac: bool | None = None) -> torch.Tensor:
    """Weights (K,) of the chunk losses of stage 1 (their sum is the loss)."""
    weights = torch.tensor([loss_weight(config, q, use_qac=use_qac) for q in qualities], dtype=torch.float32)
    return weights / len(qualities) if config.qac_scale == "normalised" else weights


def meta_loss_weight(config: QSAMConfig, quality: int, batch: int, *, use_qac: bool) -> float:
    """The factor of a stage-2 cross-entropy (a mean over ``batch`` images) at ``quality``.

    ``qac_scale="raw"``: ``batch * QAC``, the reference's ``qac()`` of the batch's tables (it sums
    ``1/Q`` over every image of the batch); ``"normalised"``: :func:`loss_weight`; 1 without QAC.
    """
    weight = loss_weight(config, quality, use_qac=use_qac)
    return weight * batch if use_qac and config.qac_scale == "raw" else weight


def table_tensor(qualities) -> torch.Tensor:
    """(Q, 128) tables of each quality (luma then chroma, natural order)."""
    return torch.from_numpy(np.stack([quality_tables(q).vector for q in qualities]))


# --- step and evaluation functions ------------------------------------------------------------

def stage1_step(weights: torch.Tensor, *, single: bool):
    """``step_fn`` of stage 1 (and of the single-BN and uncompressed baselines).

    The batch is (N, K, 3, H, W); chunk ``k`` (N images) goes through branch ``k`` (branch 0
    for ``single``); loss ``sum_k weights[k] * CE_k``.
    """
    def step(network, module, images, labels, config):
        n, k = images.shape[:2]
        x = images.transpose(0, 1).reshape(n * k, *images.shape[2:])
        route = torch.zeros(n * k, dtype=torch.int64, device=x.device) if single else \
            torch.arange(k, device=x.device).repeat_interleave(n)
        logits = module(x, branches=route).float()
        target = labels.repeat(k)
        ce = F.cross_entropy(logits, target, reduction="none", label_smoothing=config.label_smoothing).view(k, n).mean(1)
        loss = (weights.to(ce.device) * ce).sum()
        acc = (logits.argmax(1) == target).float().view(k, n).mean(1)
        return loss, {"loss": loss.detach(), "acc": acc.mean().detach(),
                      **{f"acc_chunk{i}": acc[i].detach() for i in range(k)}}

    return step


def stage1_eval(qualities, *, single: bool):
    """``eval_fn`` of stage 1: accuracy of each chunk through its branch (running statistics)."""
    @torch.no_grad()
    def evaluate(network, loader, device):
        was = network.module.training
        network.module.eval()
        correct, loss_sum, total = np.zeros(len(qualities)), 0.0, 0
        try:
            for images, labels in loader:
                images, labels = images.to(device), labels.to(device)
                for k in range(images.shape[1]):
                    logits = network.module(images[:, k], branches=0 if single else k).float()
                    loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
                    correct[k] += (logits.argmax(1) == labels).sum().item()
                total += len(labels)
        finally:
            network.module.train(was)
        acc = correct / total
        out = {"loss": loss_sum / (total * len(qualities)), "acc": float(acc.mean())}
        out.update({f"acc_{_qname(q)}": float(a) for q, a in zip(qualities, acc)})
        return out

    return evaluate


def meta_step(config: QSAMConfig, *, use_qac: bool):
    """``step_fn`` of stage 2 (MLDG on the mixer).

    The batch is (N, Kb + Km, 3, H, W): the base then the held-out versions; labels (N,) when
    both come from the same image, (N, 2) (meta-train, meta-test label) for ``meta_images=
    "separate"`` (:class:`~workbench.methods.qsam.data.MetaPairs`). Each cross-entropy is
    weighted by :func:`meta_loss_weight`.
    """
    from torch.func import functional_call

    base, held = tuple(config.base_qualities), tuple(config.meta_qualities)
    tables = table_tensor(base + held)

    def step(network, module, images, labels, config_):
        net = network.module
        n, kb = images.shape[0], len(base)
        train_labels, test_labels = (labels[:, 0], labels[:, 1]) if labels.dim() == 2 else (labels, labels)
        k = int(torch.randint(len(base), (1,)))
        j = int(torch.randint(len(held), (1,)))
        params = dict(net.mixer.named_parameters())
        t_train = tables[k].to(images.device).expand(n, -1)
        t_test = tables[kb + j].to(images.device).expand(n, -1)
        w_train = functional_call(net.mixer, params, (t_train,))
        logits = net(images[:, k], weights=w_train).float()
        meta_train = meta_loss_weight(config, base[k], n, use_qac=use_qac) * F.cross_entropy(logits, train_labels)
        onehot = F.one_hot(torch.full((n,), k, device=images.device), len(base)).float()
        l1 = F.l1_loss(w_train, onehot)
        grads = torch.autograd.grad(meta_train, list(params.values()), create_graph=True)
        adapted = {name: p - config.meta_step_size * g for (name, p), g in zip(params.items(), grads)}
        w_test = functional_call(net.mixer, adapted, (t_test,))
        logits_test = net(images[:, kb + j], weights=w_test).float()
        meta_test = meta_loss_weight(config, held[j], n, use_qac=use_qac) * F.cross_entropy(logits_test, test_labels)
        loss = meta_train + meta_test + l1
        acc = (logits.argmax(1) == train_labels).float().mean()
        return loss, {"loss": loss.detach(), "acc": acc.detach(), "meta_train": meta_train.detach(),
                      "meta_test": meta_test.detach(), "l1": l1.detach(),
                      "meta_test_acc": (logits_test.argmax(1) == test_labels).float().mean().detach()}

    return step


def mixed_eval(qualities):
    """``eval_fn`` of stage 2: accuracy at each quality, mixing from that quality's tables."""
    tables = table_tensor(qualities)

    @torch.no_grad()
    def evaluate(network, loader, device):
        was = network.module.training
        network.module.eval()
        correct, total = np.zeros(len(qualities)), 0
        try:
            for images, labels in loader:
                images, labels = images.to(device), labels.to(device)
                for k in range(images.shape[1]):
                    t = tables[k].to(device).expand(len(labels), -1)
                    correct[k] += (network.module(images[:, k], tables=t).argmax(1) == labels).sum().item()
                total += len(labels)
        finally:
            network.module.train(was)
        acc = correct / total
        return {"acc": float(acc.mean()), **{f"acc_{_qname(q)}": float(a) for q, a in zip(qualities, acc)}}

    return evaluate


def _qname(quality) -> str:
    return "uncompressed" if quality is None else f"q{quality}"


# --- phases ---------------------------------------------------------------------------------

def _build(config: QSAMConfig, data, branches: int):
    return build_network(config.arch, time_steps=config.time_steps, seed=config.seed,
                         num_classes=data.num_classes, branches=branches, **config.arch_kwargs)


def _stage1_config(config: QSAMConfig) -> QSAMConfig:
    """Stage 1 and the single-branch baselines: no best epoch (the reference keeps stage 2's only)."""
    return dataclasses.replace(config, best_metric="")


def _stage2_config(config: QSAMConfig) -> QSAMConfig:
    schedule = {"scheduler": config.meta_scheduler}
    if config.meta_scheduler == "exponential":   # one decay by gamma at each epoch from the 21st (1-based)
        schedule = {"scheduler": "multistep", "milestones": tuple(range(EXP_DECAY_START - 1, config.meta_epochs)),
                    "gamma": 0.001 ** (1.0 / max(1, config.meta_epochs - EXP_DECAY_START))}
    return dataclasses.replace(config, epochs=config.meta_epochs, batch_size=config.meta_batch_size,
                               optimizer="adamw", lr=config.meta_lr, momentum=0.9,
                               weight_decay=config.meta_weight_decay, warmup_epochs=0, label_smoothing=0.0,
                               **schedule)


def _train_qsam(run, config, data, phase_data, meta_data, *, use_qac: bool, prefix: str):
    base = tuple(config.base_qualities)
    network = _build(config, data, len(base))
    # stage 1 routes images to branches and never calls the mixer: frozen, it has no gradient to
    # wait for under torchrun (DDP expects one for every trainable parameter); unchanged in one
    # process, where the optimizer skips parameters without a gradient
    network.module.mixer.requires_grad_(False)
    stage1 = run_phase(run, f"{prefix}_stage1", _stage1_config(config), network, phase_data,
                        step_fn=stage1_step(chunk_weights(config, base, use_qac=use_qac), single=False),
                        eval_fn=stage1_eval(base, single=False))
    network.module.mixer.requires_grad_(True)  # stage 2 trains the mixer alone
    for p in network.module.backbone.parameters():
        p.requires_grad_(False)
    stage2 = run_phase(run, f"{prefix}_stage2", _stage2_config(config), network, meta_data,
                        step_fn=meta_step(config, use_qac=use_qac),
                        eval_fn=mixed_eval(tuple(config.eval_qualities)))
    for p in network.module.parameters():
        p.requires_grad_(True)
    network.module.eval()
    return network, {"stage1": stage1, "stage2": stage2}


def train(config: QSAMConfig, run) -> TrainOutcome:
    from workbench.data.training import load_training_data

    # read once, un-augmented: QSAM augments the encoded versions itself (JointAugment)
    plain = load_training_data(config.dataset, root=config.data_root, augment=False)
    data = dataclasses.replace(plain, description=f"{plain.description}; QSAM augments the JPEG versions of "
                               "an item alike: reflect-pad 4 px, random flip and crop") if config.augment else plain
    mean, std = data.preprocessing.mean, data.preprocessing.std
    base, held = tuple(config.base_qualities), tuple(config.meta_qualities)

    # Every un-augmented image is encoded once at the base and held-out qualities and cached; with
    # ``augment`` the reference's augmentation follows the encoding (JointAugment). Stage 2 is
    # evaluated at the evaluation qualities (its mean is the reference's best-epoch criterion).
    train_all = JpegVersions(plain.train, base + held, mean, std, cache=True)
    augmented = JointAugment if config.augment else (lambda versions: versions)
    first = range(len(base))
    # with augment (GPU runs, DataLoader workers whose caches end with each epoch) stage 1 encodes
    # only the base qualities; without, it shares stage 2's cache (one process)
    stage1_versions = JpegVersions(plain.train, base, mean, std, cache=True) if config.augment else \
        SelectVersions(train_all, first)
    phase_data = dataclasses.replace(data, train=augmented(stage1_versions),
                                     test=JpegVersions(plain.test, base, mean, std, cache=True))
    meta_train = train_all if config.meta_images == "same" else MetaPairs(
        augmented(SelectVersions(train_all, first)),
        augmented(SelectVersions(train_all, range(len(base), len(base) + len(held)))))
    meta_data = dataclasses.replace(data, train=meta_train, test=JpegVersions(
        plain.test, tuple(config.eval_qualities), mean, std, cache=True))
    uncompressed_data = dataclasses.replace(
        data, train=augmented(JpegVersions(plain.train, (None,), mean, std, cache=True)),
        test=JpegVersions(plain.test, (None,), mean, std, cache=True))

    networks, phases = {}, {}
    networks["qsam"], phases["qsam"] = _train_qsam(run, config, data, phase_data, meta_data,
                                                   use_qac=config.use_qac, prefix="qsam")
    if config.baselines:
        networks["qsam_noqac"], phases["qsam_noqac"] = _train_qsam(run, config, data, phase_data, meta_data,
                                                                   use_qac=False, prefix="noqac")
        single = _build(config, data, 1)
        phases["single_bn"] = run_phase(run, "single_bn", _stage1_config(config), single, phase_data,
                                         step_fn=stage1_step(chunk_weights(config, base), single=True),
                                         eval_fn=stage1_eval(base, single=True))
        networks["single_bn"] = single
        uncompressed = _build(config, data, 1)
        phases["uncompressed"] = run_phase(run, "uncompressed", _stage1_config(config), uncompressed,
                                            uncompressed_data,
                                            step_fn=stage1_step(torch.ones(1), single=True),
            eval_fn=stage1_eval((None,), single=True))
        networks["uncompressed"] = uncompressed

    logger.info("evaluating %d networks at %d JPEG qualities", len(networks), len(config.eval_qualities))
    test = limited(plain.test, config.limit_test)
    accuracy = accuracy_by_quality({k: n.module for k, n in networks.items()}, test, config.eval_qualities, mean, std)
    weights = mixing_weights_table({k: n.module for k, n in networks.items() if n.module.branches > 1},
                                   config.eval_qualities, base, held)
    run.write_text(ACCURACY_FILE, accuracy.to_csv(index=False))
    run.write_text(WEIGHTS_FILE, weights.to_csv(index=False))
    summaries = {name: _summary(accuracy, name) for name in networks}
    for name in ("qsam", "qsam_noqac"):   # stage 2's best epoch (best_metric), labelled best_*
        if name in phases:
            summaries[name].update({k: v for k, v in phases[name]["stage2"].items() if k.startswith("best_")})
    for name, net in networks.items():
        if name != "qsam":
            run.write_snapshot(name, net, net.module.state_dict(), data, {
                "evaluation": summaries[name], "phases": phases[name]}, role="baseline")
    qsam_eval = summaries["qsam"]
    step = adopt_phase_metrics(run, "qsam_stage1")
    run.log(step, config.epochs, "test", {"qf_" + k[5:]: v for k, v in qsam_eval.items() if k.startswith("test_")})
    run.flush_metrics()
    network = networks["qsam"]
    extra = {"qsam": {"base_qualities": list(base), "meta_qualities": list(held),
                      "qac": {str(q): qac_of_quality(q) for q in base + held},
                      "baselines": {k: v for k, v in summaries.items() if k != "qsam"},
                      "phases": phases["qsam"]}}
    wall = phase_wall_time(run, _phase_names(config))
    return TrainOutcome(network, network.module.state_dict(), data, qsam_eval, extra=extra, wall_time_s=wall)


def _phase_names(config: QSAMConfig) -> list[str]:
    names = ["qsam_stage1", "qsam_stage2"]
    if config.baselines:
        names += ["noqac_stage1", "noqac_stage2", "single_bn", "uncompressed"]
    return names


def _summary(accuracy: pd.DataFrame, name: str) -> dict[str, float]:
    rows = accuracy[accuracy.model == name]
    out = {"test_acc": float(rows.acc.mean())}
    out.update({f"test_acc_q{int(q)}": float(a) for q, a in zip(rows.quality, rows.acc)})
    return out


# --- evaluation -----------------------------------------------------------------------------

def load_files(files, mean, std) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``(images (N, 3, H, W) normalised, tables (N, 128), kinds)`` of image files, tables read from each."""
    images, tables, kinds = [], [], []
    for file in files:
        pixels, quant = decode(file) if isinstance(file, (bytes, bytearray)) else _decode_path(file)
        images.append(from_pixels(pixels, mean, std))
        tables.append(torch.from_numpy(quant.vector))
        kinds.append(quant.kind)
    return torch.stack(images), torch.stack(tables), kinds


def _decode_path(path):
    from workbench.methods.qsam.jpeg import open_image

    image, quant = open_image(path)
    return np.asarray(image, dtype=np.uint8), quant


@torch.no_grad()
def accuracy_by_quality(models: dict[str, torch.nn.Module], test, qualities, mean, std,
                        *, batch_size: int = 512) -> pd.DataFrame:
    """Top-1 accuracy of each model on ``test`` written as JPEG files at each quality.

    Returns
    -------
    DataFrame
        Columns ``model, quality, acc, qac`` (QAC of the tables read from the files).
    """
    labels = torch.tensor([int(test[i][1]) for i in range(len(test))])
    rows = []
    for quality in qualities:
        images, tables, _ = load_files(encoded_files(test, quality, mean, std), mean, std)
        q_acc = float(np.mean([qac(t[:64].numpy(), t[64:].numpy()) for t in tables]))
        for name, module in models.items():
            module.eval()
            correct = 0
            for start in range(0, len(labels), batch_size):
                sl = slice(start, start + batch_size)
                correct += (module(images[sl], tables=tables[sl]).argmax(1) == labels[sl]).sum().item()
            rows.append((name, int(quality), correct / len(labels), q_acc))
    return pd.DataFrame(rows, columns=["model", "quality", "acc", "qac"])


@torch.no_grad()
def mixing_weights_table(models: dict[str, torch.nn.Module], qualities, base, held) -> pd.DataFrame:
    """Mixing weights of each multi-branch model at each quality (and the uncompressed path).

    Returns
    -------
    DataFrame
        Columns ``model, quality`` (``0`` = uncompressed), ``role`` ("base", "held_out" or
        "unseen"), ``w_q<base>`` for each branch.
    """
    everything = sorted(set(qualities) | set(base) | set(held), reverse=True)
    rows = []
    for name, module in models.items():
        module.eval()
        for quality in [None, *everything]:
            w = module.mixing_weights(table_tensor((quality,)))[0].tolist()
            role = "base" if quality in base else "held_out" if quality in held else "unseen"
            rows.append((name, 0 if quality is None else int(quality), role, *w))
    return pd.DataFrame(rows, columns=["model", "quality", "role", *[f"w_q{q}" for q in base]])


def evaluate(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Re-evaluate a finished run (or one of its snapshots) from its files.

    Returns ``test_acc`` (the mean over the run's evaluation qualities) and ``test_acc_q<QF>``
    at each, every test image written as a JPEG file and its tables read back.
    """
    from workbench.training.evaluation import load_run_data, load_run_network

    run_dir = Path(run_dir)
    card, network = load_run_network(run_dir)
    data, config = load_run_data(run_dir, card)
    qualities = tuple(config.eval_qualities)
    test = limited(data.test, config.limit_test)
    frame = accuracy_by_quality({"model": network.module}, test, qualities,
                                data.preprocessing.mean, data.preprocessing.std)
    return _summary(frame, "model")


def predict_files(run_dir: str | os.PathLike, files) -> pd.DataFrame:
    """Classify image files with a trained QSAM run, each with the tables read from the file.

    Parameters
    ----------
    run_dir : path
        A finished ``qsam`` run (or a snapshot).
    files : sequence of paths or bytes
        JPEGs (baseline, progressive or grayscale) or lossless PNG/BMP/PPM images of the run's
        input size.

    Returns
    -------
    DataFrame
        ``file, kind, qac, label, w_<k>...`` one row per file.
    """
    from workbench.training.evaluation import load_run_network

    card, network = load_run_network(run_dir)
    pre = card["preprocessing"]
    images, tables, kinds = load_files(files, pre["mean"], pre["std"])
    with torch.no_grad():
        logits = network.module(images, tables=tables)
        weights = network.module.mixing_weights(tables)
    names = [str(f) if not isinstance(f, (bytes, bytearray)) else f"<bytes {i}>" for i, f in enumerate(files)]
    frame = pd.DataFrame({"file": names, "kind": kinds,
                          "qac": [qac(t[:64].numpy(), t[64:].numpy()) for t in tables],
                          "label": logits.argmax(1).tolist()})
    for k in range(weights.shape[1]):
        frame[f"w_{k}"] = weights[:, k].tolist()
    return frame
