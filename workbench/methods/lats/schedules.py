"""Threshold schedules ``d_t`` for soft-threshold pruning, and the one-shot baseline's timing.

Convention: ``t`` counts the optimiser steps completed since pruning started (``t = 0`` before
the first pruning step, ``t = T`` after the last). The step with index ``t`` (0-based, from the
start of pruning) computes its forward pass with ``d_t``; the network exported after training
uses ``d_T = D``. This is the reference code's order (``trainer.py`` updates the threshold after
each optimiser step, starting from 0).

Why these schedules (section 4 of the paper). Soft-threshold reparameterisation trained by SGD
is an implicit ISTA on ``loss + lambda_t * ||w||_1`` with ``lambda_t = (d_{t+1} - d_t) / lr_t``.
Keeping ``lambda`` constant (a time-invariant objective) means ``d_{t+1} - d_t = lambda * lr_t``:

- :func:`ista_thresholds`: ``d_t = lambda * sum_{s<t} lr_s`` for any learning-rate sequence.
- :func:`slats_threshold` (S-LATS): with ``lr_s`` a cosine over the ``T`` pruning steps,
  ``sum_{s<t} lr_s / sum_{s<T} lr_s -> t/T + sin(pi t/T)/pi``, so
  ``d_t = D * (t/T + sin(pi t/T)/pi)``, per iteration, reaching ``D`` at ``t = T``.
- :func:`lats_threshold` (LATS, the reference's ``--low-freq``): the per-epoch discretisation.
  Pruning epoch ``n`` of ``N`` carries the weight ``w_n = 1 + cos(pi n/N)``
  (:func:`lats_epoch_weights`: the epoch-wise cosine learning rate of the paper, over the
  pruning epochs, whatever the run's actual learning rate); the threshold rises linearly inside
  the epoch by ``D * w_n / sum_m w_m``, and at epoch boundaries equals
  ``D * sum_{m<n} w_m / sum_m w_m``, the closed form
  ``(1 + 2n + sin(pi (n - 1/2)/N) / sin(pi/(2N))) / (2 (N + 1))`` of the reference code.
- :func:`pgh_threshold` (PGH, the reference's ``sinppgh``): the constant-lambda schedule made
  to grow geometrically, ``lambda(x) ~ beta^x``, under the cosine learning rate:
  ``d(x) = D * I(x) / I(1)`` with ``I(x) = int_0^x (1 + cos(pi s)) beta^s ds``, ``x = t/T``.
- :func:`linear_threshold`: the baseline ramp ``d_t = D * t/T`` (a decaying ``lambda_t`` under a
  cosine learning rate).

The one-shot baseline (``"oneshot"``) has no threshold: at ``t = 0`` the network is pruned by
global weight magnitude to a target sparsity with a fixed mask and fine-tuned for the ``T``
remaining steps (:func:`workbench.methods.lats.pruning.apply_magnitude_mask`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from workbench.errors import ValidationError

#: The schedules a LATS config can name.
SCHEDULES = ("lats", "slats", "pgh", "linear", "ista", "oneshot")


def _check_steps(t: int, total: int) -> None:
    if total <= 0:
        raise ValidationError(f"the pruning phase must have >= 1 step, got T={total}")
    if not 0 <= t <= total:
        raise ValidationError(f"pruning step t={t} is outside [0, T={total}]")


def slats_threshold(t: int, total: int, D: float) -> float:
    """S-LATS: ``D * (t/T + sin(pi t/T)/pi)`` for ``t`` pruning steps done out of ``T``."""
    _check_steps(t, total)
    x = t / total
    return D * (x + math.sin(math.pi * x) / math.pi)


def linear_threshold(t: int, total: int, D: float) -> float:
    """Linear ramp ``D * t/T``."""
    _check_steps(t, total)
    return D * t / total


def check_pgh_beta(beta: float | None) -> None:
    """Raise :class:`ValidationError` unless ``beta`` (PGH's growth base) is a finite number > 0."""
    if beta is None or not (math.isfinite(beta) and beta > 0):
        raise ValidationError(f"PGH needs beta > 0, got {beta}: schedule 'pgh' needs its growth base, "
                              "a finite number > 0 (--set beta=<beta>)")


def pgh_threshold(t: int, total: int, D: float, beta: float) -> float:
    """PGH: ``D * I(t/T) / I(1)``, ``I(x) = int_0^x (1 + cos(pi s)) beta^s ds`` (``beta > 0``).

    ``beta = 1`` is S-LATS (:func:`slats_threshold`); ``beta > 1`` moves the pruning late.
    """
    _check_steps(t, total)
    check_pgh_beta(beta)
    if beta == 1.0:
        return slats_threshold(t, total, D)
    log_beta = math.log(beta)

    def integral(x: float) -> float:
        # int_0^x beta^s ds + int_0^x cos(pi s) beta^s ds, both in closed form
        grow = beta ** x
        plain = (grow - 1.0) / log_beta
        wave = (grow * (log_beta * math.cos(math.pi * x) + math.pi * math.sin(math.pi * x)) - log_beta) \
            / (log_beta ** 2 + math.pi ** 2)
        return plain + wave

    return D * integral(t / total) / integral(1.0)


def lats_epoch_weights(epochs: int) -> list[float]:
    """LATS's weight ``1 + cos(pi n/N)`` of each pruning epoch ``n = 0 .. N-1`` (``N = epochs``)."""
    if epochs <= 0:
        raise ValidationError(f"LATS needs >= 1 pruning epoch, got {epochs}")
    return [1.0 + math.cos(math.pi * n / epochs) for n in range(epochs)]


def lats_threshold(t: int, steps_per_epoch: int, epoch_weights: Sequence[float], D: float) -> float:
    """LATS: per-epoch discretisation of the constant-lambda schedule.

    Parameters
    ----------
    t : int
        Pruning steps done, in ``[0, len(epoch_weights) * steps_per_epoch]``.
    steps_per_epoch : int
        Optimiser steps per epoch.
    epoch_weights : sequence of float
        Weight of each pruning epoch (``N`` values >= 0, at least one > 0): the
        epoch's learning rate in the theory, :func:`lats_epoch_weights` for LATS.
    D : float
        Final threshold.

    Returns
    -------
    float
        ``D * (sum_{m<n} w_m + b * w_n / steps_per_epoch) / sum_m w_m`` with
        ``n, b = divmod(t, steps_per_epoch)``.
    """
    weights = np.asarray(epoch_weights, dtype=float)
    total = float(weights.sum())
    if weights.ndim != 1 or weights.size == 0 or (weights < 0).any() or total <= 0:
        raise ValidationError(f"epoch_weights must be >= 0 with a positive sum, got {list(weights)}")
    if steps_per_epoch <= 0:
        raise ValidationError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    _check_steps(t, weights.size * steps_per_epoch)
    n, b = divmod(t, steps_per_epoch)
    done = float(weights[:n].sum())
    if n < weights.size:
        done += b * weights[n] / steps_per_epoch
    return D * done / total


def ista_thresholds(lrs: Sequence[float], lam: float) -> np.ndarray:
    """Constant-lambda ISTA schedule: ``d_t = lam * sum_{s<t} lr_s`` for ``t = 0 .. len(lrs)``.

    Parameters
    ----------
    lrs : sequence of float, length T
        Learning rate of each pruning step.
    lam : float
        L1 coefficient of the implied problem ``loss + lam * ||w||_1`` (loss units per weight
        unit).

    Returns
    -------
    numpy.ndarray, shape (T + 1,)
        Threshold before each step and, last, after the final step.
    """
    lrs = np.asarray(lrs, dtype=float)
    if lrs.ndim != 1 or (lrs < 0).any():
        raise ValidationError(f"lrs must be a 1-d sequence of rates >= 0, got shape {lrs.shape}")
    return lam * np.concatenate([[0.0], np.cumsum(lrs)])


def threshold_schedule(name: str, *, D: float, total_steps: int, steps_per_epoch: int,
                       lr_at: Callable[[int], float] | None = None,
                       beta: float | None = None) -> Callable[[int], float]:
    """The function ``t -> d_t`` of a named schedule over a pruning phase of ``total_steps``.

    Parameters
    ----------
    name : {"lats", "slats", "pgh", "linear", "ista"}
        ``"ista"`` keeps lambda constant against the actual learning rates, normalised so that
        ``d_T = D`` (``lambda = D / sum lr``); ``"lats"`` weighs the pruning epochs by
        :func:`lats_epoch_weights`, as the reference code (not by the actual learning rate).
    D : float
        Final threshold (>= 0).
    total_steps : int
        ``T``, steps of the pruning phase (a multiple of ``steps_per_epoch`` for ``"lats"``).
    steps_per_epoch : int
    lr_at : callable, optional
        ``t -> learning rate`` of pruning step ``t``; required by ``"ista"``.
    beta : float, optional
        PGH's growth base; required by ``"pgh"``.
    """
    if name not in SCHEDULES or name == "oneshot":
        valid = [s for s in SCHEDULES if s != "oneshot"]
        raise ValidationError(f"unknown threshold schedule {name!r}; expected one of {valid}")
    if not (math.isfinite(D) and D >= 0):
        raise ValidationError(f"final threshold D must be a finite number >= 0, got {D}")
    if total_steps <= 0:
        raise ValidationError(f"the pruning phase must have >= 1 step, got {total_steps}")
    if name == "slats":
        return lambda t: slats_threshold(t, total_steps, D)
    if name == "linear":
        return lambda t: linear_threshold(t, total_steps, D)
    if name == "pgh":
        check_pgh_beta(beta)  # now, not at the first step
        return lambda t: pgh_threshold(t, total_steps, D, beta)
    if name == "lats":
        epochs, rest = divmod(total_steps, steps_per_epoch)
        if rest:
            raise ValidationError(f"LATS needs whole pruning epochs: {total_steps} steps is not a "
                                  f"multiple of {steps_per_epoch} steps per epoch")
        weights = lats_epoch_weights(epochs)
        return lambda t: lats_threshold(t, steps_per_epoch, weights, D)
    if lr_at is None:
        raise ValidationError(f"schedule {name!r} needs the learning rates (lr_at)")
    lrs = [lr_at(s) for s in range(total_steps)]
    total = float(sum(lrs))
    if total <= 0:
        raise ValidationError("schedule 'ista' needs a positive sum of learning rates")
    table = ista_thresholds(lrs, D / total)

    def ista(t: int) -> float:
        _check_steps(t, total_steps)
        return float(table[t])

    return ista
