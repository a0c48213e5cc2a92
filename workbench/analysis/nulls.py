"""The chance level of every score: a stimulus-permutation null per (model, layer, region, metric).

For each cell, ``Protocol.permutations`` (default 100) random permutations of the neural side's
stimulus order are scored with the cell's metric, under the same protocol as the score
itself. The permutations are seeded by ``Protocol.seed`` and depend only on the number of
stimuli, so every layer and every model of a region meets the same ones and their nulls are
comparable. Nothing is extracted again: the nulls come from the statistics the score has
already computed (:mod:`workbench.metrics.permutation`), and the nulls of all layers of a
model are evaluated together, metric by metric (one matrix product per batch of
permutations for all layers), when the model's last layer is scored.

Stored per cell (:mod:`workbench.analysis.scores`): ``null_mean``, ``null_p95`` (the 95th
percentile) and ``p_value = (1 + #{null >= score}) / (1 + P)`` (one-sided: is the score
above chance?). A cell without a score has none of them; per-time-step scores
(``score_per_step``) and bootstrap subsamples get no null.

What chance is, metric by metric (independent noise, ``n`` stimuli):

- RSA: 0 (exactly, in expectation over permutations: the ranks are centred);
- TSVD regression: about 0 (slightly negative: a leave-one-out prediction is pulled away
  from its own held-out value);
- SVCCA: clearly positive, and larger the more canonical variables per stimulus: the mean
  canonical correlation of two unrelated ``k``-dimensional sets over ``n`` stimuli;
- CKA: positive, about ``1 / sqrt(effective dims)`` of the two kernels.

:func:`chance_corrected` rescales SVCCA and CKA so that chance is 0 and identity 1; it leaves
RSA and TSVD regression as they are (their chance level is 0 already, so subtracting the
null mean would only add its sampling noise).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import xarray as xr

from workbench.errors import ValidationError
from workbench.metrics.permutation import (
    PermutedQuadraticForms,
    PermutedRegressions,
    PermutedSVCCA,
    cka_parts,
    null_summary,
    rank_matrix,
    rsa_parts,
    stimulus_permutations,
    svcca_basis,
    svcca_basis_y,
)
from workbench.metrics.regression import tsvd_loo_operator

logger = logging.getLogger(__name__)

#: Metrics whose chance level is a positive bias that :func:`chance_corrected` removes.
CHANCE_CORRECTED_METRICS = ("svcca", "cka")
_QUADRATIC = ("rsa", "cka")


def _rdm_ranks(xd, rdm_values: np.ndarray | None = None) -> np.ndarray:
    """RSA against a published RDM: centred ranks of an RDM's upper triangle, as compare_rdms ranks them."""
    from workbench.metrics import rdm
    from workbench.metrics.rsa import centred_ranks, upper_triangle

    return centred_ranks(upper_triangle(rdm(xd) if rdm_values is None else rdm_values), "rdm")


def _layer_side(xd, metric: str, kind: str):
    """(upper triangle, diagonal or None, norm) of the layer-side matrix of CKA or RSA."""
    from workbench.metrics.rsa import centred_rdm_ranks, upper_triangle

    if metric == "cka":
        kx, norm = cka_parts(xd, pairing=True)
        return upper_triangle(kx), np.diag(kx), norm
    ranks = _rdm_ranks(xd) if kind == "rdm" else centred_rdm_ranks(xd)
    return ranks, None, float(np.sqrt(np.dot(ranks, ranks)))


