"""Study presets: a study's models, datasets, metrics, protocol and weights in one YAML file.

A preset is a small YAML file (the package's own, e.g. ``huang2023.yaml``, or a user's) read
into a checked :class:`Study` by :func:`load_study`. ``workbench study run NAME|FILE.yaml``
runs it through the sweep (:func:`workbench.reports.run_study`), resumably.

Fields (``name``, ``models``, ``datasets`` and ``metrics`` are required):

``name``, ``title``, ``reference``
    What the study is and where it comes from.
``weights``
    ``random`` (default), ``imagenet`` or a checkpoint path, for every model.
``models``, ``datasets``
    Model names (:func:`workbench.models.list_models`, ``package.module:factory``) and dataset
    names or manifest paths (relative paths are read from the preset's folder).
``metrics``, ``protocol``
    The study's own metrics and :class:`~workbench.analysis.Protocol` fields.
``added_metrics``, ``added_protocol``
    Analyses added to the study's (e.g. CKA, ``permutations: 100``): on by default,
    left out by ``workbench study run --paper-metrics``.
``paper_scores``, ``paper_datasets``
    The study's published scores as a CSV file (relative to the preset), and the dataset each
    of the file's dataset keys stands for (:func:`workbench.studies.load_paper_scores`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from workbench.config import Config
from workbench.errors import DataError, ValidationError
from workbench.validation import did_you_mean

#: The folder of the package's own presets (``<name>.yaml``).
PRESETS_DIR = Path(__file__).parent
REQUIRED_FIELDS = ("name", "models", "datasets", "metrics")


@dataclasses.dataclass(frozen=True)
class Study(Config):
    """A checked study preset (see the module docstring for the fields).

    ``source`` is the YAML file it was read from (set by :func:`load_study`, never by the file).
    """

    name: str = ""
    title: str = ""
    reference: str = ""
    weights: str = "random"
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    protocol: dict[str, Any] = dataclasses.field(default_factory=dict)
    added_metrics: tuple[str, ...] = ()
    added_protocol: dict[str, Any] = dataclasses.field(default_factory=dict)
    paper_scores: str | None = None
    paper_datasets: dict[str, str] = dataclasses.field(default_factory=dict)
    source: str = ""

    def run_metrics(self, paper_only: bool = False) -> list[str]:
        """The metrics a run computes: the study's, then (unless ``paper_only``) the added ones."""
        return list(self.metrics) + ([] if paper_only else [m for m in self.added_metrics if m not in self.metrics])

    def run_protocol(self, paper_only: bool = False) -> dict[str, Any]:
        """The Protocol overrides of a run: the study's, updated (unless ``paper_only``) by the added ones."""
        return dict(self.protocol) if paper_only else {**self.protocol, **self.added_protocol}


def list_studies() -> list[str]:
    """The names of the package's study presets (``workbench study list``)."""
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def study_path(name_or_path: str | os.PathLike) -> Path:
    """The YAML file of a preset name (:func:`list_studies`) or of a path to a ``.yaml`` file."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        path = Path(text)
        if not path.is_file():
            raise ValidationError(f"study file {path} does not exist; expected a study YAML file "
                                  f"or one of the presets {list_studies()}")
        return path
    if text not in list_studies():
        raise ValidationError(f"unknown study {text!r}{did_you_mean(text, list_studies())}; expected one of "
                              f"{list_studies()} or the path of a study YAML file")
    return PRESETS_DIR / f"{text}.yaml"


def load_study(name_or_path: str | os.PathLike) -> Study:
    """Read and check a study preset: a name from :func:`list_studies` or a YAML file's path.

    Every field is checked before anything runs: names of models (registry, plugins), datasets
    (manifests), metrics and Protocol fields, and the published scores' file.

    Raises
    ------
    ValidationError
        The message starts with the file and names the field, with close matches for a
        misspelt field or value (``"FILE: Study has no field 'modles'; did you mean 'models'?"``).
    """
    path = study_path(name_or_path)
    raw = _read_yaml(path)
    where = str(path)
    missing = [name for name in REQUIRED_FIELDS if name not in raw]
    if missing:
        raise ValidationError(f"{where}: field {missing[0]!r} is missing; a study needs {list(REQUIRED_FIELDS)}")
    if "source" in raw:
        raise ValidationError(f"{where}: field 'source' is set by the loader (the file's path); remove it")
    study = Study.from_dict({**raw, "source": str(path.resolve())}, where=where)
    study = dataclasses.replace(study, datasets=tuple(_dataset_spec(d, path.parent) for d in study.datasets),
                                paper_scores=None if study.paper_scores is None
                                else str((path.parent / study.paper_scores).resolve()))
    _check_names(study, where)
    return study


def _read_yaml(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValidationError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(raw, dict):
        raise ValidationError(f"{path}: expected a mapping of study fields, found {type(raw).__name__}")
    return raw


def _dataset_spec(dataset: str, folder: Path) -> str:
    """A dataset name, or a manifest path made absolute against the preset's folder."""
    if dataset.endswith((".yaml", ".yml")) and not Path(dataset).is_absolute():
        return str((folder / dataset).resolve())
    return dataset


def _check_names(study: Study, where: str) -> None:
    """Raise unless every model, dataset, metric and Protocol field of ``study`` exists."""
    from workbench.analysis import Protocol
    from workbench.analysis.checks import check_datasets
    from workbench.metrics import list_metrics
    from workbench.models import check_model_names

    for field, check in (("models", check_model_names), ("datasets", check_datasets)):
        try:
            check(getattr(study, field))
        except (ValidationError, DataError) as exc:
            raise ValidationError(f"{where}: {field}: {exc}") from None
    for field in ("metrics", "added_metrics"):
        for metric in getattr(study, field):
            if metric not in list_metrics():
                raise ValidationError(f"{where}: {field}: unknown metric {metric!r}"
                                      f"{did_you_mean(metric, list_metrics())}; expected some of {list_metrics()}")
    for field in ("protocol", "added_protocol"):
        Protocol.from_dict({**study.protocol, **getattr(study, field)}, where=f"{where}: {field}")
    if study.paper_scores is not None and not Path(study.paper_scores).is_file():
        raise ValidationError(f"{where}: paper_scores: {study.paper_scores} does not exist; expected a CSV file "
                              "(a path relative to the study file)")
