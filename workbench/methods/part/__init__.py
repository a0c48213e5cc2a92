"""PART: part-guided relational transformers for fine-grained recognition, global-only at test time.

Zhao, Li, Chen & Tian, *Part-Guided Relational Transformers for Fine-Grained Visual
Recognition*, IEEE TIP 2021 (arXiv 2212.13685). The network is :mod:`workbench.models.part`
(``part_net``); training, the baseline and evaluation are in :mod:`.train`, the datasets in
:mod:`.data`, the analyses (part hit rate, part pictures, layer-wise RSA) in :mod:`.analysis`.
"""

from pathlib import Path

from workbench.methods import MethodSpec, register_method
from workbench.methods.part.train import PARTConfig, evaluate, train

register_method(MethodSpec(
    name="part",
    paper="Zhao, Li, Chen & Tian 2021, Part-Guided Relational Transformers for Fine-Grained Visual Recognition, "
          "IEEE TIP (arXiv 2212.13685)",
    summary="CNN + global transformer + part transformers on discovered parts; global branch only at test time",
    config_cls=PARTConfig,
    train=train,
    evaluate=evaluate,
    presets_dir=Path(__file__).parent / "presets",
    notebook="methods/part.ipynb",
))
