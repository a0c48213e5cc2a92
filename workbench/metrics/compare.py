"""Several metrics on one (features, responses) pair, sharing the Gram product and its algebra."""

from __future__ import annotations

import logging
import warnings

import numpy as np

from workbench.errors import ValidationError
from workbench.metrics.derived import prepare_pair
from workbench.metrics.registry import get_metric, list_metrics
from workbench.validation import check_choice

logger = logging.getLogger(__name__)

DEFAULT_METRICS = ("svcca", "tsvd_regression", "rsa", "cka")
ERROR_MODES = ("warn", "raise")


class MetricWarning(UserWarning):
    """A metric that :func:`compare` could not compute on a pair (its score is NaN)."""


class CompareResult(dict):
    """Scores by metric name (a dict), with the reason for each one that could not be computed.

    Attributes
    ----------
    reasons : dict of str to str
        For each metric whose score is NaN, why (the message of its ``ValidationError``).
    """

    def __init__(self, *args, reasons: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.reasons = dict(reasons or {})


def _score_metrics(infos, x, y, parameters: dict, errors: str) -> CompareResult:
    """Score the prepared pair ``x, y`` with each metric of ``infos``, for :func:`compare`.

    Each metric gets the entries of ``parameters`` it accepts; ``errors`` as in :func:`compare`
    (its :class:`MetricWarning` points at the caller of :func:`compare`).
    """
    scores = CompareResult()
    for info in infos:
        try:
            scores[info.name] = info.from_stats(x, y, **{p: parameters[p] for p in info.parameters})
        except ValidationError as exc:
            if errors == "raise":
                raise
            scores[info.name] = np.nan
            scores.reasons[info.name] = str(exc)
            warnings.warn(MetricWarning(f"{info.name} could not be computed (NaN): {exc}"),
                          stacklevel=3)
            continue
        logger.debug("%s = %.6f (%d stimuli, %d features)", info.name, scores[info.name], x.n_stimuli, x.n_features)
    return scores


def compare(
    X,
    Y,
    metrics=DEFAULT_METRICS,
    *,
    n_components: int = 40,
    reduce_y: bool = True,
    alpha: float = 1.0,
    kernel: str = "linear",
    debiased: bool = False,
    errors: str = "warn",
) -> CompareResult:
    """Score one pair with several metrics, computing the shared statistics once.

    ``X @ X.T`` (or the given GramStats), its top eigenpairs and its centred forms are
    computed once and reused by every metric, so scoring all four costs little more than
    one Gram product.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_stimuli, n_features), or GramStats
        Model features (no preprocessing is applied; see :func:`zscore_features`).
    Y : array-like or torch.Tensor of shape (n_stimuli, n_neuroids)
        Neural responses to the same stimuli, in the same order.
        Either side may also be a :class:`~workbench.metrics.derived.DerivedStats`
        (``DerivedStats.from_input(Y, "Y")``): what it has computed (centred kernels, RDM
        ranks, eigenpairs) is kept and reused, e.g. for one region against many layers.
    metrics : sequence of str, default: ("svcca", "tsvd_regression", "rsa", "cka")
        Names from :func:`list_metrics`.
    n_components, reduce_y : see :func:`svcca` (``n_components`` also for
        :func:`tsvd_regression`).
    alpha : see :func:`tsvd_regression`.
    kernel, debiased : see :func:`cka`.
    errors : {"warn", "raise"}, default: "warn"
        What a metric that cannot be computed on this pair does (e.g. SVCCA with more
        canonical variables than stimuli allow, RSA with a stimulus of zero variance):
        ``"warn"``: its score is NaN, its reason goes into ``reasons`` and a
        :class:`MetricWarning` names both, and every other metric is still computed;
        ``"raise"``: its ``ValidationError`` propagates. Invalid arguments and inputs
        (unknown metric names, mismatched rows, NaN in the data) raise either way.

    Returns
    -------
    CompareResult (a dict of str to float)
        One score per requested metric, in the requested order; all are higher-is-better.
        ``result.reasons[name]`` says why a score is NaN.

    See Also
    --------
    workbench.analysis.score_layer : the study's protocol applied to one layer and one region
        (z-scoring, SVCCA's neural side reduced only for the Allen data): the number
        ``workbench score`` gives for that cell. ``compare`` applies no protocol, and its
        ``reduce_y`` defaults to True.
    """
    if isinstance(metrics, str):
        metrics = (metrics,)
    names = list(metrics)
    if not names:
        raise ValidationError(f"metrics is empty; expected one or more of {list_metrics()}")
    infos = [get_metric(name) for name in names]
    check_choice(errors, "errors", ERROR_MODES)
    x, y = prepare_pair(X, Y)
    parameters = {
        "n_components": n_components,
        "reduce_y": reduce_y,
        "alpha": alpha,
        "kernel": kernel,
        "debiased": debiased,
    }
    if "rsa" in names and len(names) > 1:
        # ranking the RDMs (sorts, no BLAS) overlaps with the eigenpairs of the other metrics
        from workbench.metrics.rsa import start_rdm_ranks

        start_rdm_ranks(x, y)
    return _score_metrics(infos, x, y, parameters, errors)
