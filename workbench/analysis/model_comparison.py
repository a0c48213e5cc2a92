"""Model against model: layer x layer similarity of two networks on one stimulus set.

:func:`compare_models` extracts both networks' layers on the same stimuli (streamed into
Gram statistics and cached, as the sweep does), prepares them by the protocol (z-scoring,
SNN time steps) and scores every pair of layers with CKA and/or RSA. ``workbench
compare-models A B --datasets D --out DIR`` writes the result and its heatmaps
(:func:`workbench.reports.model_comparison.plot_model_similarity`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import xarray as xr

from workbench.analysis.protocol import Protocol
from workbench.errors import ValidationError

logger = logging.getLogger(__name__)

#: The metrics a model-vs-model comparison supports (both symmetric in their two arguments).
MODEL_METRICS = ("cka", "rsa")


def _model(model, weights, seed: int):
    from workbench.models import ModelWrapper, create

    if isinstance(model, ModelWrapper):
        return model
    return create(str(model), weights, seed=seed)


def _stimuli(stimuli):
    if isinstance(stimuli, (str,)) or hasattr(stimuli, "__fspath__"):
        from workbench.data import load

        return load(stimuli).stimuli
    return getattr(stimuli, "stimuli", stimuli)


def compare_models(
    model_a,
    model_b,
    stimuli,
    *,
    metrics: Sequence[str] = MODEL_METRICS,
    protocol: Protocol | None = None,
    weights_a=None,
    weights_b=None,
    layers_a: Sequence[str] | None = None,
    layers_b: Sequence[str] | None = None,
    device: str = "cpu",
    cache=True,
) -> xr.DataArray:
    """Layer x layer similarity of two networks on one stimulus set.

    Parameters
    ----------
    model_a, model_b : str or ModelWrapper
        Model names (as for the sweep, incl. ``package.module:factory``) or wrapped networks
        (:func:`workbench.models.wrap_model`). The same model twice gives its self-similarity.
    stimuli : StimulusSet, NeuralDataset, or a dataset name / manifest path
        The images both networks see.
    metrics : sequence of {"cka", "rsa"}, default: ("cka", "rsa")
        Linear CKA of the two layers' features; RSA (Spearman correlation of their
        correlation-distance RDMs). A pair in which some stimuli have a zero-variance pattern
        (a silent spiking layer) follows ``protocol.zero_variance_stimuli`` for RSA: NaN by
        default, or scored on the other stimuli. Pairs left without a score are summarised in
        one logged warning and in ``attrs["unscored_<metric>"]``.
    protocol : Protocol, optional
        z-scoring, SNN time steps, batch size and the seed of random weights (default
        ``Protocol()``).
    weights_a, weights_b : None, "imagenet" or path
        Weights of each model (None: random, seeded by ``protocol.seed``).
    layers_a, layers_b : sequence of str, optional
        Analysis layers to compare (default: all declared layers).
    device : str, default: "cpu"
    cache : bool or path, default: True
        The activation cache (see :func:`workbench.activations.extract_stats`).

    Returns
    -------
    xarray.DataArray
        Dims ``(metric, layer_a, layer_b)``, the layer names as coordinates, and attrs
        ``model_a``, ``model_b``, ``weights_a``, ``weights_b``, ``n_stimuli``, ``protocol`` and,
        for each metric with pairs left without a score, ``unscored_<metric>``
        (:func:`unscored_summary`).
    """
    protocol = Protocol() if protocol is None else protocol
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    bad = [m for m in metrics if m not in MODEL_METRICS]
    if bad or not metrics:
        raise ValidationError(f"metrics {metrics}: expected one or more of {list(MODEL_METRICS)}")
    stimuli = _stimuli(stimuli)
    net_a, names_a, prep_a = _side(model_a, weights_a, layers_a, stimuli, protocol, cache, device)
    net_b, names_b, prep_b = _side(model_b, weights_b, layers_b, stimuli, protocol, cache, device)
    values = np.full((len(metrics), len(names_a), len(names_b)), np.nan)
    failures: dict[str, list[str]] = {}  # metric -> why each unscored pair has no score
    for i in range(len(names_a)):
        for j in range(len(names_b)):
            for k, metric in enumerate(metrics):
                try:
                    values[k, i, j] = _pair_score(prep_a[i], prep_b[j], metric, protocol)
                except ValidationError as exc:
                    failures.setdefault(metric, []).append(str(exc))
    unscored = unscored_summary(failures, len(names_a) * len(names_b))
    if unscored:
        logger.warning("%s vs %s: %s", net_a.name, net_b.name, "; ".join(unscored.values()))
    return xr.DataArray(
        values,
        dims=("metric", "layer_a", "layer_b"),
        coords={"metric": metrics, "layer_a": names_a, "layer_b": names_b},
        name="similarity",
        attrs={"model_a": net_a.name, "model_b": net_b.name, "weights_a": net_a.weights,
               "weights_b": net_b.weights, "n_stimuli": len(stimuli), "protocol": protocol.to_json(),
               **{f"unscored_{metric}": text for metric, text in unscored.items()}},
    )


def unscored_summary(failures: dict[str, list[str]], n_pairs: int) -> dict[str, str]:
    """Per metric, one clause on its layer pairs without a score: how many of ``n_pairs`` and
    the first reason, e.g. ``{"rsa": "rsa: 9 of 12 layer pairs unscored (3 stimuli have a
    zero-variance pattern ...) [first of 2 distinct reasons]"}``; empty when all have one.

    Parameters
    ----------
    failures : dict metric -> list of str
        The error message of each unscored pair.
    n_pairs : int
        The number of layer pairs per metric.
    """
    out = {}
    for metric, reasons in failures.items():
        distinct = list(dict.fromkeys(reasons))
        more = f" [first of {len(distinct)} distinct reasons]" if len(distinct) > 1 else ""
        out[metric] = f"{metric}: {len(reasons)} of {n_pairs} layer pairs unscored ({distinct[0]}){more}"
    return out


def _side(model, weights, layers, stimuli, protocol: Protocol, cache, device: str):
    """One network, its layer names and each layer's prepared statistics (DerivedStats, whose
    cached RSA ranks serve all the layer's pairs)."""
    from workbench.activations import extract_stats
    from workbench.analysis.cells import prepare
    from workbench.metrics.derived import DerivedStats

    net = _model(model, weights, protocol.seed)
    layers = net.check_layers(layers)
    time_steps = protocol.time_steps if net.is_spiking else None
    stats = extract_stats(net, stimuli, list(layers), batch_size=protocol.batch_size, time_steps=time_steps,
                          time_reduce=protocol.time_reduce, cache=cache, device=device)
    return net, list(layers), [DerivedStats.from_input(prepare(stats[layer], protocol), "X") for layer in layers]


def _pair_score(a, b, metric: str, protocol: Protocol) -> float:
    """One metric between two layers' prepared statistics (DerivedStats over the same stimuli).

    RSA is undefined where a stimulus has a zero-variance pattern in either layer (e.g. a
    spiking layer silent for that image): such a pair follows ``protocol.zero_variance_stimuli``
    as a sweep's cell does, unscored (raises, the cell is NaN) or scored on the other stimuli.
    """
    from workbench.analysis.resampling import take_stimuli
    from workbench.metrics import compare
    from workbench.metrics.derived import DerivedStats

    if metric == "rsa":
        flat = np.union1d(a.zero_variance_rows(), b.zero_variance_rows())
        if flat.size and protocol.zero_variance_stimuli == "unscored":
            raise ValidationError(
                f"{flat.size} stimuli have a zero-variance pattern in one of the layers, so RSA is "
                "undefined; Protocol(zero_variance_stimuli='exclude') scores the other stimuli"
            )
        if flat.size:
            keep = np.setdiff1d(np.arange(a.n_stimuli), flat)
            a, b = (DerivedStats.from_input(take_stimuli(side.stats, keep), side.name) for side in (a, b))
    return compare(a, b, [metric], errors="raise")[metric]
