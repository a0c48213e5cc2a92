"""MADAv2's stage-2 rules (munanning/MADAv2, ``step2_train_active_semi_sup.py`` and
``models/adaptation_model_AEL.py``, ``step_active_stage2``; U2PL / AEL style): the epoch clock of
the stage, entropy-percentile filtering of the teacher's pseudo-labels and the OHEM loss.

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
