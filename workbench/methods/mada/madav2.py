"""MADAv2's stage-2 rules (munanning/MADAv2, ``step2_train_active_semi_sup.py`` and
``models/adaptation_model_AEL.py``, ``step_active_stage2``; U2PL / AEL style): the epoch clock of
the stage, entropy-percentile filtering of the teacher's pseudo-labels, the OHEM loss and AEL's
class-sampled, confidence-weighted consistency CE (``loss/loss.py``, ``Criterion_cons`` with
``sample: True``).

The reference counts stage 2 in epochs of its target loader (the whole target training set,
4 images a step, ``drop_last``): the pseudo-label percentile decays linearly over the epochs and
the anchor loss starts after epoch 50. Here an epoch is ``pool // adapt_batch_size`` steps
(:func:`stage2_epoch`), the stage has ``ceil(adapt2_steps / epoch_steps)`` epochs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from workbench.methods.mada.metrics import IGNORE

#: Which pixels the entropy percentile drops: ``lowest`` is the reference as run (entropy under
#: the percentile -> ignored, i.e. the most confident pixels), ``highest`` U2PL's rule (the least
#: confident pixels, entropy at or above the ``100 - percent`` percentile of the labelled ones).
ENTROPY_DROPS = ("lowest", "highest")
ACTIVE_LOSSES = ("ce", "ohem")
#: Stage 2's loss on the pseudo-labels: plain CE, or AEL's class-sampled confidence-weighted CE
#: (on the pseudo-labelled stream and on the selected images against the teacher's argmax).
PSEUDO_LOSSES = ("ce", "class_sampled")
#: AEL's ``class_momentum`` (``AEL.acm.momentum`` of configs/active_from_gta_to_city_stage2.yml).
CLASS_MOMENTUM = 0.999


def epoch_steps(pool_size: int, batch_size: int) -> int:
    """Steps of one stage-2 epoch: one pass over the target pool, last partial batch dropped (>= 1)."""
    return max(1, int(pool_size) // int(batch_size))


def stage2_epoch(step: int, steps_per_epoch: int) -> int:
    """The 0-based epoch that the 0-based ``step`` belongs to."""
    return int(step) // int(steps_per_epoch)


def stage2_epochs(total_steps: int, steps_per_epoch: int) -> int:
    """Epochs of a stage of ``total_steps`` steps (the last one may be partial)."""
    return max(1, math.ceil(int(total_steps) / int(steps_per_epoch)))


def entropy_percent(start_percent: float, epoch: int, epochs: int) -> float:
    """The reference's schedule: ``start_percent x (1 - epoch / epochs)`` (20 -> 0.1 over 200 epochs)."""
    return float(start_percent) * (1.0 - epoch / epochs)


def percentile(values: torch.Tensor, percent: float) -> torch.Tensor:
    """``numpy.percentile(values, percent)`` (linear interpolation) of a tensor's elements, on its device."""
    flat = values.detach().reshape(-1).float().sort().values
    position = percent / 100.0 * (flat.numel() - 1)
    lower = int(math.floor(position))
    upper = min(lower + 1, flat.numel() - 1)
    return flat[lower] + (flat[upper] - flat[lower]) * (position - lower)


