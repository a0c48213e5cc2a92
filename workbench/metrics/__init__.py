"""Similarity metrics between model features and neural responses.

Every metric is a similarity (higher is better) computed from the stimulus-by-stimulus Gram
statistics of the features, so a layer never has to be held in memory: pass a
:class:`GramStats` accumulated chunk by chunk instead of an array. See ``README.md`` here.
"""

from workbench.metrics.cka import cka
from workbench.metrics.compare import DEFAULT_METRICS, CompareResult, MetricWarning, compare
from workbench.metrics.permutation import null_summary, permutation_null, stimulus_permutations
from workbench.metrics.preprocessing import zscore_features
from workbench.metrics.registry import MetricInfo, get_metric, list_metrics
from workbench.metrics.regression import tsvd_regression
from workbench.metrics.rsa import compare_rdms, rdm, rsa
from workbench.metrics.stats import GramStats
from workbench.metrics.svcca import RankDeficiencyWarning, SvccaScore, svcca

__all__ = [
    "DEFAULT_METRICS",
    "CompareResult",
    "GramStats",
    "MetricInfo",
    "MetricWarning",
    "RankDeficiencyWarning",
    "SvccaScore",
    "cka",
    "compare",
    "compare_rdms",
    "get_metric",
    "list_metrics",
    "null_summary",
    "permutation_null",
    "rdm",
    "rsa",
    "stimulus_permutations",
    "svcca",
    "tsvd_regression",
    "zscore_features",
]
