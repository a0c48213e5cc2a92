"""DST: dual-stream training of full-spike SEW-ResNets with a detachable auxiliary accumulation pathway.

Chen, Peng, Li & Tian 2023, *Training Full Spike Neural Networks via Auxiliary Accumulation
Pathway*, arXiv:2301.11929; reference code iCGY96/AAP (``imagenet/dsnn.py``,
``imagenet/train.py``). The architectures (FSNN, DSNN) are in :mod:`workbench.models.fsnn`.
"""

from pathlib import Path

from workbench.methods import MethodSpec, register_method
from workbench.methods.dst.train import (
    BASELINE_DIR,
    DSNN_DIR,
    DSTConfig,
    GradientNormCallback,
    build_dst_network,
    dual_evaluate,
    dual_step,
    evaluate,
    export_fsnn,
    gradient_groups,
    gradient_norm,
    train,
)

register_method(MethodSpec(
    name="dst",
    paper="Chen, Peng, Li & Tian 2023, Training Full Spike Neural Networks via Auxiliary Accumulation "
          "Pathway, arXiv:2301.11929",
    summary="full-spike SEW-ResNet (IAND/AND/OR/XOR) trained with an auxiliary accumulation pathway "
            "removed at test time; spike-only baseline",
    config_cls=DSTConfig,
    train=train,
    evaluate=evaluate,
    presets_dir=Path(__file__).parent / "presets",
    notebook="methods/dst.ipynb",
))

__all__ = ["BASELINE_DIR", "DSNN_DIR", "DSTConfig", "GradientNormCallback", "build_dst_network", "dual_evaluate",
           "dual_step", "evaluate", "export_fsnn", "gradient_groups", "gradient_norm", "train"]
