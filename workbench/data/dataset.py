"""The object every loader returns: a dataset's stimuli and, per region, its data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from workbench.data import reliability as rel
from workbench.data.assemblies import average_repeats, make_rdm
from workbench.data.manifest import Manifest
from workbench.data.stimuli import StimulusSet
from workbench.dims import DATASET, NEUROID, REGION, STIMULUS_ID
from workbench.errors import DataError, ValidationError

RSA_METRICS = ("rsa",)
REGRESSION_METRICS = ("regression", "tsvd_regression")
UNCEILED_METRICS = ("cka", "svcca")


@dataclass
class RegionData:
    """What a dataset holds for one region.

    Attributes
    ----------
    name, species : str
        The region's unique name in the dataset and its species.
    responses : DataArray or None
        ``(stimulus, neuroid)`` repeat-averaged responses of the kept neuroids.
    repeats : DataArray or None
        ``(stimulus, neuroid, repetition)`` per-repeat responses of the kept neuroids.
    rdm : DataArray or None
        A published ``(stimulus, stimulus_2)`` RDM (regions without responses).
    reliability : ndarray or None
        Reliability of the kept neuroids: split-half (Spearman-Brown corrected), or the
        values of the manifest's ``reliability_file`` when it gives one.
    n_recorded : int or None
        Number of neuroids before reliability filtering.
    recorded_reliability : ndarray or None
        Reliability of every recorded (non-constant) neuroid, before filtering.
    subject_rdms : ndarray or None
        ``(subject, stimulus, stimulus)`` per-subject RDMs for a leave-one-subject-out ceiling.
    reliability_source : str
        Where ``reliability`` comes from: ``"split-half"`` (estimated from the repeats) or
        ``"file"`` (the manifest's ``reliability_file``).
    """

    name: str
    species: str
    responses: xr.DataArray | None = None
    repeats: xr.DataArray | None = None
    rdm: xr.DataArray | None = None
    reliability: np.ndarray | None = None
    n_recorded: int | None = None
    recorded_reliability: np.ndarray | None = None
    subject_rdms: np.ndarray | None = None
    reliability_options: dict = field(default_factory=dict)
    reliability_source: str = "split-half"


class NeuralDataset:
    """A loaded neural dataset: stimuli in response order, and data per region.

    Attributes
    ----------
    name : str
        The dataset name (the manifest's ``name``).
    stimuli : StimulusSet
        The images, in the order of every assembly's ``stimulus`` dimension.
    regions : list of str
        Unique region names, e.g. ``["IT (monkey)", "IT (human)"]``.
    manifest : Manifest
        Where the data came from, license and citation.

    Methods
    -------
    kind(region)
        ``"responses"`` if the region has recordings, ``"rdm"`` if it has only an RDM.
    responses(region)
        ``(stimulus, neuroid)`` DataArray, repeat-averaged and reliability-filtered, with
        coordinates ``stimulus_id``, ``neuroid_id``, ``region``, ``species``, ``dataset`` and,
        when repeats exist, ``reliability``.
    repeats(region)
        ``(stimulus, neuroid, repetition)`` DataArray of the same neuroids, NaN-padded, or
        None when only averages were published.
    rdm(region)
        ``(stimulus, stimulus_2)`` correlation-distance RDM (1 - Pearson r), computed from the
        responses when the region has them.
    reliability(region)
        Split-half reliability of each kept neuroid (ndarray), or None without repeats.
    ceiling(region, metric)
        Noise ceiling of ``metric`` for the region, or None when it cannot be estimated.
    summary()
        Counts, species and reliability per region (what ``workbench data info`` prints).

    Notes
    -----
    Datasets with several sessions choose one through a loader option rather than as extra
    regions: ``load("cowley2023_v4", session="201025")`` (default ``"210325"``).
    """

    def __init__(self, manifest: Manifest, stimuli: StimulusSet, regions: list[RegionData]):
        names = [r.name for r in regions]
        if len(set(names)) != len(names):
            raise DataError(f"dataset {manifest.name}: region names must be unique, found {names}")
        for region in regions:
            for array in (region.responses, region.repeats, region.rdm):
                if array is not None and list(array[STIMULUS_ID].values) != stimuli.ids:
                    raise DataError(
                        f"dataset {manifest.name}, region {region.name}: stimulus order of the "
                        "data differs from the stimulus set"
                    )
        self.name = manifest.name
        self.manifest = manifest
        self.stimuli = stimuli
        self._regions = {r.name: r for r in regions}
        self._ceilings: dict[tuple[str, str], float | None] = {}
        self._computed_rdms: dict[str, xr.DataArray] = {}

    @property
    def regions(self) -> list[str]:
        return list(self._regions)

    def __repr__(self) -> str:
        parts = [f"{r}: {self._describe(r)}" for r in self.regions]
        head = f"NeuralDataset({self.name!r}, {len(self.stimuli)} stimuli; "
        return head + "; ".join(parts) + ")"

    def _describe(self, region: str) -> str:
        data = self._regions[region]
        if data.responses is None:
            return "RDM"
        return f"{data.responses.sizes[NEUROID]} neuroids"

    def region_data(self, region: str) -> RegionData:
        """The :class:`RegionData` of ``region`` (raises listing the valid regions)."""
        if region not in self._regions:
            raise ValidationError(
                f"region {region!r} is not in dataset {self.name}; expected one of {self.regions}"
            )
        return self._regions[region]

    def kind(self, region: str) -> str:
        return "rdm" if self.region_data(region).responses is None else "responses"

    def responses(self, region: str) -> xr.DataArray:
        data = self.region_data(region)
        if data.responses is None:
            raise ValidationError(
                f"region {region!r} of {self.name} has only a published RDM, no responses; "
                "use rdm(region)"
            )
        return data.responses

    def repeats(self, region: str) -> xr.DataArray | None:
        return self.region_data(region).repeats

    def reliability(self, region: str) -> np.ndarray | None:
        """Reliability of each kept neuroid (split-half over the repeats, or the values of the
        manifest's reliability file), or None for averaged responses without such a file."""
        return self.region_data(region).reliability

    def rdm(self, region: str) -> xr.DataArray:
        data = self.region_data(region)
        if data.rdm is not None:
            return data.rdm
        if region not in self._computed_rdms:
            from workbench.metrics import rdm as correlation_rdm

            self._computed_rdms[region] = make_rdm(
                correlation_rdm(data.responses.values), stimulus_ids=self.stimuli.ids,
                region=region, species=data.species, dataset=self.name,
                where=f"{self.name}/{region}")
        return self._computed_rdms[region]

    def ceiling(self, region: str, metric: str) -> float | None:
        """Noise ceiling of ``metric`` on ``region``.

        - ``"rsa"``: with repeats, the split-half RDM ceiling
          (:func:`workbench.metrics.ceiling.rsa_split_half_ceiling`); with per-subject RDMs,
          the upper bound of the leave-one-subject-out ceiling
          (:func:`workbench.metrics.ceiling.rsa_subject_ceiling`); else None.
        - ``"regression"`` / ``"tsvd_regression"``: the mean split-half reliability of the kept
          neuroids (:func:`workbench.metrics.ceiling.regression_ceiling`); None without repeats.
        - ``"cka"``, ``"svcca"``: None (no ceiling is defined here).
        """
        from workbench.metrics import ceiling as ceil

        known = RSA_METRICS + REGRESSION_METRICS + UNCEILED_METRICS
        if metric not in known:
            raise ValidationError(
                f"metric={metric!r} is not valid; expected one of {sorted(known)}"
            )
        key = (region, metric)
        if key not in self._ceilings:
            data = self.region_data(region)
            value = None
            if metric in RSA_METRICS:
                if data.repeats is not None:
                    options = {k: v for k, v in data.reliability_options.items()
                               if k != "n_splits"}  # the RSA ceiling keeps its own default
                    value = ceil.rsa_split_half_ceiling(data.repeats, **options)
                elif data.subject_rdms is not None:
                    value = ceil.rsa_subject_ceiling(data.subject_rdms)[1]
            elif metric in REGRESSION_METRICS and data.repeats is not None:
                value = ceil.regression_ceiling(data.repeats, **data.reliability_options)
            self._ceilings[key] = value
        return self._ceilings[key]

    def ceiling_bounds(self, region: str, metric: str) -> tuple[float | None, float | None]:
        """``(lower, upper)`` bounds of the noise ceiling of ``metric`` on ``region``.

        ``upper`` is :meth:`ceiling`. ``lower`` is known only where the data give one: for
        ``"rsa"`` on per-subject RDMs, the leave-one-subject-out lower bound of Nili et al.
        (2014) (:func:`workbench.metrics.ceiling.rsa_subject_ceiling`); else None.
        """
        from workbench.metrics import ceiling as ceil

        upper = self.ceiling(region, metric)
        lower = None
        data = self.region_data(region)
        if metric in RSA_METRICS and data.repeats is None and data.subject_rdms is not None:
            key = (region, metric, "lower")
            if key not in self._ceilings:
                self._ceilings[key] = ceil.rsa_subject_ceiling(data.subject_rdms)[0]
            lower = self._ceilings[key]
        return lower, upper

    def summary(self) -> dict:
        """Counts per region, species and reliability, for ``workbench data info``."""
        out = {"name": self.name, "n_stimuli": len(self.stimuli), "regions": {}}
        for region in self.regions:
            data = self._regions[region]
            entry = {"kind": self.kind(region), "species": data.species}
            if data.responses is not None:
                entry["n_neuroids"] = int(data.responses.sizes[NEUROID])
                entry["n_recorded"] = data.n_recorded
            if data.repeats is not None:
                counts = (~np.isnan(data.repeats.values)).sum(axis=2)
                entry["repeats_per_stimulus"] = (int(counts.min()), int(counts.max()))
            if data.reliability is not None:
                entry["reliability_source"] = data.reliability_source
                entry["median_reliability"] = float(np.nanmedian(data.reliability))
                entry["median_reliability_recorded"] = float(
                    np.nanmedian(data.recorded_reliability))
            out["regions"][region] = entry
        return out


def _keep_reliable(assembly: xr.DataArray, reliability: np.ndarray, threshold: float | None
                   ) -> tuple[xr.DataArray, np.ndarray]:
    """The neuroids of ``assembly`` (and their ``reliability``) reaching ``threshold``.

    None keeps every neuroid; the kept values become the ``reliability`` coordinate.
    """
    if threshold is not None:
        keep = rel.reliable_neuroids(reliability, threshold)
        if not keep.any():
            raise DataError(
                f"{assembly[DATASET].values[0]}/{assembly[REGION].values[0]}: no neuroid reaches "
                f"reliability {threshold} (max {np.nanmax(reliability):.3f})"
            )
        assembly, reliability = assembly.isel({NEUROID: np.flatnonzero(keep)}), reliability[keep]
    return assembly.assign_coords(reliability=(NEUROID, reliability)), reliability


def build_region(repeats: xr.DataArray, *, species: str, threshold: float | None,
                 method: str = rel.DEFAULT_METHOD, n_splits: int = rel.DEFAULT_SPLITS,
                 seed: int = rel.DEFAULT_SEED, reliability: np.ndarray | None = None
                 ) -> RegionData:
    """A response region from checked per-repeat data, filtered by split-half reliability.

    Neuroids with reliability ``< threshold`` (or NaN) are dropped when ``threshold`` is
    not None; the kept neuroids' reliability becomes the ``reliability`` coordinate.
    ``reliability`` (shape ``(neuroid,)``, e.g. read from a manifest's reliability file)
    replaces the split-half estimate when given.
    """
    options = {"method": method, "n_splits": n_splits, "seed": seed}
    source = "split-half" if reliability is None else "file"
    if reliability is None:
        reliability = rel.split_half_reliability(repeats, **options)
    recorded = np.asarray(reliability, dtype=np.float64)
    n_recorded = repeats.sizes[NEUROID]
    repeats, kept = _keep_reliable(repeats, recorded, threshold)
    return RegionData(name=str(repeats[REGION].values[0]), species=species,
                      responses=average_repeats(repeats), repeats=repeats, reliability=kept,
                      n_recorded=n_recorded, recorded_reliability=recorded,
                      reliability_options=options, reliability_source=source)


def build_averaged_region(responses: xr.DataArray, *, species: str, threshold: float | None,
                          reliability: np.ndarray | None) -> RegionData:
    """A region from pre-averaged ``(stimulus, neuroid)`` responses, with the reliability
    published beside them when there is one.

    Parameters
    ----------
    responses : DataArray, shape (stimulus, neuroid)
        Checked repeat-averaged responses (as :func:`~workbench.data.assemblies.make_assembly`
        builds them).
    species : str
    threshold : float or None
        Keep neuroids whose ``reliability`` is at least this (NaN never passes); None keeps all.
    reliability : ndarray, shape (neuroid,), or None
        Per-neuroid reliability or noise ceiling published with the data (e.g. a manifest's
        ``reliability_file``); None when there is none, and then ``threshold`` must be None.
    """
    n_recorded = responses.sizes[NEUROID]
    if reliability is None:
        if threshold is not None:
            raise ValidationError(f"{responses[DATASET].values[0]}/{responses[REGION].values[0]}: "
                                  f"reliability threshold {threshold} given for pre-averaged "
                                  "responses without a per-neuroid reliability")
        return RegionData(name=str(responses[REGION].values[0]), species=species,
                          responses=responses, n_recorded=n_recorded)
    recorded = np.asarray(reliability, dtype=np.float64)
    kept_responses, kept = _keep_reliable(responses, recorded, threshold)
    return RegionData(name=str(responses[REGION].values[0]), species=species,
                      responses=kept_responses, reliability=kept, n_recorded=n_recorded,
                      recorded_reliability=recorded, reliability_source="file")
