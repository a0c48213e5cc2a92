"""LATS: soft-threshold pruning with learning-rate-adapted threshold schedules.

Chen, Ma, Fang, Zheng, Yu & Tian, *A Unified Framework for Soft Threshold Pruning*, ICLR 2023
(arXiv 2302.13019); reference code Yanqi-Chen/LATS.
"""

from workbench.methods.lats.pruning import (
    FixedMask,
    SoftThreshold,
    SparsityReport,
    apply_magnitude_mask,
    apply_soft_threshold,
    export_effective_state_dict,
    get_threshold,
    magnitude_masks,
    prunable_layers,
    remove_pruning,
    set_threshold,
    soft_threshold,
    sparsity_report,
)
from workbench.methods.lats.schedules import (
    SCHEDULES,
    ista_thresholds,
    lats_epoch_weights,
    lats_threshold,
    linear_threshold,
    pgh_threshold,
    slats_threshold,
    threshold_schedule,
)

from pathlib import Path

from workbench.methods import MethodSpec, register_method
from workbench.methods.lats.train import LATSConfig, PruningCallback, evaluate, train

register_method(MethodSpec(
    name="lats",
    paper="Chen, Ma, Fang, Zheng, Yu & Tian 2023, A Unified Framework for Soft Threshold Pruning, "
          "ICLR 2023, arXiv:2302.13019",
    summary="soft-threshold pruning with a learning-rate-adapted threshold schedule (LATS/S-LATS; "
            "linear-ramp and one-shot magnitude baselines)",
    config_cls=LATSConfig,
    train=train,
    evaluate=evaluate,
    presets_dir=Path(__file__).parent / "presets",
    notebook="methods/lats.ipynb",
))
