"""Checks of a study's arguments before any extraction starts.

:func:`check_study` validates everything that can be validated without running a model:
model names (:func:`workbench.models.check_model_names`), dataset names and manifests,
metric names, protocol fields and values, weights (per model: each checkpoint read with
``torch.load(weights_only=True)`` and its keys and shapes compared with the network built
on torch's ``meta`` device), layers, device, the output directory, and (on request) what the
study reads: published weights found or downloaded, and each dataset loaded as the sweep loads
it, so that its files are present and verified and its images there (what ``workbench data
info`` checks). Each problem is one :class:`~workbench.errors.ValidationError`,
:class:`~workbench.errors.DataError` or :class:`~workbench.errors.WeightsUnavailableError`
whose message names the argument, what was found and what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from workbench.errors import DataError, ValidationError


def resolve_weights(weights):
    """Map the command-line spelling of weights to :func:`workbench.models.create`'s.

    ``None``, ``""`` and ``"random"`` mean random initialisation (``None``); ``"imagenet"``
    and checkpoint paths pass through.
    """
    if weights in (None, "", "random"):
        return None
    return str(weights)


def weights_by_model(weights, models: Sequence[str]) -> dict[str, str | None]:
    """Weights of each model: ``{model: None | "imagenet" | path}``.

    Parameters
    ----------
    weights : None, str, path, mapping or sequence of str
        One spelling for every model (``None``/``"random"``, ``"imagenet"``, a checkpoint
        path), a mapping of model name to those, or the CLI's list of ``--weights`` items:
        ``MODEL=WEIGHTS`` for one model, a plain item for every model not named.
    models : sequence of str

    Raises
    ------
    ValidationError
        A ``MODEL=...`` item or mapping key names a model that is not among ``models``, or a
        model gets two different weights.
    """
    models = [str(m) for m in models]
    if weights is None or isinstance(weights, (str, os.PathLike)):
        return {m: resolve_weights(None if weights is None else str(weights)) for m in models}
    if isinstance(weights, Mapping):
        items = dict(weights)
    else:
        items, default = {}, None
        for item in weights:
            item = str(item)
            name, sep, value = item.partition("=")
            if sep and (name in models or not Path(item).exists()):
                if name in items:
                    raise ValidationError(f"--weights names model {name!r} twice ({item!r})")
                items[name] = value
            elif default is not None:
                raise ValidationError(
                    f"--weights has two values for every model ({default!r} and {item!r}); give "
                    "MODEL=WEIGHTS items for models that differ"
                )
            else:
                default = item
        items = {m: items.get(m, default) for m in models} | {k: v for k, v in items.items() if k not in models}
    unknown = [k for k in items if k not in models]
    if unknown:
        raise ValidationError(
            f"--weights names model(s) {unknown} that are not in --models {models}; expected "
            "MODEL=WEIGHTS with MODEL one of them"
        )
    return {m: resolve_weights(items.get(m)) for m in models}


def check_weights(weights: Mapping[str, str | None]) -> None:
    """Check each model's checkpoint: it exists, is a state dict, and fits the network.

    ``"imagenet"`` (:func:`check_published_weights`) and random weights are not checked here.
    """
    from workbench.models.registry import light_architecture
    from workbench.models.weights import check_state_dict, read_state_dict
    from workbench.training.model_card import is_run_directory

    read: dict[str, dict] = {}
    for model, value in weights.items():
        if value is None or value == "imagenet":
            continue
        path = Path(value)
        if not path.is_file():
            raise DataError(
                f"--weights for {model}: checkpoint {path} "
                f"{'is a directory' if path.is_dir() else 'does not exist'}; expected 'random', "
                "'imagenet' or the path of a state-dict file"
            )
        if str(path) not in read:
            read[str(path)] = read_state_dict(path)
        if is_run_directory(model):
            continue  # a training run carries its own weights; create() says so
        try:
            check_state_dict(light_architecture(model).module, read[str(path)], path)
        except DataError as exc:
            raise DataError(f"--weights for {model}: {exc}") from None


def check_published_weights(model: str) -> None:
    """Make a model's declared published weights available now (found, or downloaded), so that
    ``--weights imagenet`` without network fails before any extraction.

    Models that declare no source (a user's factory, a hub name) are left to their factory.

    Raises
    ------
    WeightsUnavailableError
        The file is absent and cannot be downloaded; the message names the URL or page and
        the exact path to put the file at.
    """
    from workbench.errors import WeightsUnavailableError
    from workbench.models.registry import model_entry
    from workbench.models.weights import published_weights, weights_source
    from workbench.training.model_card import is_run_directory

    if is_run_directory(model) or weights_source(model) is None:
        return
    try:
        published_weights(model_entry(model).name)
    except WeightsUnavailableError as exc:
        raise WeightsUnavailableError(f"--weights imagenet for {model}: {exc}") from None


def check_data(datasets: Sequence, protocol) -> None:
    """Load each dataset named in ``datasets`` as the sweep loads it (files fetched or found and
    verified against their checksums, user-provided files present, the images there and
    matching the responses), so that missing data stop a study before any extraction.

    Datasets given as objects are loaded already. Datasets that ``allensdk`` downloads when
    they are loaded (``loader: allen_neuropixels``) are left to the sweep: loading them is the
    download itself.

    Raises
    ------
    DataError
        A file is missing, damaged or not provided, or the images do not match the responses;
        the message names the dataset argument and the file (as ``workbench data info`` does).
    """
    from workbench.analysis.sweeps import SweepSettings
    from workbench.data import read_manifest

    settings = SweepSettings(protocol=protocol, metrics=())
    for dataset in datasets:
        if not isinstance(dataset, (str, os.PathLike)) or read_manifest(dataset).loader == "allen_neuropixels":
            continue
        try:
            settings.load_dataset(str(dataset))
        except DataError as exc:
            raise DataError(f"--datasets {dataset}: {exc}") from None


def check_out_dir(out: str | os.PathLike, argument: str = "--out") -> Path:
    """``out`` as a Path, unless it exists and is not a directory (or cannot be created)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValidationError(
            f"{argument} {path} is an existing file; expected a directory (new, or a previous run's)"
        )
    parent = next((p for p in [path, *path.parents] if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ValidationError(f"{argument} {path}: {parent} is a file, so the directory cannot be created")
    if parent is not None and not os.access(parent, os.W_OK):
        raise ValidationError(f"{argument} {path}: {parent} is not writable")
    return path


def parse_device(device: str) -> tuple[str, int | None]:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (every command's ``--device``) as ``(kind, N or None)``.

    Raises
    ------
    ValidationError
        Any other spelling.
    """
    kind, _, index = str(device).partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise ValidationError(f"--device {device!r} is not valid; expected cpu, cuda or cuda:N")
    return kind, int(index) if index else None


def training_device(device: str) -> str:
    """``workbench train --device`` (argparse ``type``): ``cpu``, ``cuda`` or ``cuda:N`` as the
    other commands take it. A training config names ``"cpu"`` or ``"cuda"``, so ``cuda:N`` makes
    GPU N the current CUDA device (where one exists; else training says there is none) and
    gives ``"cuda"``; under torchrun each process uses its local rank's GPU.
    """
    import argparse

    import torch

    try:
        kind, index = parse_device(device)
        if index is not None and torch.cuda.is_available():
            check_device(device)
            torch.cuda.set_device(index)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--device ")) from None
    return kind


def check_device(device: str) -> str:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"``; a CUDA device must exist."""
    import torch

    device = str(device)
    kind, index = parse_device(device)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValidationError(f"--device {device}: no CUDA GPU is available on this machine; use --device cpu")
        if index is not None and index >= torch.cuda.device_count():
            raise ValidationError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s) (0-based)"
            )
    return device


def check_executor(executor: str) -> str:
    """``executor`` (``--dask``): ``"serial"``, ``"local:N"`` or ``"tcp://HOST:PORT"``
    (:func:`workbench.analysis.execution.parse_executor`)."""
    from workbench.analysis.execution import parse_executor

    try:
        parse_executor(executor)
    except ValidationError as exc:
        raise ValidationError(f"--dask: {exc}") from None
    return executor


def check_layers(layers: Sequence[str] | None, models: Sequence[str]) -> tuple[str, ...] | None:
    """The layers to score (None: every model's declared ones), each checked to be a layer
    spec (:mod:`workbench.models.layer_spec`) on a submodule of every model.

    A spec need not be one of a model's declared analysis layers; the networks are built on
    the ``meta`` device (:func:`workbench.models.registry.light_architecture`), so checking is fast and downloads nothing.

    Raises
    ------
    ValidationError
        ``layers`` is empty or repeats a spec, a spec is malformed, or its module is absent
        from a model; the message names the spec, the model and the grammar.
    """
    if layers is None:
        return None
    from workbench.models.layer_spec import LAYER_SPEC_GRAMMAR, absent_layers, parse_layer_spec
    from workbench.models.registry import light_architecture

    layers = tuple(str(layer) for layer in layers)
    if not layers or len(set(layers)) != len(layers):
        raise ValidationError(f"--layers must name one or more distinct layers, found {list(layers)}")
    for layer in layers:
        try:
            parse_layer_spec(layer)
        except ValidationError as exc:
            raise ValidationError(f"--layers: {exc}") from None
    for model in models:
        absent = absent_layers(light_architecture(model).module, layers)
        if absent:
            raise ValidationError(
                f"--layers {absent}: no such module in {model}; expected layer specs on its "
                f"named_modules() paths: {LAYER_SPEC_GRAMMAR} (`workbench models list` counts its "
                "declared analysis layers)"
            )
    return layers


def check_datasets(datasets: Sequence) -> list:
    """Each dataset name or manifest path, read and checked (objects pass through)."""
    from workbench.data import read_manifest

    datasets = list(datasets)
    if not datasets:
        raise ValidationError("datasets is empty; expected at least one dataset name or manifest path")
    for dataset in datasets:
        if isinstance(dataset, (str, os.PathLike)):
            read_manifest(dataset)
    return datasets


def check_metrics(metrics: Sequence[str] | None) -> list[str] | None:
    """Metric names, each one of :func:`workbench.metrics.list_metrics` (None: all)."""
    if metrics is None:
        return None
    from workbench.metrics import list_metrics

    metrics = list(metrics)
    unknown = [m for m in metrics if m not in list_metrics()]
    if unknown or not metrics or len(set(metrics)) != len(metrics):
        raise ValidationError(
            f"--metrics {metrics}: {'unknown ' + str(unknown) if unknown else 'empty or repeated'}; "
            f"expected distinct names among {list_metrics()}"
        )
    return metrics


def check_study(
    models: Sequence[str],
    datasets: Sequence,
    out_dir: str | os.PathLike | None = None,
    *,
    metrics: Sequence[str] | None = None,
    weights=None,
    protocol=None,
    layers: Sequence[str] | None = None,
    device: str = "cpu",
    executor: str = "serial",
    resources: bool = False,
) -> dict:
    """Check every argument of a study before any extraction starts.

    With ``resources``, also make what the study reads available now, last: the published
    weights of ``"imagenet"`` models (:func:`check_published_weights`) and each dataset's data
    (:func:`check_data`), so that a missing file stops the study with one message instead of
    failing its units (``workbench score``, ``report`` and ``demo`` ask for it).

    Returns
    -------
    dict
        The normalised arguments: ``models`` (list), ``datasets``, ``metrics``, ``weights``
        (``{model: None | "imagenet" | path}``), ``protocol`` (a Protocol), ``layers``,
        ``device``, ``executor`` and ``out_dir`` (a Path or None).

    Raises
    ------
    ValidationError, DataError, WeightsUnavailableError
        The first argument found wrong, named in the message.
    """
    from workbench.analysis.protocol import Protocol
    from workbench.models import check_model_names

    if isinstance(protocol, Mapping):
        protocol = Protocol().replace(**protocol)
    elif protocol is None:
        protocol = Protocol()
    elif not isinstance(protocol, Protocol):
        raise ValidationError(f"protocol must be a Protocol or a dict of its fields, found {type(protocol).__name__}")
    out = None if out_dir is None else check_out_dir(out_dir)
    models = check_model_names(models)
    datasets = check_datasets(datasets)
    metrics = check_metrics(metrics)
    per_model = weights_by_model(weights, models)
    check_weights(per_model)
    checked = {
        "models": models,
        "datasets": datasets,
        "metrics": metrics,
        "weights": per_model,
        "protocol": protocol,
        "layers": check_layers(layers, models),
        "device": check_device(device),
        "executor": check_executor(executor),
        "out_dir": out,
    }
    if resources:  # last: they may be downloaded
        for model, value in per_model.items():
            if value == "imagenet":
                check_published_weights(model)
        check_data(datasets, protocol)
    return checked