class RegionNull:
    """Permutation nulls of one region against every layer of one model.

    Parameters
    ----------
    target : workbench.analysis.cells.Target
        The region's responses or published RDM.
    metrics : sequence of str
    protocol : Protocol
    n_layers : int
        Layers that will be added (bounds the layers buffered for CKA and RSA).
    """

    def __init__(self, target, metrics: Sequence[str], protocol, n_layers: int):
        self.target, self.metrics, self.protocol = target, list(metrics), protocol
        n = target.values.shape[0]
        self.perms = stimulus_permutations(n, protocol.permutations, protocol.seed)
        self.n_layers = max(1, int(n_layers))
        self.nulls: dict = {}  # (layer, metric) -> (P,) null scores
        self._scales: dict = {}  # (layer, metric) -> denominator of the quadratic forms
        self._forms = None
        self._bs: dict = {}
        self._norms: dict = {}
        self._products: dict = {}  # "svcca", "tsvd_regression" -> PermutedSVCCA, PermutedRegressions
        self.yd = None
        if target.kind == "responses":
            try:  # the region's statistics, shared with its scores where the target keeps them
                self.yd = target.derived()
            except ValidationError:
                self.yd = None

    # -- the neural side, prepared once ----------------------------------------------------
    def _form(self, metric: str):
        """The quadratic forms of CKA and RSA (one object: they share the permuted indices)."""
        if metric not in self._norms:
            if self.target.kind == "rdm":
                ranks = _rdm_ranks(None, self.target.values)
                b, norm = rank_matrix(ranks, ranks.size and self.perms.shape[1]), float(np.sqrt(ranks @ ranks))
            elif metric == "rsa":
                b, norm = rsa_parts(self.yd)
            else:
                b, norm = cka_parts(self.yd)
            self._bs[metric], self._norms[metric] = b, norm
        if self._forms is None:
            wanted = [m for m in self.metrics if m in _QUADRATIC]
            if self.target.kind == "rdm":
                wanted = [m for m in wanted if m == "rsa"]
            try:
                for other in wanted:
                    if other not in self._norms:
                        self._form(other)
            except ValidationError:  # the other metric's null fails on its own turn
                pass
            self._forms = PermutedQuadraticForms(self._bs, self.perms, capacity=self.n_layers)
        elif metric not in self._forms.bs:  # a metric whose neural side failed before: alone
            raise ValidationError(f"{metric}: the neural side could not be prepared")
        return self._forms, self._norms[metric]

    # -- per layer ---------------------------------------------------------------------------
    def add(self, layer: int, xd, observed: np.ndarray, n_zero_variance: np.ndarray | None = None) -> list[str]:
        """Compute (or buffer) the nulls of one layer's cells; returns messages of nulls that failed.

        ``observed`` holds the layer's scores (one per metric); cells without a score get no
        null. An RSA cell scored without its zero-variance stimuli gets the null of those
        same stimuli (permutations of them, seeded alike).
        """
        messages = []
        for k, metric in enumerate(self.metrics):
            if not np.isfinite(observed[k]):
                continue
            try:
                excluded = (metric == "rsa" and n_zero_variance is not None
                            and np.nan_to_num(n_zero_variance[k]) > 0)
                if excluded:
                    self.nulls[(layer, metric)] = self._excluded_rsa(xd)
                else:
                    self._add_metric(layer, metric, xd)
            except ValidationError as exc:
                messages.append(f"{metric} permutation null: {exc}")
        return messages

    def _add_metric(self, layer: int, metric: str, xd) -> None:
        protocol = self.protocol
        if metric in _QUADRATIC:
            forms, norm_y = self._form(metric)
            upper, diag, norm_x = _layer_side(xd, metric, self.target.kind)
            # RSA: each pair of stimuli appears twice in the symmetric forms
            self._scales[(layer, metric)] = norm_x * norm_y * (2.0 if metric == "rsa" else 1.0)
            forms.add(layer, metric, upper, diag)
        elif metric == "svcca":
            if "svcca" not in self._products:  # the neural side's basis, once per region
                basis_y = svcca_basis_y(self.yd, protocol.svcca_n_components, self.target.reduce_y)
                self._products["svcca"] = PermutedSVCCA(basis_y, self.perms)
            self._products["svcca"].add(layer, svcca_basis(xd, xd.check_n_components(protocol.svcca_n_components)))
        elif metric == "tsvd_regression":
            k = xd.check_n_components(protocol.tsvd_n_components)
            if "tsvd_regression" not in self._products:
                targets = self.yd.require_array("tsvd_regression")
                self._products["tsvd_regression"] = PermutedRegressions(targets, self.perms)
            self._products["tsvd_regression"].add(layer, tsvd_loo_operator(xd, k, protocol.alpha))

    def _excluded_rsa(self, xd) -> np.ndarray:
        """RSA's null on the stimuli left after excluding the zero-variance ones (as the score is)."""
        from workbench.analysis.resampling import take_stimuli
        from workbench.metrics.derived import DerivedStats
        from workbench.metrics.permutation import permuted_quadratic_forms

        flat = xd.zero_variance_rows()
        if self.yd is not None:
            flat = np.union1d(flat, self.yd.zero_variance_rows())
        keep = np.setdiff1d(np.arange(xd.n_stimuli), flat)
        kept = DerivedStats.from_input(take_stimuli(xd.stats, keep), "X")
        perms = stimulus_permutations(keep.size, self.protocol.permutations, self.protocol.seed)
        taken = self.target.take(keep)
        if taken.kind == "rdm":
            ranks_a, ranks_b = _rdm_ranks(kept), _rdm_ranks(None, taken.values)
            (a, norm_a), (b, norm_b) = [(rank_matrix(r, keep.size), float(np.sqrt(r @ r))) for r in (ranks_a, ranks_b)]
        else:
            (a, norm_a), (b, norm_b) = rsa_parts(kept), rsa_parts(DerivedStats.from_input(taken.values, "Y"))
        return permuted_quadratic_forms(a, b, perms) / (2.0 * norm_a * norm_b)

    def finish(self) -> dict:
        """Every null computed, by (layer, metric): (P,) arrays."""
        for metric, nulls in self._products.items():
            nulls.flush()
            for layer in list(nulls.results):
                self.nulls[(layer, metric)] = nulls.pop(layer)
        if self._forms is not None:
            self._forms.flush()
            for layer, metric in list(self._forms.results):
                self.nulls[(layer, metric)] = self._forms.pop(layer, metric) / self._scales.pop((layer, metric))
        return self.nulls


