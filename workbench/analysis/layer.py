"""One layer against one region, scored exactly as the sweep scores that cell.

:func:`score_layer` is the protocol-aware Python entry point: it applies the
:class:`~workbench.analysis.Protocol`'s z-scoring, SVCCA's neural-side reduction (only for the
datasets in ``protocol.reduce_neural_for``), the SVD dimensions and the ridge penalty, and
then calls the very function the sweep calls for each cell
(:func:`workbench.analysis.cells.score_region`). So the README snippet, the quickstart
notebook and ``workbench score`` give one number for one cell.
:func:`workbench.metrics.compare` stays the protocol-free building block (its ``reduce_y``
defaults to True, as in :func:`~workbench.metrics.svcca`). Its scores carry their chance
level: the cell's stimulus-permutation null, computed as the sweep computes it
(:mod:`workbench.analysis.nulls`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from workbench.analysis.protocol import Protocol
from workbench.errors import ValidationError

logger = logging.getLogger(__name__)


class LayerScores(dict):
    """Scores of one cell by metric (a dict of str to float), with each score's chance level.

    Attributes
    ----------
    null : dict of str to ndarray of shape (P,)
        The stimulus-permutation null of each metric with a score (``Protocol.permutations``
        seeded permutations of the neural side's stimuli); empty when ``permutations`` is 0.
    null_mean, null_p95, p_value : dict of str to float
        Their summaries, as the sweep stores them in ``scores.nc``
        (:func:`workbench.metrics.permutation.null_summary`); NaN for a metric without a null.
    """

    def __init__(self, scores: dict, null: dict | None = None):
        from workbench.metrics.permutation import null_summary

        super().__init__(scores)
        self.null = dict(null or {})
        summaries = {m: null_summary(self.null[m], v) if m in self.null else (np.nan,) * 3 for m, v in scores.items()}
        self.null_mean, self.null_p95, self.p_value = ({m: s[i] for m, s in summaries.items()} for i in range(3))


def score_layer(
    X,
    Y=None,
    *,
    dataset=None,
    region: str | None = None,
    rdm=None,
    metrics: Sequence[str] | None = None,
    protocol: Protocol | None = None,
) -> dict[str, float]:
    """Scores of one layer's features against one region, under the study's protocol.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_features), or GramStats
        The layer's features (raw: the protocol z-scores them), e.g.
        ``extract_stats(model, ds.stimuli)[layer]`` or ``extract(...)[layer].values``.
    Y : array-like of shape (n_stimuli, n_neuroids), optional
        The region's responses; default: taken from ``dataset`` and ``region``.
    dataset : str or NeuralDataset, optional
        The dataset (or its name): decides whether SVCCA reduces the neural side
        (``protocol.reduces_neural(name)``) and, with ``region``, supplies ``Y`` or the RDM.
    region : str, optional
        A region of ``dataset``; default its first region (when ``Y`` and ``rdm`` are not given).
    rdm : array-like of shape (n_stimuli, n_stimuli), optional
        A published RDM instead of responses: only ``rsa`` applies.
    metrics : sequence of str, optional
        Default: the sweep's four (:data:`workbench.analysis.SWEEP_METRICS`).
    protocol : Protocol, optional
        Default ``Protocol()``, the study's choices.

    Returns
    -------
    LayerScores (a dict of str to float)
        One score per metric, in order; NaN where the metric does not apply (an RDM-only
        region, or SVCCA's canonical variables not fitting the stimuli) or the cell cannot be
        scored (the reason is logged as a warning). Its ``null``, ``null_mean``, ``null_p95``
        and ``p_value`` are the cell's chance level, equal to the sweep's for that cell.

    Examples
    --------
    >>> ds = workbench.data.load("cowley2023_v4")  # doctest: +SKIP
    >>> stats = workbench.activations.extract_stats(model, ds.stimuli)  # doctest: +SKIP
    >>> scores = score_layer(stats["features.4"], dataset=ds, region="V4")  # doctest: +SKIP
    >>> scores  # doctest: +SKIP
    {'svcca': 0.3679, 'tsvd_regression': ..., 'rsa': ..., 'cka': ...}
    >>> scores.p_value["svcca"], scores.null_mean["svcca"]  # doctest: +SKIP
    (0.0099, 0.21...)
    """
    from workbench.analysis.cells import derive, prepare, score_region
    from workbench.analysis.nulls import null_for_layer

    protocol, metrics = _checked_protocol_and_metrics(protocol, metrics)
    target, source = _target(Y, dataset, region, rdm, protocol)
    stats = _layer_stats(X)
    n_neural = target.values.shape[0]
    if stats.n_stimuli != n_neural:
        raise ValidationError(
            f"X has {stats.n_stimuli} stimuli but {source} has {n_neural}: expected one row of X per "
            f"stimulus of the region, in the dataset's stimulus order")
    target, reasons = target.ruling_out(metrics, protocol, stats.n_stimuli)
    for why in reasons.values():
        logger.warning("%s", why)
    messages: list[str] = []
    xd = derive(prepare(stats, protocol))  # shared by the scores and their nulls, as in a sweep
    counts = np.full(len(metrics), np.nan)
    values = score_region(xd, target, metrics, protocol, messages, zero_variance=counts)
    for message in messages:
        logger.warning("score_layer: %s", message)
    null = {}
    if protocol.permutations > 0 and np.isfinite(values).any():
        null = null_for_layer(xd, target, metrics, protocol, values, counts)
    return LayerScores({metric: float(value) for metric, value in zip(metrics, values)}, null)


def _checked_protocol_and_metrics(protocol: Protocol | None, metrics) -> tuple[Protocol, list[str]]:
    """The protocol (default ``Protocol()``) and the list of metric names, each checked."""
    from workbench.analysis.sweeps import SWEEP_METRICS
    from workbench.metrics import list_metrics

    protocol = Protocol() if protocol is None else protocol
    if not isinstance(protocol, Protocol):
        raise ValidationError(f"protocol must be a Protocol, found {type(protocol).__name__}")
    metrics = list(SWEEP_METRICS if metrics is None else ([metrics] if isinstance(metrics, str) else metrics))
    unknown = [m for m in metrics if m not in list_metrics()]
    if unknown or not metrics:
        raise ValidationError(f"metrics {metrics}: expected one or more of {list_metrics()}")
    return protocol, metrics


def _target(Y, dataset, region: str | None, rdm, protocol: Protocol):
    """The region's :class:`~workbench.analysis.cells.Target` and what it is called in messages
    (``"Y"``, ``"rdm"`` or ``"dataset/region"``): ``Y`` or ``rdm`` as given, else ``region``
    (default: the first) of ``dataset`` (loaded when given by name); SVCCA reduces the
    responses when the protocol says so for the dataset's name as given."""
    from workbench.analysis.cells import Target

    name = dataset if isinstance(dataset, str) or dataset is None else dataset.name
    source = "Y" if rdm is None else "rdm"
    if Y is None and rdm is None:
        if dataset is None:
            raise ValidationError("score_layer needs Y (responses), rdm, or a loaded dataset (with region)")
        if isinstance(dataset, str):
            from workbench.data import load

            dataset = load(dataset)
        region = region or dataset.regions[0]
        return Target.of_region(dataset, region, protocol), f"{dataset.name}/{region}"
    if Y is not None and rdm is not None:
        raise ValidationError("give either Y (responses) or rdm, not both")
    if rdm is not None:
        return Target("rdm", np.asarray(rdm, dtype=np.float64), False), source
    values = np.asarray(getattr(Y, "values", Y), dtype=np.float64)
    if values.ndim != 2:
        raise ValidationError(f"Y must be 2-D (stimuli x neuroids), found shape {values.shape}")
    return Target("responses", values, name is not None and protocol.reduces_neural(name)), source


def _layer_stats(X):
    """``X`` as GramStats: as given, or computed from a (stimuli x features) array or tensor."""
    from workbench.metrics import GramStats

    if isinstance(X, GramStats):
        return X
    x = np.asarray(getattr(X, "values", X.detach().cpu().numpy() if hasattr(X, "detach") else X))
    if x.ndim != 2:
        raise ValidationError(f"X must be 2-D (stimuli x features), found shape {x.shape}")
    return GramStats.from_array(x)
