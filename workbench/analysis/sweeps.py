"""The sweep: every model x layer x region x metric score, as one scores Dataset.

Each (model, dataset) pair is one unit of work. :func:`sweep` hands the units to
:func:`workbench.analysis.execution.run_units` (serially or on Dask, resumable, each unit
committed atomically) with :func:`compute_unit` as the per-unit function, then merges the
units' Datasets (:func:`workbench.analysis.scores.merge_scores`) and stamps the metadata;
``output_dir`` gets the result files (:mod:`workbench.analysis.results`). Each cell (a layer
against a region) is scored by :mod:`workbench.analysis.cells`, as :func:`~workbench.analysis.score_layer`
scores it. The arguments are checked here only for what the sweep needs;
:func:`workbench.analysis.checks.check_study` checks a whole study (once, before
:func:`workbench.reports.run_study` starts).

The protocol applied in :func:`compute_unit` (see :class:`~workbench.analysis.Protocol`):

1. the model is built with ``weights`` and ``seed=protocol.seed``; spiking networks run for
   ``protocol.time_steps`` steps and their features are averaged over the steps;
2. each layer's features are reduced to their Gram statistics
   (:func:`workbench.activations.extract_stats`) and, with ``protocol.zscore``, z-scored with
   one global mean and std (:meth:`~workbench.metrics.GramStats.zscored`);
3. regions with responses get every metric: SVCCA with ``svcca_n_components`` (the neural
   side reduced only for datasets in ``protocol.reduce_neural_for``), the other metrics with
   ``tsvd_n_components`` and ``alpha``; regions with only a published RDM get ``rsa`` (the
   Spearman correlation of the model's correlation-distance RDM with the published one) and
   every other metric is marked not applicable (NaN, never 0);
4. with ``protocol.bootstrap > 0``, each score gets a confidence interval over stimulus
   subsamples (:mod:`workbench.analysis.resampling`): rows and columns of the z-scored Gram
   statistics of all stimuli are taken, so nothing is extracted or z-scored again;
5. with ``protocol.time_resolved``, spiking networks are also scored at each time step
   (``score_per_step``, without intervals); the per-step statistics come from the same
   forward pass as the averaged ones (``extract_stats(per_step=True)``).

Stimuli whose pattern has zero variance in a layer (e.g. a spiking layer that emits no spike
for them) leave RSA undefined: by ``protocol.zero_variance_stimuli`` the cell is left NaN
(``"unscored"``, the default) or scored on the other stimuli (``"exclude"``), and the number of
such stimuli goes into ``n_zero_variance`` either way (see
:func:`workbench.analysis.scores.unscored_cells`); the other metrics use every stimulus.
Any other layer that a metric cannot score (e.g. constant features) gets NaN there, and the reason
goes into the model's ``error`` (cells without a score); what leaves a score with a caveat goes
into its ``warning``: cells with zero-variance stimuli (either policy), bootstrap intervals or
permutation nulls that could not be computed, SVCCA sides reduced to their numerical rank, and
per-step scores that could not be computed (e.g. a layer that is silent at the first time step).
A unit that raises (the model cannot be built, its weights are missing, extraction fails) leaves
its model's scores NaN on that dataset with the error message; the other units go on, and
rerunning the sweep recomputes only the failed units. When every unit raises, the sweep raises
instead and writes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from workbench import __version__
from workbench.analysis.cells import RDM_METRIC, Target, bootstrap_interval, derive, prepare
from workbench.analysis.cells import score_region
from workbench.analysis.checks import check_layers
from workbench.analysis.execution import Unit, UnitsFailedError, fingerprint, largest_first, run_units
from workbench.analysis.protocol import Protocol
from workbench.analysis.results import save_scores
from workbench.analysis.scores import merge_scores, new_scores, region_label, stamp
from workbench.errors import ValidationError, WorkbenchError
from workbench.storage import sha256_file

logger = logging.getLogger(__name__)

#: The metrics a sweep computes unless told otherwise (the study's four).
SWEEP_METRICS = ("svcca", "tsvd_regression", "rsa", "cka")
_MAX_MESSAGES = 3


#: What a model whose factory loads its own weights holds, before it is built (then its
#: factory's label or ``"custom (sha256 <12 hex>)"``, :attr:`workbench.models.ModelWrapper.weights`).
OWN_WEIGHTS = "custom (loaded by its factory)"


def own_weights_label(model: str) -> str | None:
    """What ``model`` holds when given no weights, where that is not a random initialisation:
    a training run directory's own (``"run:<path>"``, as :func:`workbench.models.create` labels
    them), :data:`OWN_WEIGHTS` for a factory that loads its own (a user's
    ``package.module:factory`` or entry point); else None."""
    from workbench.training.model_card import is_run_directory

    if is_run_directory(model):
        return f"run:{Path(model).resolve()}"
    return OWN_WEIGHTS if _loads_own_weights(model) else None


def weights_label(weights, seed: int, model: str | None = None) -> str:
    """The description :func:`workbench.models.create` records for ``weights`` (for ``model``,
    when given: a factory that loads its own weights is not randomly initialised)."""
    if weights is None:
        return (model is not None and own_weights_label(model)) or f"random(seed={int(seed)})"
    if isinstance(weights, str) and weights == "imagenet":
        return weights
    return str(Path(weights).resolve())


def weights_identity(weights, seed: int) -> dict:
    """What identifies a model's weights in a unit's settings (a checkpoint also by content)."""
    label = weights_label(weights, seed)
    identity = {"weights": label}
    if weights is not None and label != "imagenet" and Path(label).is_file():
        identity["sha256"] = sha256_file(label)
    return identity


def run_identity(model: str) -> dict:
    """For a training run named as a model: its weights' sha256 (so retraining is never stale)."""
    from workbench.models.runs import run_weights_sha256
    from workbench.training.model_card import is_run_directory

    if not is_run_directory(model):
        return {}
    return {"path": str(Path(model).resolve()), "weights_sha256": run_weights_sha256(model)}