class UnitNulls:
    """The nulls of one sweep unit (one model, every region of one dataset), filled layer by layer.

    ``add`` after each (layer, region) score; ``write`` once every layer is scored.
    """

    def __init__(self, targets: Sequence, metrics: Sequence[str], protocol, n_layers: int):
        self.metrics = list(metrics)
        self.regions = [RegionNull(t, metrics, protocol, n_layers) for t in targets]

    def add(self, layer: int, region: int, xd, observed: np.ndarray, n_zero_variance=None) -> list[str]:
        from workbench.metrics.derived import DerivedStats

        if not isinstance(xd, DerivedStats):  # the layer's statistics were invalid: no score
            return []
        return self.regions[region].add(layer, xd, observed, n_zero_variance)

    def write(self, part: xr.Dataset) -> None:
        """Fill ``null_mean``, ``null_p95`` and ``p_value`` of ``part`` (one model) from the nulls."""
        scores = part["score"].values
        for r, region in enumerate(self.regions):
            for (layer, metric), null in region.finish().items():
                k = self.metrics.index(metric)
                summary = null_summary(null, scores[0, layer, r, k])
                for name, value in zip(("null_mean", "null_p95", "p_value"), summary):
                    part[name].values[0, layer, r, k] = value


def null_for_layer(x, target, metrics: Sequence[str], protocol, observed: np.ndarray,
                   n_zero_variance=None) -> dict[str, np.ndarray]:
    """The permutation nulls of one layer against one region (e.g. for :func:`score_layer`).

    Returns a dict of metric to (P,) null scores, for the metrics with a finite observed score.
    """
    from workbench.metrics.derived import DerivedStats

    xd = DerivedStats.from_input(x, "X")
    region = RegionNull(target, metrics, protocol, 1)
    for message in region.add(0, xd, observed, n_zero_variance):
        logger.warning("%s", message)
    return {metric: null for (_, metric), null in region.finish().items()}


def chance_corrected(scores: xr.Dataset, metrics: Sequence[str] = CHANCE_CORRECTED_METRICS) -> xr.Dataset:
    """Scores with chance removed: ``(score - null_mean) / (1 - null_mean)`` for SVCCA and CKA.

    Meaningful where a metric's chance level is a positive bias and its maximum is 1: then
    0 is chance and 1 identity, whatever the number of stimuli and dimensions (SVCCA's bias
    grows with the canonical variables per stimulus, CKA's with fewer effective dimensions).
    RSA and TSVD regression are left unchanged: their chance level is 0 (RSA exactly in
    expectation), so subtracting a null mean would only add its sampling noise, and TSVD
    regression has no fixed maximum to rescale to. ``null_mean``, ``null_p95`` (also
    rescaled), ``ceiling`` and ``p_value`` stay; ``attrs["chance_corrected"]`` lists the
    metrics corrected.

    Raises
    ------
    ValidationError
        The scores have no permutation null (``Protocol.permutations`` was 0), a metric is not
        one of :data:`CHANCE_CORRECTED_METRICS`, or the scores are already corrected.
    """
    from workbench.analysis.scores import validate_scores
    from workbench.dims import METRIC

    validate_scores(scores)
    if "null_mean" not in scores:
        raise ValidationError("scores have no permutation null (null_mean); run the sweep with "
                              "Protocol.permutations > 0 (the default, 100)")
    if scores.attrs.get("chance_corrected"):
        raise ValidationError(f"scores are already chance-corrected ({scores.attrs['chance_corrected']})")
    bad = [m for m in metrics if m not in CHANCE_CORRECTED_METRICS]
    if bad:
        raise ValidationError(
            f"chance correction is meaningful only for {list(CHANCE_CORRECTED_METRICS)} (a positive "
            f"chance level, maximum 1); found {bad}: RSA's and TSVD regression's chance level is 0"
        )
    out = scores.copy(deep=True)
    present = [m for m in metrics if m in scores[METRIC].values]
    if present:
        mean = scores["null_mean"].sel({METRIC: present})
        for var in ("score", "ci_low", "ci_high", "null_p95"):
            if var in out:
                corrected = (scores[var].sel({METRIC: present}) - mean) / (1.0 - mean)
                out[var].loc[{METRIC: present}] = corrected
        out["null_mean"].loc[{METRIC: present}] = 0.0 * mean
    out.attrs["chance_corrected"] = ",".join(present)
    return out
