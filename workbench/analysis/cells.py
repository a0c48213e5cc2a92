"""One cell: a layer's statistics against one region, scored under the protocol.

The sweep (:func:`workbench.analysis.sweeps.compute_unit`), :func:`workbench.analysis.score_layer`
and :func:`workbench.analysis.model_comparison.compare_models` all score through this module, so one cell gets one
number whichever entry point computes it.

- :class:`Target`: a region's neural side (responses or a published RDM), its derived
  statistics built once for every layer scored against it.
- :func:`prepare` (the protocol's z-scoring) and :func:`derive` (the layer's DerivedStats,
  shared by its scores and their permutation nulls).
- :func:`score_region`: every metric of one cell; :func:`bootstrap_interval`: its interval
  over stimulus subsamples; :func:`inapplicable_metrics`: metrics a region rules out.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np

from workbench.analysis.protocol import Protocol
from workbench.analysis.resampling import resample, subsample_interval, take_rdm, take_stimuli
from workbench.errors import ValidationError

#: The only metric applicable to regions that have a published RDM and no responses.
RDM_METRIC = "rsa"
#: Metrics that correlate stimuli's patterns, undefined for a stimulus whose pattern has zero
#: variance: they follow ``Protocol.zero_variance_stimuli``.
ROW_CORRELATION_METRICS = ("rsa",)

@dataclasses.dataclass
class Target:
    """One region's neural side: responses (stimulus x neuroid) or a published RDM."""

    kind: str
    values: np.ndarray
    reduce_y: bool
    #: metrics that cannot apply to this region whatever the layer (see :func:`inapplicable_metrics`)
    inapplicable: frozenset = frozenset()
    #: the responses' DerivedStats (ranks, bases, kernels), built once by :meth:`derived`
    _derived: object = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def derived(self):
        """The responses' :class:`~workbench.metrics.derived.DerivedStats`, built on first use.

        Every layer scored against this region reuses it, so the neural side's RDM ranks,
        truncated SVD and centred kernels are computed once per region, not once per layer.
        Raises ValidationError (not cached) when the responses cannot be scored.
        """
        if self._derived is None:
            from workbench.metrics.derived import DerivedStats

            self._derived = DerivedStats.from_input(self.values, "Y")
        return self._derived

    @classmethod
    def of_region(cls, dataset, region: str, protocol: Protocol) -> "Target":
        """``region`` of ``dataset``: its responses, or its published RDM (float64)."""
        if dataset.kind(region) == "rdm":
            return cls("rdm", np.asarray(dataset.rdm(region).values, dtype=np.float64), False)
        values = np.asarray(dataset.responses(region).values, dtype=np.float64)
        return cls("responses", values, protocol.reduces_neural(dataset.name))

    def ruling_out(self, metrics: Sequence[str], protocol: Protocol, n_stimuli: int) -> tuple["Target", dict[str, str]]:
        """This target marked with the metrics that cannot apply to it whatever the layer, and
        the reason of each (:func:`inapplicable_metrics`; ``{}`` and the target itself when none)."""
        reasons = inapplicable_metrics(self, metrics, protocol, n_stimuli)
        if not reasons:
            return self, reasons
        return dataclasses.replace(self, inapplicable=frozenset(reasons)), reasons

    def take(self, indices: np.ndarray) -> "Target":
        taken = take_rdm(self.values, indices) if self.kind == "rdm" else self.values[indices]
        return Target(self.kind, taken, self.reduce_y, self.inapplicable)


