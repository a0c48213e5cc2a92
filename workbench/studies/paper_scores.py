"""A study's published per-model scores, as a tidy table under the zoo's names.

The file a preset names in ``paper_scores`` is a CSV with ``#`` header lines (where the
numbers come from, and their caveats) and the columns ``model`` (the study's network name),
``dataset`` (one of the preset's ``paper_datasets`` keys), ``metric`` and ``score``.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import ValidationError
from workbench.validation import did_you_mean

COLUMNS = ("model", "dataset", "metric", "score")


def load_paper_scores(study="huang2023"):
    """The scores a study published, one row per (model, dataset, metric).

    For ``huang2023``: the appendix's best-layer scores (Figs 2-4 of Appendix.pdf in
    Grasshlw/SNN-Neural-Similarity; arXiv 2303.06060) of its 81 networks on its 3 datasets
    with SVCCA, TSVD regression and RSA, 729 rows, as parsed from the figures' vector text
    (``workbench/studies/data/huang2023_appendix_scores.csv``; its header says how, and how
    far to trust a value). A score is the mean over the dataset's regions of each region's
    best-layer score, the quantity of :func:`workbench.analysis.dataset_scores`.

    Parameters
    ----------
    study : str, path or Study, default: "huang2023"
        A preset name, a study YAML file, or a loaded :class:`~workbench.studies.Study`.

    Returns
    -------
    pandas.DataFrame
        Columns ``model`` (the zoo's name, as ``workbench models list`` prints it),
        ``dataset`` (the workbench's dataset name, e.g. ``allen2019_neuropixels_natural_scenes``),
        ``metric`` (``svcca``, ``tsvd_regression``, ``rsa``) and ``score`` (float), in the
        file's order. ``attrs["source"]`` holds the file's header lines (source and caveats),
        ``attrs["file"]`` its path.

    Raises
    ------
    ValidationError
        The study names no score file; the file lacks a column; a model is not one of the
        zoo's networks of the study, or a dataset key is not in the study's
        ``paper_datasets``, or a metric is unknown (each named with its line); a score is not a
        number; a (model, dataset, metric) appears twice.
    """
    import pandas as pd

    from workbench.studies.presets import Study, load_study

    study = study if isinstance(study, Study) else load_study(study)
    if study.paper_scores is None:
        raise ValidationError(f"{study.source}: the study {study.name!r} names no paper_scores file")
    path = Path(study.paper_scores)
    frame = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False)
    absent = [c for c in COLUMNS if c not in frame.columns]
    if absent:
        raise ValidationError(f"{path}: no column {absent[0]!r}; expected columns {list(COLUMNS)}")
    frame = frame[list(COLUMNS)].copy()
    header_lines = _header_lines(path)
    frame["model"] = _mapped(frame["model"], _zoo_names(), path, "model", len(header_lines),
                             "a network of the study in the zoo (`workbench models list --study`)")
    frame["dataset"] = _mapped(frame["dataset"], study.paper_datasets, path, "dataset", len(header_lines),
                               f"a key of paper_datasets in {study.source}")
    from workbench.metrics import list_metrics

    _mapped(frame["metric"], {m: m for m in list_metrics()}, path, "metric", len(header_lines), "a metric name")
    scores = pd.to_numeric(frame["score"], errors="coerce")
    if scores.isna().any():
        row = int(scores.isna().to_numpy().argmax())
        raise ValidationError(f"{path}: line {_line(row, len(header_lines))}: score {frame['score'].iloc[row]!r} "
                              "is not a number")
    frame["score"] = scores.astype(float)
    repeated = frame.duplicated(["model", "dataset", "metric"])
    if repeated.any():
        row = int(repeated.to_numpy().argmax())
        raise ValidationError(f"{path}: line {_line(row, len(header_lines))}: a second score for "
                              f"{tuple(frame.iloc[row][['model', 'dataset', 'metric']])}")
    frame.attrs = {"source": "\n".join(header_lines), "file": str(path)}
    return frame.reset_index(drop=True)


def _header_lines(path: os.PathLike) -> list[str]:
    """The file's leading ``#`` lines, without the ``#``."""
    lines = []
    with open(path, encoding="utf-8") as file:
        for line in file:
            if not line.startswith("#"):
                break
            lines.append(line[1:].strip())
    return lines


def _line(row: int, n_header: int) -> int:
    """The file's line number (1-based) of data row ``row``, after the header and column names."""
    return n_header + 2 + row


def _zoo_names() -> dict[str, str]:
    """``{study's network name: zoo name}`` over the zoo's registered models."""
    from workbench.models import list_models, model_study_name

    return {study: name for name in list_models() if (study := model_study_name(name))}


def _mapped(column, mapping: dict, path, field: str, n_header: int, expected: str):
    """``column`` with each value mapped through ``mapping``; the first unknown value raises."""
    unknown = ~column.isin(list(mapping))
    if unknown.any():
        row = int(unknown.to_numpy().argmax())
        value = column.iloc[row]
        raise ValidationError(f"{path}: line {_line(row, n_header)}: {field} {value!r} is not known"
                              f"{did_you_mean(value, mapping)}; expected {expected}")
    return column.map(mapping)
