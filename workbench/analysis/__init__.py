"""Sweeps and the study's statistics.

- :class:`Protocol`: every analysis choice of a sweep, declared in one frozen object.
- :func:`sweep`: scores of models x layers x regions x metrics, as one xarray Dataset.
- :func:`score_layer`: one layer against one region, exactly as the sweep scores that cell.
- :mod:`~workbench.analysis.cells`: one cell (a layer against a region) scored under the
  protocol; the sweep, :func:`score_layer` and
  :func:`~workbench.analysis.model_comparison.compare_models` all score through it.
- :mod:`~workbench.analysis.scores`: the scores schema; build, merge, validate, tables.
- :mod:`~workbench.analysis.results`: a run's result files, ``scores.nc``/``scores.csv``
  (:func:`save_scores`, :func:`load_scores`) and ``rdms.nc`` (:func:`save_rdms`, :func:`load_rdms`).
- :mod:`~workbench.analysis.statistics`: best layer, model and family scores, ceiling
  normalisation, rank agreement between metrics, paired SEW-ResNet vs ResNet comparison.
- :mod:`~workbench.analysis.resampling`: the only bootstrap code (subsamples over stimuli).
- :mod:`~workbench.analysis.nulls`: the chance level of every score (stimulus-permutation
  nulls) and :func:`chance_corrected`.
"""

from workbench.analysis.protocol import Protocol
from workbench.analysis.layer import LayerScores, score_layer
from workbench.analysis.nulls import chance_corrected
from workbench.analysis.resampling import resample, subsample_indices, subsample_interval, take_rdm, take_stimuli
from workbench.analysis.results import load_rdms, load_scores, save_rdms, save_scores
from workbench.analysis.scores import (
    merge_scores,
    new_scores,
    region_label,
    to_frame,
    unscored_cells,
    unscored_summary,
    validate_scores,
)
from workbench.analysis.statistics import (
    best_layer,
    dataset_scores,
    family_means,
    model_scores,
    normalize_by_ceiling,
    paired_comparison,
    rank_agreement,
    sew_resnet_pairs,
    t_interval,
)
from workbench.analysis.sweeps import SWEEP_METRICS, SweepSettings, compute_unit, sweep

__all__ = [
    "LayerScores",
    "Protocol",
    "SWEEP_METRICS",
    "SweepSettings",
    "best_layer",
    "chance_corrected",
    "compute_unit",
    "dataset_scores",
    "family_means",
    "load_rdms",
    "load_scores",
    "merge_scores",
    "model_scores",
    "new_scores",
    "normalize_by_ceiling",
    "paired_comparison",
    "rank_agreement",
    "region_label",
    "resample",
    "save_rdms",
    "save_scores",
    "score_layer",
    "sew_resnet_pairs",
    "subsample_indices",
    "sweep",
    "subsample_interval",
    "t_interval",
    "take_rdm",
    "take_stimuli",
    "to_frame",
    "unscored_cells",
    "unscored_summary",
    "validate_scores",
]