def score_region(x, target: Target, metrics: Sequence[str], protocol: Protocol,
                 messages: list[str] | None = None, zero_variance: np.ndarray | None = None,
                 svcca_ranks: np.ndarray | None = None) -> np.ndarray:
    """Scores of model statistics ``x`` against one region, one per metric (NaN if not applicable).

    Stimuli whose pattern has zero variance (in the layer, or in the region's responses) make
    the metrics in :data:`ROW_CORRELATION_METRICS` undefined; those cells follow
    ``protocol.zero_variance_stimuli`` (:func:`_score_rows`), the other metrics use every stimulus.

    Parameters
    ----------
    x : GramStats
        Statistics of the (already z-scored) features, rows aligned with ``target``.
    target : Target
        The region's responses or published RDM.
    metrics : sequence of str
    protocol : Protocol
    messages : list of str, optional
        Receives the reason of every metric that raised a ValidationError (its score is NaN).
    zero_variance : ndarray of shape (len(metrics),), optional
        Receives, for each metric in :data:`ROW_CORRELATION_METRICS`, the number of stimuli with
        a zero-variance pattern (0 when none); other entries are left as they are.
    svcca_ranks : ndarray of shape (2,), optional
        Receives the numerical ranks of the model and neural sides that SVCCA used
        (:class:`~workbench.metrics.SvccaScore`), when it was computed.
    """
    from workbench.metrics import compare
    from workbench.metrics.derived import DerivedStats

    out = np.full(len(metrics), np.nan)

    def attempt(names, compute):
        try:
            values = compute()
        except ValidationError as exc:
            if messages is not None:
                messages.append(f"{'/'.join(names)}: {exc}")
            return
        for name in names:
            out[list(metrics).index(name)] = values[name]

    if target.kind == "rdm":
        if RDM_METRIC in metrics:
            attempt([RDM_METRIC], lambda: _score_rows(x, None, target, [RDM_METRIC], protocol,
                                                      metrics, zero_variance))
        return out
    try:
        xd, yd = DerivedStats.from_input(x, "X"), target.derived()
    except ValidationError as exc:
        if messages is not None:
            messages.append(str(exc))
        return out
    svcca = [m for m in metrics if m == "svcca" and m not in target.inapplicable]
    rows = [m for m in metrics if m in ROW_CORRELATION_METRICS]
    others = [m for m in metrics if m != "svcca" and m not in rows]
    if "rsa" in rows and len(metrics) > 1:  # RDM ranking overlaps with SVCCA's eigenpairs
        from workbench.metrics.rsa import start_rdm_ranks

        start_rdm_ranks(xd, yd)
    if svcca:
        attempt(svcca, lambda: _score_svcca(xd, yd, target, protocol, svcca_ranks))
    if rows:
        attempt(rows, lambda: _score_rows(xd, yd, target, rows, protocol, metrics, zero_variance))
    for name in others:  # one by one: a metric that raises loses only its own cell
        attempt([name], lambda: compare(xd, yd, [name], n_components=protocol.tsvd_n_components,
                                        alpha=protocol.alpha, errors="raise"))
    return out


def _score_svcca(xd, yd, target: Target, protocol: Protocol, ranks: np.ndarray | None) -> dict:
    """SVCCA under the protocol; ``ranks`` receives the (model, neural) ranks it used.

    A side reduced to its numerical rank is not warned about here: the ranks are stored
    (``svcca_rank_x``, ``svcca_rank_y``) and :func:`workbench.analysis.sweeps.compute_unit` logs one warning
    per unit.
    """
    from workbench.metrics import compare
    from workbench.metrics.svcca import RankDeficiencyWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficiencyWarning)
        scores = compare(xd, yd, ["svcca"], n_components=protocol.svcca_n_components,
                         reduce_y=target.reduce_y, errors="raise")
    if ranks is not None:
        ranks[:] = scores["svcca"].rank_x, scores["svcca"].rank_y
    return scores


