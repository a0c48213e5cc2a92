"""A study run: the sweep, its result files, and the facts the report opens with.

A run directory holds ``scores.nc`` and ``scores.csv`` (the sweep's scores), ``rdms.nc``
(the RDMs the heatmaps show: each model's best layer beside each brain region), ``store/``
(the sweep's resumable per-unit results) and ``figures/``. Everything the figures need is in
those files, so :func:`workbench.reports.render_all_figures` never recomputes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from workbench import dims
from workbench.analysis.results import RDMS_FILE, save_rdms, save_scores
from workbench.errors import ValidationError, WorkbenchError

logger = logging.getLogger(__name__)

STORE_DIR = "store"


def resolve_weights(weights: str | None) -> str | None:
    """Map the command-line spelling of weights to :func:`workbench.models.create`'s.

    ``None``, ``""`` and ``"random"`` mean random initialisation (``None``); ``"imagenet"``
    and checkpoint paths pass through. Per-model weights: :func:`workbench.analysis.checks.weights_by_model`.
    """
    from workbench.analysis.checks import resolve_weights as resolve

    return resolve(weights)


def make_protocol(protocol=None):
    """A :class:`~workbench.analysis.Protocol` from ``None``, a Protocol or a dict of overrides."""
    from workbench.analysis import Protocol

    if protocol is None:
        return Protocol()
    if isinstance(protocol, Protocol):
        return protocol
    if isinstance(protocol, dict):
        return Protocol().replace(**protocol)
    raise ValidationError(
        f"protocol must be None, a Protocol or a dict of Protocol fields, found {type(protocol).__name__}"
    )


def run_study(models: Sequence[str], datasets: Sequence[str], out_dir: str | os.PathLike, *,
              metrics: Sequence[str] | None = None, weights=None, protocol=None, executor: str = "serial",
              force: bool = False, rdms: bool = True, progress: bool = True, layers: Sequence[str] | None = None,
              device: str = "cpu", checked: dict | None = None) -> xr.Dataset:
    """Score ``models`` on ``datasets`` and write the run's result files into ``out_dir``.

    Parameters
    ----------
    models, datasets : sequence of str
        Names from :func:`workbench.models.list_models` and :func:`workbench.data.list_datasets`.
    out_dir : path-like
        The run directory (created).
    metrics : sequence of str, optional
        Names from :func:`workbench.metrics.list_metrics`; default: all of them (each is
        computed only where it applies).
    weights : {None, "random", "imagenet"}, path, or mapping of model name to those, default: None
        Model weights, for every model or per model (see
        :func:`workbench.analysis.checks.weights_by_model`).
    protocol : Protocol or dict, optional
        Analysis choices, or overrides of the defaults (see :func:`make_protocol`).
    executor : str, default: "serial"
        ``"serial"``, ``"local:N"`` or ``"tcp://HOST:PORT"`` (see
        :mod:`workbench.analysis.execution`).
    force : bool, default: False
        Recompute units the store already holds.
    rdms : bool, default: True
        Also write ``rdms.nc`` for the RDM heatmaps.
    progress : bool, default: True
        Show the sweep's progress bar.
    layers : sequence of str, optional
        Score only these analysis layers of every model (default: all).
    device : str, default: "cpu"
        Where the networks run (``"cuda"`` for a GPU).
    checked : dict, optional
        What :func:`workbench.analysis.checks.check_study` returned for these arguments, when
        the caller checked them already (``workbench score`` does); default: checked here.

    Every argument is checked before any extraction starts, once
    (:func:`workbench.analysis.checks.check_study`).

    Returns
    -------
    xarray.Dataset
        The scores, as saved in ``out_dir/scores.nc``. A model that failed has its message
        in ``scores["error"]`` and NaN scores; the others go on.

    Raises
    ------
    WorkbenchError
        No model produced a single score (e.g. published weights unavailable offline); the
        message lists each model's error.
    """
    from workbench.analysis.checks import check_study
    from workbench.analysis.sweeps import sweep
    from workbench.metrics import list_metrics

    if checked is None:
        checked = check_study(models, datasets, out_dir, metrics=metrics, weights=weights,
                              protocol=make_protocol(protocol), layers=layers, device=device, executor=executor)
    out_dir = Path(out_dir)
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    protocol, weights, device = checked["protocol"], checked["weights"], checked["device"]
    try:
        scores = sweep(list(models), list(datasets), list(list_metrics() if metrics is None else metrics),
                       protocol=protocol, store_dir=out_dir / STORE_DIR, executor=executor, force=force,
                       weights=weights, progress=progress, layers=checked["layers"], device=device)
    except WorkbenchError:  # every unit raised: nothing was written, and no folder is left that this call made
        if made and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    save_scores(scores, out_dir)
    _report_models(scores, out_dir)
    if rdms:
        pairs = best_layer_rdms(scores, datasets, weights=weights, protocol=protocol, device=device)
        if pairs:
            save_rdms(pairs, out_dir / RDMS_FILE)
    return scores


def _report_models(scores: xr.Dataset, out_dir: Path) -> None:
    """Log each model's error and warning; raise when no model produced a single score.

    The errors of units that raised are logged at INFO only: the caller lists those units
    (``failed: ...`` lines of the CLI, :func:`~workbench.analysis.sweeps.failed_units`)."""
    from workbench.analysis.sweeps import failed_units

    failed = {str(m): str(e) for m, e in zip(scores[dims.MODEL].values, scores["error"].values) if str(e)}
    raised = {unit["model"] for unit in failed_units(scores)}
    for model, message in failed.items():
        logger.log(logging.INFO if model in raised else logging.WARNING, "model %s: %s", model, message)
    if "warning" in scores:  # scored, with caveats (they are in scores.csv and the report)
        for model, caveat in zip(scores[dims.MODEL].values, scores["warning"].values):
            if str(caveat):
                logger.info("model %s (warning): %s", model, caveat)
    if not np.isfinite(scores["score"].values).any():
        raise WorkbenchError(
            f"no model produced any score (scores saved in {out_dir}); errors: "
            + "; ".join(f"{model}: {message}" for model, message in failed.items())
        )


def rdm_metric(scores: xr.Dataset) -> str | None:
    """The metric that picks the layer shown in heatmaps: ``"rsa"`` when scored, else the first."""
    from workbench.reports.figures import computed_metrics

    metrics = computed_metrics(scores)
    if not metrics:
        return None
    return "rsa" if "rsa" in metrics else metrics[0]


def best_layer_rdms(
    scores: xr.Dataset,
    datasets: Sequence[str] | None = None,
    *,
    weights=None,
    protocol=None,
    regions_per_dataset: int | None = None,
    device: str = "cpu",
) -> list[tuple[str, str, str, np.ndarray, np.ndarray]]:
    """RDMs of each model's best layer beside the brain RDM, for the heatmap figures.

    For each dataset in ``scores``, every scored region (or its first ``regions_per_dataset``); for each
    model with a score there, the correlation-distance RDM of the layer with the best score
    (:func:`rdm_metric`) is computed from the layer's Gram statistics
    (:func:`workbench.activations.extract_stats`, SNN features reduced over time steps by
    ``protocol.time_reduce`` as in the sweep). The sweep has cached those statistics, so no
    forward pass runs again unless the cache was cleared. Datasets are loaded as the sweep loads them (same
    reliability threshold), from the cache or ``$WORKBENCH_DATA_MIRROR``.

    Parameters
    ----------
    scores : xarray.Dataset
        The run's scores.
    datasets : sequence of str, optional
        How to load the scores' datasets (names or manifest paths, as given to the sweep);
        default: the names in ``scores["dataset"]``.
    weights, protocol, device
        As given to the sweep (weights for every model, or per model).
    regions_per_dataset : int, optional
        How many regions of each dataset get heatmaps; default: all of them.

    Returns
    -------
    list of (model, layer_name, region, model_rdm, brain_rdm, categories)
        As :func:`workbench.analysis.results.save_rdms` takes them; ``categories`` is each
        stimulus's category label where the dataset has them (the 92-image set), else None.
    """
    from workbench.activations import extract_stats
    from workbench.analysis import best_layer
    from workbench.analysis.sweeps import SweepSettings
    from workbench.data import read_manifest
    from workbench.metrics import rdm
    from workbench.models import create

    protocol = make_protocol(protocol)
    metric = rdm_metric(scores)
    if metric is None:
        return []
    best = best_layer(scores).sel({dims.METRIC: metric})
    specs = {str(d): str(d) for d in scores[dims.DATASET].values}
    specs.update({read_manifest(spec).name: str(spec) for spec in datasets or ()})
    chosen = _scored_regions(scores, best, regions_per_dataset)
    settings = SweepSettings(protocol=protocol, metrics=())
    loaded = {name: settings.load_dataset(specs[name]) for name, regions in chosen.items() if regions}
    from workbench.analysis.checks import weights_by_model

    per_model = weights_by_model(weights, [str(m) for m in scores[dims.MODEL].values])
    pairs = []
    for model in scores[dims.MODEL].values:
        model = str(model)
        if not np.isfinite(best["score"].sel({dims.MODEL: model})).any():
            continue  # the model failed everywhere (see scores["error"])
        net = create(model, weights=per_model[model], seed=protocol.seed)
        time_steps = protocol.time_steps if net.is_spiking else None
        for name, data in loaded.items():
            for label in chosen[name]:
                layer = str(best["layer_name"].sel({dims.MODEL: model, dims.REGION: label}).values)
                if not layer:
                    continue
                stats = extract_stats(net, data.stimuli, [layer], batch_size=protocol.batch_size,
                                      time_steps=time_steps, time_reduce=protocol.time_reduce,
                                      device=device)[layer]
                region = label.split("/", 1)[1] if label.startswith(f"{name}/") else label
                brain = data.rdm(region)
                categories = brain["category"].values.astype(str) if "category" in brain.coords else None
                pairs.append((model, layer, label, rdm(stats), brain.values, categories))
    return pairs


def _scored_regions(scores: xr.Dataset, best: xr.Dataset, regions_per_dataset: int | None) -> dict[str, list[str]]:
    """Each dataset's regions (labels) where some model has a best-layer score, up to
    ``regions_per_dataset`` of them (None: all)."""
    chosen: dict[str, list[str]] = {}
    for region, dataset in zip(scores[dims.REGION].values, scores[dims.DATASET].values):
        regions = chosen.setdefault(str(dataset), [])
        room = regions_per_dataset is None or len(regions) < regions_per_dataset
        if room and np.isfinite(best["score"].sel({dims.REGION: region})).any():
            regions.append(str(region))
    return chosen


def zero_variance_statement(policy: str) -> str:
    """The sentence every report states about stimuli with a zero-variance pattern."""
    if policy == "exclude":
        what = ("such a cell is scored on the remaining stimuli, and the number left out is listed "
                "below and recorded in `scores.csv` (`n_zero_variance`)")
    else:
        what = ("such a cell is left unscored (NaN), marked x on the layer curves, listed below, and "
                "the best layer is taken over the remaining layers (tables and figures say over how many)")
    return (f"**Zero-variance stimuli** (`zero_variance_stimuli={policy!r}`): where a stimulus's "
            "pattern has zero variance in a layer (e.g. a spiking layer emits no spike for it), its "
            f"correlation with other stimuli, and so RSA, is undefined; {what}. CKA, SVCCA and TSVD "
            "regression use every stimulus.")


#: What the report adds to the protocol of Huang et al. 2023, said in every report.
ADDITIONS_STATEMENT = (
    "**Additions to the paper's protocol:** CKA (a fourth metric), the stimulus-permutation null of "
    "every score (its chance level and p-value; `Protocol.permutations`) and the noise ceilings of "
    "the regions are additions to the paper's protocol: Huang et al. 2023 report SVCCA, TSVD "
    "regression and RSA without them. They change no score of the paper's metrics; "
    "`workbench study run huang2023 --paper-metrics` leaves CKA and the null out."
)


def report_header(
    models: Sequence[str],
    datasets: Sequence[str],
    *,
    metrics: Sequence[str] | None = None,
    weights: str | None = None,
    protocol=None,
) -> str:
    """The Markdown lines a report opens with: weights, protocol, datasets with citations,
    versions.

    Random weights are stated first and plainly, so that no reader mistakes an untrained
    baseline for published networks.
    """
    from workbench.analysis.checks import weights_by_model
    from workbench.analysis.sweeps import OWN_WEIGHTS, own_weights_label
    from workbench.data import read_manifest
    from workbench.provenance import package_versions

    protocol = make_protocol(protocol)
    per_model = {m: own_weights_label(m) if w is None else w for m, w in weights_by_model(weights, models).items()}
    resolved = next(iter(per_model.values()), None)
    if len(set(per_model.values())) > 1:
        shown = ", ".join(f"{m}: `{w or f'random (seed={protocol.seed})'}`" for m, w in per_model.items())
        weights_line = f"**Weights per model:** {shown}."
    elif resolved is None:
        weights_line = (
            f"**Weights: random initialisation (seed={protocol.seed}); no published (ImageNet) "
            "weights were used.** Scores describe untrained networks; run with "
            "`--weights imagenet` for trained ones."
        )
    elif resolved == "imagenet":
        weights_line = "**Weights: published ImageNet weights** (torchvision, timm; local files for the SNNs)."
    elif resolved == OWN_WEIGHTS:
        weights_line = ("**Weights: custom, loaded by each model's own factory** (the sweep table and "
                        "`scores.csv` give each network's label or state-dict sha256).")
    else:
        weights_line = f"**Weights: checkpoint `{resolved}`.**"
    lines = [
        weights_line,
        "",
        f"**Models:** {', '.join(models)}  ",
        f"**Datasets:** {', '.join(datasets)}  ",
        f"**Metrics:** {', '.join(metrics) if metrics else 'all applicable'}",
        "",
        "**Protocol**",
        "",
        "```",
        protocol.describe(),
        "```",
        "",
        zero_variance_statement(protocol.zero_variance_stimuli),
        "",
        ADDITIONS_STATEMENT,
        "",
        "**Datasets and citations**",
        "",
    ]
    for name in datasets:
        manifest = read_manifest(name)
        citation = " ".join(manifest.citation.split())
        regions = ", ".join(manifest.regions)
        lines.append(f"- `{manifest.name}` ({manifest.species}; {regions}): {citation} License: {manifest.license}.")
    versions = package_versions()
    lines += ["", "**Versions:** " + ", ".join(f"{k} {v}" for k, v in versions.items())]
    return "\n".join(lines)


def run_summary(scores: xr.Dataset):
    """Tables of a run: best layer per (model, region, metric) and family means.

    Returns
    -------
    best : pandas.DataFrame
        One row per (model, region, metric) with a score: family, layer_name,
        relative_depth, score, ceiling (the region's noise ceiling, NaN where none),
        score / ceiling, and layers (``"k/L"``: the best was taken over the ``k`` of the
        model's ``L`` layers that have a score); with permutation nulls also
        ``chance (null mean)`` and ``p (permutation)``, the best layer's chance level and
        permutation p-value (that cell's: not corrected for picking the best layer).
    families : pandas.DataFrame
        One row per (family, metric): mean, ci_low, ci_high, n_models and ``interval`` (what
        the interval is, or why there is none: a family of one model).
    """
    from workbench.analysis import best_layer, family_means
    from workbench.reports.figures import ci_level

    chosen = best_layer(scores)
    nulls = [v for v in ("null_mean", "p_value") if v in chosen]
    table = chosen[["score", "layer_name", "relative_depth", "n_layers_scored"] + nulls]
    best = table.to_dataframe().reset_index()
    ceilings = scores["ceiling"].to_dataframe().reset_index()[[dims.REGION, dims.METRIC, "ceiling"]]
    best = best.merge(ceilings, on=[dims.REGION, dims.METRIC], how="left")
    totals = dict(zip(scores[dims.MODEL].values.tolist(), chosen["n_layers"].values.tolist()))
    best = best[np.isfinite(best["score"])].copy()
    best["score / ceiling"] = best["score"] / best["ceiling"].where(best["ceiling"] > 0)
    best["layers"] = [f"{int(k)}/{totals[m]}" for m, k in zip(best[dims.MODEL], best["n_layers_scored"])]
    if nulls:  # the chance level of the best layer's cell and its permutation p-value
        best = best.rename(columns={"null_mean": "chance (null mean)", "p_value": "p (permutation)"})
    columns = [dims.MODEL, "family", dims.REGION, dims.METRIC, "layer_name", "relative_depth", "score",
               "chance (null mean)", "p (permutation)", "ceiling", "score / ceiling", "layers"]
    best = best[[c for c in columns if c in best.columns]].reset_index(drop=True)
    families = family_means(scores, level=ci_level(scores)).to_dataframe().reset_index()
    families = families[families["n_models"] > 0].reset_index(drop=True)
    families["interval"] = [
        f"t-interval across {n} models" if n > 1 else
        "none: one model (a t-interval across models needs at least 2)"
        for n in families["n_models"]]
    return best, families


def sweep_table(scores: xr.Dataset):
    """One row per model: family, weights, T (time steps; spiking models only, blank for the
    others), layers, unscored cells, the model's error (why cells that apply have no score;
    ``""`` when none) and warning (caveats of cells that have a score; ``""`` when none).
    """
    import pandas as pd

    from workbench.analysis.scores import unscored_mask

    unscored = unscored_mask(scores).sum((dims.LAYER, dims.REGION, dims.METRIC)).values
    layers = (scores["layer_name"].astype(str) != "").sum(dims.LAYER).values
    steps = scores["time_steps"].values if "time_steps" in scores.coords else np.zeros(scores.sizes[dims.MODEL])
    families = [str(f) for f in scores["family"].values]
    return pd.DataFrame({
        dims.MODEL: [str(m) for m in scores[dims.MODEL].values],
        "family": families,
        "weights": [str(w) for w in scores["weights"].values] if "weights" in scores.coords else "",
        "T": [str(int(t)) if f == "snn" and int(t) > 0 else "" for f, t in zip(families, steps)],
        "layers": [int(n) for n in layers],
        "unscored cells": [int(n) for n in unscored],
        "error": [str(e) for e in scores["error"].values],
        "warning": [str(w) for w in scores["warning"].values] if "warning" in scores else "",
    })


def score_table(scores: xr.Dataset):
    """Model score per dataset and metric (mean over the dataset's regions of the best-layer
    scores), as text: ``"n/a (RDM-only data)"`` where only RSA applies to the dataset's data,
    ``"unscored"`` where the metric applies but a region has no score."""
    import pandas as pd

    from workbench.analysis import dataset_scores

    per = dataset_scores(scores)
    rows = {}
    for model in per[dims.MODEL].values:
        row = {}
        for dataset in per[dims.DATASET].values:
            in_dataset = scores[dims.DATASET].values == dataset
            for metric in per[dims.METRIC].values:
                applicable = scores["applicable"].sel({dims.METRIC: metric}).values[in_dataset]
                value = float(per.sel({dims.MODEL: model, dims.DATASET: dataset, dims.METRIC: metric}))
                if not applicable.any():
                    rdm_only = bool(scores["applicable"].sel({dims.METRIC: "rsa"}).values[in_dataset].all()) \
                        if "rsa" in scores[dims.METRIC].values else False
                    text = "n/a (RDM-only data)" if rdm_only else "n/a"
                elif np.isfinite(value):
                    text = f"{value:.3f}"
                else:
                    text = "unscored"
                row[(str(dataset), str(metric))] = text
        rows[str(model)] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=[dims.DATASET, dims.METRIC])
    table.index.name = dims.MODEL
    return table


def unscored_section(scores: xr.Dataset) -> str:
    """Markdown for the report: the zero-variance policy and every unscored cell (or "none")."""
    from workbench.analysis.scores import unscored_summary, zero_variance_policy

    policy = zero_variance_policy(scores) or "unscored"
    text = unscored_summary(scores, max_lines=50)
    if not text:
        return (f"Every applicable cell of every layer has a score on all stimuli "
                f"(`zero_variance_stimuli={policy!r}`).")
    return "```\n" + text + "\n```"


def appendix_section(scores: xr.Dataset, *, paper_scores=None) -> list:
    """The report's section on the study's appendix analyses, from the scores alone.

    Parameters
    ----------
    scores : Dataset
    paper_scores : DataFrame, optional
        The paper's scores; default :func:`workbench.studies.load_paper_scores` of ``huang2023``.

    Returns
    -------
    list of str or pandas.DataFrame
        Markdown paragraphs and tables, in the order to display them: the appendix figures
        that could not be drawn and why, the tests between families, the SEW-ResNet vs ResNet
        gain, best-layer depths of mouse vs macaque regions, metric rank agreement, the score
        regressions on size and ImageNet top-1, multi- vs single-branch networks, and the run
        against the paper's scores. The figures themselves are drawn by
        :func:`workbench.reports.render_all_figures`.
    """
    from workbench.analysis import appendix
    from workbench.reports.appendix_figures import appendix_figures, model_properties, study_paper_scores
    from workbench.reports.figures import ci_level

    level = ci_level(scores)
    paper_scores = study_paper_scores() if paper_scores is None else paper_scores
    properties = model_properties(scores[dims.MODEL].values)
    skipped = [f"- `{f.stem}`: {f.reason}." for f in appendix_figures(scores, paper_scores=paper_scores,
                                                                      properties=properties) if f.make is None]
    items = ["**Appendix figures not drawn**, and why:\n\n" + "\n".join(skipped) if skipped
             else "Every appendix figure was drawn.",
             f"**Family means and tests** per dataset and metric ({level:.0%} t-interval across models; "
             "Kruskal-Wallis H across families, two-sided Mann-Whitney U per pair, p uncorrected):",
             appendix.family_summary(scores, level=level), appendix.family_tests(scores)]
    items += _paired_gain_items(scores, level)
    for depth in appendix.DEPTHS:
        depths = appendix.best_layer_depths(scores, depth=depth)
        items += [f"**Best-layer depth per region, and mouse vs macaque regions** (depth: {depth}; "
                  f"{level:.0%} t-interval across models; Wilcoxon signed-rank over models):",
                  appendix.depth_by_region(depths, level=level), appendix.depth_by_species(depths, level=level)]
    items += ["**Metric rank agreement** per dataset (Spearman; NaN below "
              f"{appendix.MIN_RANK_MODELS} models):", appendix.metric_rank_agreement(scores),
              "**Model properties** (`workbench.models.model_metadata`):", properties]
    for column, log10 in (("params", True), ("gflops", True), ("top1", False)):
        items += [f"**Score vs {column}** ({'log10, ' if log10 else ''}`scipy.stats.linregress`):",
                  appendix.score_regression(scores, properties[column].to_dict(), log10=log10)]
    items += ["**Multi-branch vs single-branch networks on the mouse regions** (two-sided Mann-Whitney U):",
              appendix.branch_comparison(scores, properties["branches"].to_dict())]
    items += _paper_items(scores, paper_scores)
    return [item if isinstance(item, str) or len(item) else "*(nothing to compute here: see the figures not "
            "drawn above)*" for item in items]


def _paired_gain_items(scores: xr.Dataset, level: float) -> list:
    """The SEW-ResNet vs ResNet gain: a summary sentence and the per-cell table, or why none."""
    from workbench.analysis import appendix

    try:
        gain = appendix.paired_gain(scores, level=level)
    except ValidationError as exc:
        return [f"**SEW-ResNet vs ResNet of the same depth:** not computed: {exc}."]
    return [f"**SEW-ResNet vs ResNet of the same depth:** mean relative gain {100 * gain.mean:+.2f} % "
            f"({level:.0%} t-interval {100 * gain.ci_low:+.2f} to {100 * gain.ci_high:+.2f} %) over "
            f"{gain.n_cells} (pair, dataset, metric) cells, {gain.n_positive} positive; sign test p = "
            f"{gain.sign_test_p:.3g}, Wilcoxon signed-rank p = {gain.wilcoxon_p:.3g} (the paper: +6.6 %, 42 of 45).",
            gain.cells]


def _paper_items(scores: xr.Dataset, paper_scores) -> list:
    """The run against the paper's scores: a summary table and the models the run lacks."""
    from workbench.analysis import appendix
    from workbench.reports.style import random_weights_note
    from workbench.reports.figures import model_weights

    comparison = appendix.compare_with_paper(appendix.dataset_table(scores), paper_scores)
    if comparison.summary.empty:
        return ["**This run against the paper's appendix scores:** not compared: the run shares no (model, "
                "dataset, metric) with the paper's scores (its datasets: "
                + ", ".join(dict.fromkeys(paper_scores[dims.DATASET])) + ")."]
    note = random_weights_note(model_weights(scores))
    items = ["**This run against the paper's appendix scores**"
             + (f" ({note}: the paper's networks are trained, so the two are not expected to agree)" if note else "")
             + ":", comparison.summary]
    if comparison.missing:
        items.append(f"The run lacks {len(comparison.missing)} of the paper's models: "
                     + ", ".join(f"`{m}`" for m in comparison.missing) + ".")
    return items