def pixel_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the softmax of logits (N, C, H, W) -> (N, H, W); log of p + 1e-10 as the reference."""
    prob = logits.detach().float().softmax(1)
    return -(prob * torch.log(prob + 1e-10)).sum(1)


def drop_by_entropy(logits: torch.Tensor, labels: torch.Tensor, percent: float, drop: str = "lowest") -> torch.Tensor:
    """Pseudo-labels (N, H, W) with ``percent`` % of the pixels set to 255 by the entropy of ``logits``.

    ``lowest``: the percentile of every pixel's entropy, pixels strictly below it ignored (the
    reference). ``highest``: the ``100 - percent`` percentile of the entropy of the pixels still
    labelled, pixels at or above it ignored (U2PL). ``percent`` 0 returns the labels unchanged.
    """
    if drop not in ENTROPY_DROPS:
        raise ValueError(f"drop is {drop!r}; expected one of {ENTROPY_DROPS}")
    if percent <= 0:
        return labels
    entropy = pixel_entropy(logits)
    if drop == "lowest":
        dropped = entropy < percentile(entropy, percent)
    else:
        labelled = labels != IGNORE
        if not labelled.any():
            return labels
        dropped = labelled & (entropy >= percentile(entropy[labelled], 100.0 - percent))
    return torch.where(dropped, torch.full_like(labels, IGNORE), labels)


def ohem_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, thresh: float, min_kept: int) -> torch.Tensor:
    """Online hard-example mining CE (the reference's ``OhemCrossEntropy2dTensor``), mean over kept pixels.

    With at least ``min_kept`` labelled pixels in the batch, only the pixels whose softmax
    probability of their label is <= the threshold count, the threshold being ``thresh`` or, when
    larger, the ``min_kept``-th smallest of those probabilities (so >= ``min_kept`` pixels stay).
    With fewer labelled pixels: plain CE over all of them. ``logits`` (N, C, H, W), ``labels`` (N, H, W).
    """
    valid = labels != IGNORE
    num_valid = int(valid.sum())
    if 0 < num_valid and min_kept <= num_valid:
        prob = logits.detach().float().softmax(1)
        label_prob = prob.gather(1, labels.where(valid, 0).unsqueeze(1)).squeeze(1)
        label_prob = label_prob.where(valid, torch.ones_like(label_prob))
        threshold = torch.tensor(float(thresh), device=logits.device)
        if min_kept > 0:
            kth = label_prob.reshape(-1).kthvalue(int(min_kept)).values  # min_kept <= num_valid <= numel
            threshold = torch.maximum(threshold, kth)
        labels = labels.where(valid & (label_prob <= threshold), torch.full_like(labels, IGNORE))
    return F.cross_entropy(logits, labels, ignore_index=IGNORE)


def active_loss(logits: torch.Tensor, labels: torch.Tensor, config) -> torch.Tensor:
    """Stage 2's loss on the selected target images: CE, or OHEM with ``config.active_loss == "ohem"``."""
    if config.active_loss == "ohem":
        return ohem_cross_entropy(logits, labels, config.ohem_thresh, config.ohem_min_kept)
    return F.cross_entropy(logits, labels, ignore_index=IGNORE)


def filter_pseudo_labels(teacher_logits: torch.Tensor, labels: torch.Tensor, config, epoch: int,
                         epochs: int) -> torch.Tensor:
    """Pseudo-labels after ``config.pseudo_entropy_percent``'s filter at this epoch of the stage."""
    percent = entropy_percent(config.pseudo_entropy_percent, epoch, epochs)
    return drop_by_entropy(teacher_logits, labels, percent, config.pseudo_entropy_drop)


def category_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(C,) mean softmax probability of class c over the pixels labelled c, 0 where none is (AEL's
    ``cal_category_confidence``). ``logits`` (N, C, H, W), ``labels`` (N, H, W) with 255 ignored."""
    num_classes = logits.shape[1]
    prob = logits.detach().float().softmax(1)
    one_hot = F.one_hot(labels.where(labels != IGNORE, num_classes), num_classes + 1)[..., :num_classes]
    one_hot = one_hot.permute(0, 3, 1, 2).float()
    counts = one_hot.sum((0, 2, 3))
    return torch.where(counts > 0, (prob * one_hot).sum((0, 2, 3)) / (counts + 1e-12), torch.zeros_like(counts))


def initial_class_criterion(num_classes: int, seed: int) -> torch.Tensor:
    """(C,) uniform [0, 1) draws from ``seed``: AEL's ``class_criterion`` start (``torch.rand``), which the
    reference never moves (its momentum update goes to a local variable)."""
    return torch.rand(num_classes, generator=torch.Generator().manual_seed(int(seed)))


def class_criterion(start: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """The step's class criterion as the reference computes it: ``start x 0.999 + confidence x 0.001``."""
    return start.to(confidence.device) * CLASS_MOMENTUM + confidence * (1 - CLASS_MOMENTUM)


def class_sample_map(predicted: torch.Tensor, criterion: torch.Tensor) -> torch.Tensor:
    """(N, H, W) 0/1 map of the sampled pixels: a pixel predicted c is kept with probability
    ``(1 - criterion_c) / max_k (1 - criterion_k)`` (AEL, gamma2 = 1).

    As the reference: one uniform (H, W) map from torch's global RNG per class, in class order,
    shared by the batch's images; kept where the draw exceeds ``1 -`` that probability.
    """
    rate = 1 - criterion.float()
    rate = rate / (rate.max() + 1e-12)
    sampled = torch.zeros(predicted.shape, device=predicted.device)
    for c in range(len(rate)):
        draws = torch.rand(predicted.shape[-2:], device=predicted.device)
        sampled += ((draws * (predicted == c)) > 1 - rate[c]).float()
    return sampled


def class_sampled_cross_entropy(logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                                criterion: torch.Tensor, gamma: float) -> torch.Tensor:
    """AEL's consistency loss (``Criterion_cons``, ``sample: True``): per-pixel CE of ``logits``
    (N, C, H, W) against ``labels`` (N, H, W; 255 counts 0) weighted by the teacher's confidence
    (max softmax of ``teacher_logits``) ** ``gamma`` on the pixels :func:`class_sample_map` keeps
    (classes from the argmax of ``logits``), the weights divided by their sum over every pixel."""
    ce = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE, reduction="none")
    weight = teacher_logits.detach().float().softmax(1).amax(1) ** gamma
    weight = weight * class_sample_map(logits.detach().argmax(1), criterion)
    return (weight / (weight.sum() + 1e-12) * ce).sum()