def _score_rows(x, yd, target: Target, names, protocol: Protocol, metrics, zero_variance) -> dict:
    """Scores of the metrics that correlate stimuli, under ``protocol.zero_variance_stimuli``.

    The stimuli with a zero-variance pattern in the layer (or in the responses) are counted
    into ``zero_variance``. None: the metrics use every stimulus. ``"unscored"``: NaN. ``"exclude"``:
    the metrics use the other stimuli (rows and columns of the Gram statistics and of the
    target), NaN with fewer than 3 left.
    """
    from workbench.metrics import compare, compare_rdms, rdm
    from workbench.metrics.derived import MIN_STIMULI, DerivedStats

    xd = DerivedStats.from_input(x, "X")
    flat = xd.zero_variance_rows()
    if yd is not None:
        flat = np.union1d(flat, yd.zero_variance_rows())
    if zero_variance is not None:
        for name in names:
            zero_variance[list(metrics).index(name)] = flat.size

    def score(xs, ys, tv):
        if target.kind == "rdm":
            return {RDM_METRIC: compare_rdms(rdm(xs), tv)}
        return compare(xs, ys, names, errors="raise")

    if flat.size == 0:
        return score(xd, yd, target.values)
    if protocol.zero_variance_stimuli == "unscored":
        return {name: np.nan for name in names}
    keep = np.setdiff1d(np.arange(xd.n_stimuli), flat)
    if keep.size < MIN_STIMULI:
        return {name: np.nan for name in names}
    taken = target.take(keep)
    return score(take_stimuli(xd.stats, keep), taken.values, taken.values)


def bootstrap_interval(x, target: Target, metrics, protocol: Protocol, full: np.ndarray,
                       messages: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-metric interval over stimulus subsamples of the (z-scored) statistics of all stimuli.

    Where a subsample cannot be scored, the interval is NaN and the reason goes to ``messages``.
    """
    n = x.n_stimuli

    def statistic(indices):
        failures: list[str] = []
        values = score_region(take_stimuli(x, indices), target.take(indices), metrics, protocol, failures)
        messages.extend(f"bootstrap subsample of {len(indices)} stimuli: {m}" for m in failures)
        return values

    samples = resample(statistic, n, n_resamples=protocol.bootstrap, fraction=protocol.bootstrap_fraction,
                       seed=protocol.seed)
    return subsample_interval(samples, full, n_stimuli=n, fraction=protocol.bootstrap_fraction,
                              level=protocol.ci_level)


def derive(x):
    """``x`` (GramStats) wrapped as DerivedStats, whose cached algebra the null reuses; ``x``
    itself when its statistics are invalid (:func:`score_region` then reports why)."""
    from workbench.metrics.derived import DerivedStats

    try:
        return DerivedStats.from_input(x, "X")
    except ValidationError:
        return x


def prepare(stats, protocol: Protocol):
    """A layer's statistics as the protocol scores them: z-scored with ``protocol.zscore``."""
    return stats.zscored() if protocol.zscore else stats


def inapplicable_metrics(target: Target, metrics: Sequence[str], protocol: Protocol,
                         n_stimuli: int) -> dict[str, str]:
    """Metrics that cannot apply to a region whatever the layer, with the reason of each.

    SVCCA needs ``k_x + k_y <= n_stimuli - 1`` canonical variables, with ``k_x =
    protocol.svcca_n_components`` and ``k_y`` the same when the region's responses are reduced
    (``protocol.reduce_neural_for``), else their number of neuroids: 40 + 20 on 60 stimuli
    does not fit. Such a metric is marked not applicable for the region (NaN scores, reported
    once per dataset), and the model is not marked as failed.
    """
    if target.kind != "responses" or "svcca" not in metrics:
        return {}
    k = protocol.svcca_n_components
    n_neuroids = target.values.shape[1]
    ky = k if target.reduce_y and n_neuroids > k else n_neuroids
    if k + ky <= n_stimuli - 1:
        return {}
    side = (f"{ky} (the neural side reduced)" if target.reduce_y and n_neuroids > k
            else f"{ky} (one per neuroid, unreduced)")
    return {"svcca": (
        f"svcca not applicable: {k} + {side} canonical variables do not fit in the {n_stimuli - 1} "
        f"dimensions left by {n_stimuli} centred stimuli; lower --protocol svcca_n_components to "
        f"{max(n_stimuli - 1 - ky, 0)} or less, or reduce the neural side (reduce_neural_for)")}

