"""QSAM: quantisation-steps-aware classification of JPEG-compressed images (Ma et al. 2023).

Stage 1 trains shared convolutions with one batch-norm branch per base JPEG quality, each
chunk of a mixed-quality batch weighted by its quantisation-aware confidence (QAC); stage 2
freezes that backbone and meta-learns (MLDG) an MLP that reads each file's quantisation tables
and mixes the branches. See README.md in this folder and :mod:`.train`.
"""

from pathlib import Path

from workbench.methods import MethodSpec, register_method
from workbench.methods.qsam.jpeg import QuantTables, qac, quality_tables, read_quantization
from workbench.methods.qsam.train import QSAMConfig, evaluate, predict_files, train

register_method(MethodSpec(
    name="qsam",
    paper=("Ma, Peng, Chen, Zhao, Dong & Tian 2023, 'Picking Up Quantization Steps for Compressed Image "
           "Classification' (QSAM), IEEE TCSVT, arXiv 2304.10714"),
    summary="JPEG-quality-aware classification: QAC-weighted multi-BN training, table-driven BN mixing",
    config_cls=QSAMConfig,
    train=train,
    evaluate=evaluate,
    presets_dir=Path(__file__).parent / "presets",
    notebook="methods/qsam.ipynb",
))

__all__ = ["QSAMConfig", "QuantTables", "evaluate", "predict_files", "qac", "quality_tables",
           "read_quantization", "train"]
