"""SAVC: semantic-aware virtual contrastive learning for few-shot class-incremental learning.

Song, Zhao, Shi, Peng, Yuan & Tian, *Learning with Fantasy: Semantic-Aware Virtual Contrastive
Constraint for Few-Shot Class-Incremental Learning*, CVPR 2023 (arXiv 2304.00426); reference
code zysong0113/SAVC. See README.md beside this file.
"""

from pathlib import Path

from workbench.methods import MethodSpec, register_method
from workbench.methods.savc.analysis import embed_test_images, separation_rsa
from workbench.methods.savc.contrastive import MomentumQueue, random_resized_crops, sup_contrastive_loss
from workbench.methods.savc.fscil import (
    FSCILSplit,
    make_split,
    read_split,
    run_sessions,
    session_accuracy,
    set_prototypes,
    view_features,
    write_split,
)
from workbench.methods.savc.train import SAVCConfig, evaluate, train

register_method(MethodSpec(
    name="savc",
    paper="Song, Zhao, Shi, Peng, Yuan & Tian 2023, Learning with Fantasy: Semantic-Aware Virtual Contrastive "
          "Constraint for Few-Shot Class-Incremental Learning, CVPR 2023, arXiv:2304.00426",
    summary="few-shot class-incremental learning: virtual classes from transformations + MoCo-style supervised "
            "contrast in the base session, prototypes after (CE and naive-SCL baselines)",
    config_cls=SAVCConfig,
    train=train,
    evaluate=evaluate,
    presets_dir=Path(__file__).parent / "presets",
    notebook="methods/savc.ipynb",
))

__all__ = ["FSCILSplit", "MomentumQueue", "SAVCConfig", "embed_test_images", "evaluate", "make_split",
           "random_resized_crops", "read_split", "run_sessions", "separation_rsa", "session_accuracy",
           "set_prototypes", "sup_contrastive_loss", "train", "view_features", "write_split"]
