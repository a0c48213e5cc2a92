"""The shared training framework: configs, one loop, run directories, checkpoints, torchrun.

A method (``workbench.methods.<name>``) supplies a config class, presets and a ``train``
function that builds a :class:`Network` and calls :func:`fit`; :func:`train` (``workbench
train``) owns the run directory and its model card. See docs/training.md.
"""

from workbench.training.config import EXECUTION_FIELDS, TrainConfig, config_hash
from workbench.training.loop import (
    Callback,
    FitResult,
    TrainState,
    classification_step,
    evaluate_classifier,
    fit,
)
from workbench.training.model_card import is_run_directory, read_card
from workbench.training.network import Network, build_network
from workbench.training.rundir import RunDir, list_snapshots, read_metrics
from workbench.training.runner import TrainOutcome, resolve_config, train

__all__ = [
    "EXECUTION_FIELDS", "Callback", "FitResult", "Network", "RunDir", "TrainConfig", "TrainOutcome",
    "TrainState", "build_network", "classification_step", "config_hash", "evaluate_classifier", "fit",
    "is_run_directory", "list_snapshots", "read_card", "read_metrics", "resolve_config", "train",
]