def network_identity(model: str, weights, seed: int) -> dict:
    """For a model whose factory loads its own weights (``package.module:factory``, an entry
    point): the sha256 of the state dict its network holds when built now, so that results of
    an overwritten checkpoint are never taken for this one's. Empty for other models (their
    weights are identified by :func:`weights_identity` and :func:`run_identity`).

    A network that cannot be built here gets ``None`` (its unit fails with its own message).
    """
    if not _loads_own_weights(model):
        return {}
    from workbench.models import create

    try:
        return {"state_dict_sha256": create(model, weights, seed=seed).weights_id}
    except Exception:  # the unit builds it again and reports why it cannot
        return {"state_dict_sha256": None}


def _loads_own_weights(model: str) -> bool:
    from workbench.models.registry import model_entry
    from workbench.training.model_card import is_run_directory

    if is_run_directory(model):
        return False
    try:
        return model_entry(model).own_weights
    except ValidationError:
        return False


def data_version(dataset) -> str:
    """sha256 over the pinned checksums of a dataset's files, or over its content when it has none."""
    files = sorted((f.path, f.sha256 or "") for f in dataset.manifest.files)
    if files:
        return hashlib.sha256(repr(files).encode()).hexdigest()
    return dataset_identity(dataset)["content"]


def dataset_identity(dataset) -> dict:
    """What identifies a dataset's data in a unit's settings: its name, or a content hash."""
    if isinstance(dataset, str):
        return {"name": dataset}
    digest = hashlib.sha256(dataset.stimuli.fingerprint().encode())
    for region in dataset.regions:
        values = dataset.responses(region).values if dataset.kind(region) == "responses" else dataset.rdm(region).values
        digest.update(region.encode() + b"\0" + np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return {"name": dataset.name, "content": digest.hexdigest()}


@dataclasses.dataclass(frozen=True)
class SweepSettings:
    """Everything :func:`compute_unit` needs besides the unit (picklable, for Dask workers).

    Attributes
    ----------
    protocol : Protocol
    metrics : tuple of str
    weights : tuple of (model, weights) pairs
        Weights passed to :func:`workbench.models.create` (None: random).
    datasets : tuple of NeuralDataset
        Datasets given as objects rather than names (looked up by name).
    data_options : tuple of (dataset, dict) pairs
        Extra options of :func:`workbench.data.load`, per dataset name.
    activation_cache : bool or path, default: True
        The ``cache`` argument of :func:`workbench.activations.extract_stats`.
    device : str, default: "cpu"
        Where the networks run (``"cuda"`` for a GPU).
    layers : tuple of str, default: ()
        The analysis layers to score in every model; empty: all declared layers.
    """

    protocol: Protocol
    metrics: tuple
    weights: tuple = ()
    datasets: tuple = ()
    data_options: tuple = ()
    activation_cache: object = True
    device: str = "cpu"
    layers: tuple = ()

    def weights_for(self, model: str):
        return dict(self.weights).get(model)

    def load_dataset(self, name: str):
        """The dataset named ``name``: a given object, or :func:`workbench.data.load`."""
        for dataset in self.datasets:
            if dataset.name == name:
                return dataset
        from workbench.data import load

        options = dict(dict(self.data_options).get(name, {}))
        threshold = self.protocol.reliability_threshold.get(name)
        if threshold is not None:
            options["reliability_threshold"] = threshold
        return load(name, **options)


def _summarise(messages: list[str]) -> str:
    unique = list(dict.fromkeys(messages))
    text = "; ".join(unique[:_MAX_MESSAGES])
    if len(unique) > _MAX_MESSAGES:
        text += f"; and {len(unique) - _MAX_MESSAGES} more"
    return text


def compute_unit(unit: Unit, settings: SweepSettings) -> xr.Dataset:
    """Scores of one model on every region of one dataset (the sweep's per-unit function).

    Returns
    -------
    Dataset
        A scores Dataset with one model and the dataset's regions (see
        :mod:`workbench.analysis.scores`).
    """
    protocol, metrics = settings.protocol, list(settings.metrics)
    dataset = settings.load_dataset(unit.dataset)
    targets, notes = _region_targets(dataset, metrics, protocol)
    model, depths = _unit_model(unit, settings)
    logger.info("unit %s: %s on %s (%d stimuli)", unit.unit_id, model.name, dataset.name, len(dataset.stimuli))
    stats, step_stats = _unit_stats(model, dataset, settings)
    part = _empty_part(model, dataset, targets, metrics, protocol, per_step=step_stats is not None)
    scorer = _UnitScorer(part, dataset.regions, targets, metrics, protocol)
    for i, layer in enumerate(tqdm(model.layers, desc=f"{model.name} on {dataset.name}", leave=False, disable=None)):
        if scorer.score_layer(i, layer, stats[layer]) and step_stats is not None:
            scorer.score_steps(i, layer, _steps(step_stats[layer], protocol.time_steps, layer))
    scorer.finish(unit)
    if depths is not None:  # chosen layers: depth in the whole model, NaN for an undeclared one
        part["relative_depth"].values[0, :len(model.layers)] = depths
    part.attrs["notes"] = json.dumps(notes)
    return part


def _region_targets(dataset, metrics: Sequence[str], protocol: Protocol) -> tuple[list[Target], list[str]]:
    """Each region's :class:`~workbench.analysis.cells.Target`, marked with the metrics it rules
    out, and one note per such metric (``"<dataset>/<region>: why"``)."""
    targets, notes = [], []
    for region in dataset.regions:
        target = Target.of_region(dataset, region, protocol)
        target, reasons = target.ruling_out(metrics, protocol, len(dataset.stimuli))
        notes += [f"{region_label(dataset.name, region)}: {why}" for why in reasons.values()]
        targets.append(target)
    return targets, notes


def _unit_model(unit: Unit, settings: SweepSettings):
    """The unit's model, scoring only ``settings.layers`` when given, and then the relative
    depth of each of its layers (:func:`_with_layers`; None: all declared layers, whose depths
    are :func:`~workbench.analysis.scores.relative_depths`)."""
    from workbench.models import create

    model = create(unit.model, settings.weights_for(unit.model), seed=settings.protocol.seed)
    if not settings.layers:
        return model, None
    return _with_layers(model, settings.layers)


def _unit_stats(model, dataset, settings: SweepSettings) -> tuple:
    """Every layer's Gram statistics on the dataset's stimuli, and with ``protocol.time_resolved``
    (spiking models) the per-step ones from the same forward pass (else None)."""
    from workbench.activations import extract_stats

    protocol = settings.protocol
    time_steps = protocol.time_steps if model.is_spiking else None
    per_step = protocol.time_resolved and model.is_spiking
    stats = extract_stats(model, dataset.stimuli, batch_size=protocol.batch_size, time_steps=time_steps,
                          time_reduce=protocol.time_reduce, cache=settings.activation_cache,
                          device=settings.device, per_step=per_step)
    return stats if per_step else (stats, None)


def _empty_part(model, dataset, targets: list[Target], metrics: list[str], protocol: Protocol,
                per_step: bool) -> xr.Dataset:
    """The unit's all-NaN scores, with each region's applicable metrics and noise ceilings."""
    regions = dataset.regions
    time_steps = protocol.time_steps if model.is_spiking else None
    stimulus_set = dataset.stimuli.fingerprint()
    part = new_scores(
        model=model.name,
        family=model.family,
        weights=model.weights,
        layer_names=list(model.layers),
        regions=[region_label(dataset.name, r) for r in regions],
        datasets=[dataset.name] * len(regions),
        species=[dataset.region_data(r).species for r in regions],
        metrics=metrics,
        stimulus_sets=[stimulus_set] * len(regions),
        data_versions=[data_version(dataset)] * len(regions),
        time_steps=time_steps or 0,
        n_time_steps=time_steps if per_step else None,
        with_ci=protocol.bootstrap > 0,
        with_zero_variance=True,
        with_svcca_ranks="svcca" in metrics,
        with_null=protocol.permutations > 0,
    )
    for r, (region, target) in enumerate(zip(regions, targets)):
        for k, metric in enumerate(metrics):
            part["applicable"].values[r, k] = ((target.kind == "responses" or metric == RDM_METRIC)
                                               and metric not in target.inapplicable)
            part["ceiling"].values[r, k] = _ceiling(dataset, region, metric)
    part["ceiling_low"] = (("region", "metric"), _ceiling_lows(dataset, regions, metrics))
    return part


class _UnitScorer:
    """Fills one unit's scores layer by layer, and collects the model's ``error`` (cells left
    without a score) and ``warning`` (cells with a score and a caveat), and the same per cell
    (``cell_error``, ``cell_warning``: each message on the cells it concerns)."""

    def __init__(self, part: xr.Dataset, regions, targets: list[Target], metrics: list[str], protocol: Protocol):
        self.part, self.regions, self.targets = part, list(regions), targets
        self.metrics, self.protocol = metrics, protocol
        self.nulls = None
        if protocol.permutations > 0:
            from workbench.analysis.nulls import UnitNulls

            self.nulls = UnitNulls(targets, metrics, protocol, part.sizes["layer"])
        self.messages: list[str] = []
        self.cautions: list[str] = []
        self.cell_notes = {"cell_error": CellNotes(metrics), "cell_warning": CellNotes(metrics)}

    def score_layer(self, i: int, layer: str, stats) -> bool:
        """Score layer ``i`` against every region; False when its statistics cannot be scored."""
        try:
            x = prepare(stats, self.protocol)
        except ValidationError as exc:
            self.messages.append(f"layer {layer!r}: {exc}")
            for r in range(len(self.regions)):
                self.cell_notes["cell_error"].add(i, r, str(exc))
            return False
        xd = derive(x)  # shared by the regions' scores and their permutation nulls
        for r, target in enumerate(self.targets):
            self._score_cell(i, r, layer, x, xd, target)
        return True

    def _score_cell(self, i: int, r: int, layer: str, x, xd, target: Target) -> None:
        """One (layer, region): its scores, null, SVCCA ranks and bootstrap interval."""
        part, protocol = self.part, self.protocol
        messages: list[str] = []
        cautions: list[str] = []
        counts = part["n_zero_variance"].values[0, i, r]  # a view: score_region fills it
        ranks = np.full(2, np.nan)
        full = score_region(xd, target, self.metrics, protocol, messages, zero_variance=counts, svcca_ranks=ranks)
        part["score"].values[0, i, r] = full
        if self.nulls is not None:
            cautions += self.nulls.add(i, r, xd, full, counts)
        if "svcca_rank_x" in part:
            part["svcca_rank_x"].values[0, i, r], part["svcca_rank_y"].values[0, i, r] = ranks
        if protocol.bootstrap > 0:
            low, high = bootstrap_interval(x, target, self.metrics, protocol, full, cautions)
            part["ci_low"].values[0, i, r], part["ci_high"].values[0, i, r] = low, high
        self.messages += [f"layer {layer!r}, {self.regions[r]}: {m}" for m in messages]
        self.cautions += [f"layer {layer!r}, {self.regions[r]}: {m}" for m in cautions]
        for store, notes in (("cell_error", messages), ("cell_warning", cautions)):
            for message in notes:
                self.cell_notes[store].add(i, r, message)

    def score_steps(self, i: int, layer: str, steps: list) -> None:
        """Layer ``i``'s per-step scores (``score_per_step``), without intervals or nulls."""
        for t, step in enumerate(steps):
            try:
                xt = prepare(step, self.protocol)
            except ValidationError as exc:  # e.g. a layer that is silent at the first steps
                self.cautions.append(f"layer {layer!r}, time step {t} (per-step score): {exc}")
                for r in range(len(self.regions)):
                    self.cell_notes["cell_warning"].add(i, r, f"time step {t} (per-step score): {exc}")
                continue
            for r, target in enumerate(self.targets):
                failures: list[str] = []
                self.part["score_per_step"].values[0, i, r, :, t] = score_region(
                    xt, target, self.metrics, self.protocol, failures)
                self.cautions += [f"layer {layer!r}, {self.regions[r]}, time step {t} (per-step score): {m}"
                                  for m in failures]
                for message in failures:
                    self.cell_notes["cell_warning"].add(i, r, f"time step {t} (per-step score): {message}")

    def finish(self, unit: Unit) -> None:
        """Write the nulls' summaries, and the model's ``error`` and ``warning``."""
        part = self.part
        if self.nulls is not None:
            self.nulls.write(part)
        if self.messages:
            logger.warning("unit %s: %d cell(s) could not be scored: %s", unit.unit_id, len(self.messages),
                           self.messages[0])
        if "svcca_rank_x" in part:
            self.cautions += _warn_reduced_ranks(unit, part, self.targets, self.protocol)
        self.cautions += _zero_variance_cautions(part, self.protocol)
        if self.cautions:
            logger.info("unit %s: scored, with %d caveat(s): %s", unit.unit_id, len(self.cautions), self.cautions[0])
        part["error"].values[0] = _summarise(self.messages)
        part["warning"].values[0] = _summarise(self.cautions)
        for name, notes in self.cell_notes.items():
            part[name] = (part["score"].dims, notes.array(part["score"].shape))


class CellNotes:
    """Messages per (layer, region, metric) cell of one unit, for ``cell_error``/``cell_warning``.

    A message concerns the metrics that its first ``"name: "`` (or ``"a/b: "``, ``"name
    permutation null: "``) prefix names, e.g. ``"svcca: ..."`` or ``"bootstrap subsample of 80
    stimuli: rsa: ..."``; a message naming no metric concerns every metric of the cell.
    """

    def __init__(self, metrics: Sequence[str]):
        self.metrics = list(metrics)
        self.notes: dict[tuple[int, int, int], list[str]] = {}

    def metrics_named(self, message: str) -> list[int]:
        """Positions of the metrics ``message`` is about (all of them when it names none)."""
        for segment in message.split(": ")[:-1]:
            names = segment.split(" ", 1)[0].split("/")
            if all(name in self.metrics for name in names):
                return [self.metrics.index(name) for name in names]
        return list(range(len(self.metrics)))

    def add(self, layer: int, region: int, message: str) -> None:
        """Note ``message`` on the cells of (``layer``, ``region``) it concerns."""
        for k in self.metrics_named(message):
            self.notes.setdefault((layer, region, k), []).append(message)

    def array(self, shape: tuple[int, int, int, int]) -> np.ndarray:
        """The notes as a ``(1, layer, region, metric)`` array of strings (``""``: none)."""
        out = np.full(shape, "", dtype=object)
        for (i, r, k), messages in self.notes.items():
            out[0, i, r, k] = _summarise(messages)
        return out


def _with_layers(model, layers: Sequence[str]) -> tuple:
    """A wrapper sharing ``model``'s network that scores only ``layers``, and their depths.

    The declared analysis layers among ``layers`` come first, in the model's order, each
    with its relative depth in the whole model (``i / (n_declared - 1)``); the other specs
    follow in the order given, with relative depth NaN (they have no place in the model's
    declared order).

    Returns
    -------
    (ModelWrapper, list of float)

    Raises
    ------
    ValidationError
        A spec is malformed or names no submodule (:meth:`ModelWrapper.check_layers`).
    """
    layers = model.check_layers(layers)
    declared = list(model.layers)
    chosen = [layer for layer in declared if layer in layers] + [layer for layer in layers if layer not in declared]
    depths = [declared.index(layer) / max(len(declared) - 1, 1) if layer in declared else np.nan for layer in chosen]
    clone = object.__new__(type(model))
    clone.__dict__.update(model.__dict__)
    clone.layers = tuple(chosen)
    return clone, depths


def _warn_reduced_ranks(unit: Unit, part: xr.Dataset, targets: list, protocol: Protocol) -> list[str]:
    """One warning per unit where SVCCA reduced a rank-deficient side to its numerical rank.

    Returns the caveat for the model's ``warning`` (empty when no side was reduced).
    """
    k = protocol.svcca_n_components
    lines = []
    for r, target in enumerate(targets):
        if target.kind != "responses":
            continue
        n_columns = target.values.shape[1]
        columns_y = k if target.reduce_y and n_columns > k else n_columns
        for i in range(part.sizes["layer"]):
            rank_x, rank_y = part["svcca_rank_x"].values[0, i, r], part["svcca_rank_y"].values[0, i, r]
            if rank_x < k or rank_y < columns_y:
                lines.append(f"layer {part['layer_name'].values[0, i]!r}, region "
                             f"{part['region'].values[r]!r}: model side rank {int(rank_x)} of {k}, "
                             f"neural side rank {int(rank_y)} of {columns_y}")
    if lines:
        logger.warning("unit %s: SVCCA reduced a rank-deficient side (after centring) to its numerical "
                       "rank in %d cell(s), e.g. %s; the ranks used are in svcca_rank_x / svcca_rank_y",
                       unit.unit_id, len(lines), lines[0])
        return [f"svcca: a rank-deficient side reduced to its numerical rank in {len(lines)} cell(s), "
                f"e.g. {lines[0]} (svcca_rank_x / svcca_rank_y)"]
    return []


def _zero_variance_cautions(part: xr.Dataset, protocol: Protocol) -> list[str]:
    """The model's caveat for cells with zero-variance stimuli (``n_zero_variance > 0``).

    Under ``zero_variance_stimuli="unscored"`` such cells are left NaN by the protocol's choice
    (not a failure: :func:`workbench.analysis.scores.unscored_cells` lists them); under
    ``"exclude"`` they are scored on fewer stimuli.
    """
    if "n_zero_variance" not in part:
        return []
    counts = part["n_zero_variance"].values[0]  # (layer, region, metric)
    cells = np.argwhere(np.nan_to_num(counts) > 0)
    if not len(cells):
        return []
    i, r, k = cells[0]
    example = (f"layer {part['layer_name'].values[0, i]!r}, {part['region'].values[r]}: "
               f"{int(counts[i, r, k])} stimuli")
    metric_names = sorted({str(part["metric"].values[k]) for _, _, k in cells})
    if protocol.zero_variance_stimuli == "exclude":
        what = "scored without the stimuli whose pattern has zero variance"
    else:
        what = ("left unscored: some stimuli have a zero-variance pattern (protocol "
                f"zero_variance_stimuli={protocol.zero_variance_stimuli!r})")
    return [f"{'/'.join(metric_names)}: {len(cells)} cell(s) {what}, e.g. {example}"]


def _steps(stats, time_steps: int, layer: str) -> list:
    """Per-step statistics of one layer, in time order (from a list, tuple or dict by step)."""
    steps = [stats[t] for t in sorted(stats)] if isinstance(stats, Mapping) else list(stats)
    if len(steps) != time_steps:
        raise ValidationError(
            f"layer {layer!r}: extract_stats(time_reduce=None) gave {len(steps)} time step(s); "
            f"expected {time_steps}"
        )
    return steps


def _ceiling(dataset, region: str, metric: str) -> float:
    try:
        value = dataset.ceiling(region, metric)
    except ValidationError:  # a metric the dataset defines no ceiling for
        return np.nan
    return np.nan if value is None else float(value)


def _ceiling_lows(dataset, regions: Sequence[str], metrics: Sequence[str]) -> np.ndarray:
    """Lower bounds of the noise ceilings, (region, metric); NaN where the data give none."""
    out = np.full((len(regions), len(metrics)), np.nan)
    bounds = getattr(dataset, "ceiling_bounds", None)
    for r, region in enumerate(regions):
        for k, metric in enumerate(metrics):
            try:
                lower = bounds(region, metric)[0] if bounds is not None else None
            except ValidationError:  # a metric the dataset defines no ceiling for
                lower = None
            out[r, k] = np.nan if lower is None else float(lower)
    return out


def _failed_part(unit: Unit, settings: SweepSettings, message: str) -> xr.Dataset:
    """Scores of a unit that raised: no layers, no regions, only the model's error."""
    from workbench.models import model_family

    try:
        family = model_family(unit.model)
    except ValidationError:
        family = ""
    protocol = settings.protocol
    return new_scores(
        model=unit.model,
        family=family,
        weights=weights_label(settings.weights_for(unit.model), protocol.seed, unit.model),
        layer_names=[],
        regions=[],
        datasets=[],
        species=[],
        metrics=list(settings.metrics),
        time_steps=protocol.time_steps if family == "snn" else 0,
        error=f"{unit.dataset}: {message}",
    )


def _last_line(text: str) -> str:
    """The final exception of a traceback text, on one line (its whole message, not its tail)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
    if frames:
        rest = lines[frames[-1] + 1:]
        while rest and rest[0].startswith("    "):  # the frame's source line and ^^^ markers
            rest = rest[1:]
        if rest:
            return " ".join(line.strip() for line in rest)
    return lines[-1].strip()


def failed_units(scores: xr.Dataset) -> list[dict]:
    """The units of a sweep that raised: ``[{"model", "dataset", "error"}]`` (empty when none).

    Read from ``scores.attrs["failed_units"]``, which :func:`sweep` writes (and ``scores.nc``
    keeps). Cells that a metric could not score are not failures (see ``scores["error"]``).
    """
    return json.loads(scores.attrs.get("failed_units", "[]"))


def _sweep_units(models: list[str], datasets: Sequence, settings: SweepSettings) -> list[Unit]:
    """One unit per (model, dataset), in that order, identified by everything its scores depend
    on: the settings, the dataset's files and the network's weights."""
    dataset_names = [d if isinstance(d, str) else d.name for d in datasets]
    identities = {name: dataset_identity(d) for name, d in zip(dataset_names, datasets)}
    networks = {model: network_identity(model, settings.weights_for(model), settings.protocol.seed)
                for model in models}
    return [Unit(model, name, fingerprint(_unit_settings(settings, model, identities[name], networks[model])))
            for model in models for name in dataset_names]


def sweep(models: Sequence[str], datasets: Sequence, metrics: Sequence[str] = SWEEP_METRICS, *,
          protocol: Protocol | None = None, weights=None, data_options: Mapping[str, Mapping] | None = None,
          store_dir: str | os.PathLike | None = None, executor: str = "serial", force: bool = False,
          output_dir: str | os.PathLike | None = None, activation_cache=True, device: str = "cpu",
          progress: bool = True, layers: Sequence[str] | None = None) -> xr.Dataset:
    """Score every layer of every model against every region of every dataset.

    Parameters
    ----------
    models : sequence of str
        Model names (:func:`workbench.models.list_models`).
    datasets : sequence of str or NeuralDataset
        Dataset names (:func:`workbench.data.list_datasets`) or loaded datasets.
    metrics : sequence of str, default: ("svcca", "tsvd_regression", "rsa", "cka")
        Metric names (:func:`workbench.metrics.list_metrics`).
    protocol : Protocol, optional
        The analysis choices; default ``Protocol()`` (the study's).
    weights : None, str, path or mapping of model name to those, default: None
        Weights of every model (None: random init seeded by ``protocol.seed``; "imagenet";
        a checkpoint path), or per model name.
    data_options : mapping, optional
        Extra :func:`workbench.data.load` options per dataset name, e.g.
        ``{"cowley2023_v4": {"session": "201025"}}``.
    store_dir : path, optional
        Where finished units are committed, so an interrupted sweep resumes; default a
        temporary directory removed afterwards.
    executor : str, default: "serial"
        ``"serial"``, ``"local:N"`` or ``"tcp://HOST:PORT"`` (see
        :func:`workbench.analysis.execution.run_units`).
    force : bool, default: False
        Recompute units already committed in ``store_dir``.
    output_dir : path, optional
        When given, ``scores.nc`` and ``scores.csv`` are written there.
    activation_cache : bool or path, default: True
        Where layer statistics are cached (:func:`~workbench.activations.extract_stats`); False: nowhere.
    device : str, default: "cpu"
        Where the networks run, e.g. ``"cuda"``; not part of a unit's identity (rounding only).
    progress : bool, default: True
        Show a progress bar over units (largest units run first).
    layers : sequence of str, optional
        Score only these layer specs (:mod:`workbench.models.layer_spec`), checked before any
        unit starts: declared layers first, with their depth in the model; others after them
        with NaN depth (depth figures leave them out). Default: every declared layer.

    Returns
    -------
    Dataset
        The scores (see :mod:`workbench.analysis.scores`), with ``attrs`` ``protocol``,
        ``versions``, ``seed``, ``created``, ``failed_units`` (JSON list of the units that
        raised, see :func:`failed_units`) and ``notes`` (JSON list of metrics that could not
        apply to a region, each reported once).

    Raises
    ------
    WorkbenchError
        Every unit raised: nothing is written (no result file, and ``store_dir`` is removed
        when this call created it); the message names each unit's error.
    """
    models = list(models)
    settings = _sweep_settings(models, datasets, list(metrics), protocol, weights, data_options,
                               activation_cache, device, layers)
    units = _sweep_units(models, datasets, settings)
    costs = unit_costs(models, datasets, settings.protocol.time_steps)
    schedule = largest_first(units, lambda unit: costs[unit.model, unit.dataset])  # results keep the units' order
    compute = functools.partial(compute_unit, settings=settings)
    store_existed = store_dir is not None and Path(store_dir).exists()
    with _unit_store(store_dir) as store:
        failures: dict[str, str] = {}
        try:
            results = run_units(schedule, compute, store, executor=executor, force=force, progress=progress)
        except UnitsFailedError as exc:
            results, failures = exc.results, exc.failures
        if not results:  # nothing to write: no result file, and no store this call made
            _remove_new_store(store_dir, store_existed)
            raise WorkbenchError(_nothing_scored(units, failures))
    scores = _merged_units(units, results, failures, settings)
    if output_dir is not None:
        save_scores(scores, output_dir)
    return scores


def unit_costs(models: Sequence[str], datasets: Sequence, time_steps: int = 4) -> dict[tuple[str, str], float]:
    """An estimate of each (model, dataset) unit's cost, to schedule the largest first.

    The model's activation size per stimulus (the sum over the study's layers of their output
    sizes, from :func:`workbench.models.study_layers`; times ``time_steps`` for a spiking
    network) times the dataset's stimulus count: the forward pass and the Gram statistics both
    grow with it. No network is built. Only the order matters.

    Returns
    -------
    dict
        ``{(model, dataset name): cost}``; a model that is not one of the reference study's
        networks costs 0 (scheduled after them, in the order given).
    """
    sizes = {model: _model_size(model, time_steps) for model in models}
    counts = {(d if isinstance(d, str) else d.name): _stimulus_count(d) for d in datasets}
    return {(model, name): float(sizes[model] * count) for model in models for name, count in counts.items()}


def _model_size(model: str, time_steps: int) -> int:
    """Features per stimulus summed over a study network's layers (x T for an SNN); 0 for another model."""
    from workbench.models import list_models, model_study_name, study_family, study_layers

    study = model_study_name(model) if model in list_models() else None
    if study is None:
        return 0
    size = sum(int(np.prod(layer.shape)) for layer in study_layers(study))
    return size * (time_steps if study_family(study) == "snn" else 1)


def _stimulus_count(dataset) -> int:
    """Stimuli of a loaded dataset, or as its manifest declares them (its session's, where per session)."""
    if not isinstance(dataset, str):
        return len(dataset.stimuli)
    from workbench.data import read_manifest

    manifest = read_manifest(dataset)
    count = manifest.stimuli.get("count")
    if isinstance(count, dict):
        count = count.get(str(manifest.options.get("session")), max(count.values(), default=1))
    return int(count) if isinstance(count, (int, float)) else 1


def _sweep_settings(models: list, datasets: Sequence, metrics: list, protocol, weights, data_options,
                    activation_cache, device, layers) -> SweepSettings:
    """The checked settings of :func:`sweep` (its arguments of the same names)."""
    protocol = Protocol() if protocol is None else protocol
    _check_sweep(models, datasets, metrics, protocol)
    per_model = dict(weights) if isinstance(weights, Mapping) else {m: weights for m in models}
    return SweepSettings(
        protocol=protocol, metrics=tuple(metrics), weights=tuple((m, per_model.get(m)) for m in models),
        datasets=tuple(d for d in datasets if not isinstance(d, str)),
        data_options=tuple((k, dict(v)) for k, v in (data_options or {}).items()),
        activation_cache=str(activation_cache) if isinstance(activation_cache, os.PathLike) else activation_cache,
        device=str(device), layers=check_layers(layers, models) if layers else (),
    )


def _check_sweep(models: list, datasets: Sequence, metrics: list, protocol) -> None:
    """Raise unless the sweep's arguments are well-formed (before any unit starts)."""
    if not isinstance(protocol, Protocol):
        raise ValidationError(f"protocol must be a Protocol, found {type(protocol).__name__}")
    for what, values in (("models", models), ("datasets", list(datasets)), ("metrics", metrics)):
        if not values:
            raise ValidationError(f"{what} is empty; expected at least one")
        names = [v if isinstance(v, str) else getattr(v, "name", v) for v in values]
        if len(set(names)) != len(names):
            raise ValidationError(f"{what} has duplicates: {names}")
    from workbench.metrics import list_metrics

    unknown = [m for m in metrics if m not in list_metrics()]
    if unknown:
        raise ValidationError(f"metrics {unknown} are unknown; expected some of {list_metrics()}")
    from workbench.models import check_model_names

    check_model_names(models)  # every name, before any unit starts


def _nothing_scored(units: list[Unit], failures: dict) -> str:
    """The one line that says no unit produced a score, with each unit's error."""
    errors = "; ".join(f"{unit.model}: {unit.dataset}: {_last_line(failures.get(unit.unit_id, 'unit did not finish'))}"
                       for unit in units)
    return f"no model produced any score, so no result file was written; errors: {errors}"


def _remove_new_store(store_dir, existed: bool) -> None:
    """Remove ``store_dir`` when this sweep created it (every unit failed, so it holds no result)."""
    if store_dir is not None and not existed:
        shutil.rmtree(store_dir, ignore_errors=True)


def _unit_settings(settings: SweepSettings, model: str, dataset_identity: dict, network: dict | None = None) -> dict:
    """Everything that changes one unit's result: what its ``settings_hash`` fingerprints
    (``network``: :func:`network_identity`, for a factory that loads its own weights)."""
    protocol = settings.protocol
    return {
        "protocol": protocol.to_dict(),
        "metrics": list(settings.metrics),
        "weights": weights_identity(settings.weights_for(model), protocol.seed),
        "run": run_identity(model),
        "workbench": __version__,
        "dataset": dataset_identity,
        "data_options": dict(settings.data_options).get(dataset_identity["name"], {}),
        **({"layers": list(settings.layers)} if settings.layers else {}),
        **({"network": network} if network else {}),
    }


def _merged_units(units: list[Unit], results: dict, failures: dict, settings: SweepSettings) -> xr.Dataset:
    """The units' scores merged and stamped; a unit that raised gets its model's error instead.

    ``attrs``: ``failed_units`` (JSON), ``notes`` (JSON, each metric that could not apply to a
    region once), ``metrics`` and ``datasets``, besides :func:`~workbench.analysis.scores.stamp`'s.
    """
    parts, failed = [], []
    for unit in units:
        if unit.unit_id in results:
            parts.append(results[unit.unit_id])
        else:
            message = _last_line(failures.get(unit.unit_id, "unit did not finish"))
            logger.info("%s failed on %s: %s", unit.model, unit.dataset, message)  # failed_units has it
            parts.append(_failed_part(unit, settings, message))
            failed.append({"model": unit.model, "dataset": unit.dataset, "error": message})
    notes = list(dict.fromkeys(n for part in parts for n in json.loads(part.attrs.get("notes", "[]"))))
    for note in notes:  # once per dataset and region, not once per model or layer (the CLI prints them)
        logger.info("%s", note)
    scores = stamp(merge_scores(parts, attrs={}), protocol=settings.protocol)
    scores.attrs["failed_units"] = json.dumps(failed)
    scores.attrs["notes"] = json.dumps(notes)
    scores.attrs["metrics"] = ",".join(settings.metrics)
    scores.attrs["datasets"] = ",".join(dict.fromkeys(unit.dataset for unit in units))
    return scores


@contextlib.contextmanager
def _unit_store(store_dir):
    """Yield ``store_dir``, or a temporary directory removed on exit when it is None."""
    if store_dir is not None:
        yield Path(store_dir)
        return
    with tempfile.TemporaryDirectory(prefix="workbench-sweep-") as tmp:
        yield Path(tmp)
