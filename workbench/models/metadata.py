"""What is known about a zoo model without its weights: size, ImageNet accuracy, branch structure.

:func:`model_metadata` reads, for a registered name, nothing that needs a download:

- torchvision's networks (the study's torchvision CNNs and ViTs): their ``IMAGENET1K_V1``
  weights' published metadata, ``meta["num_params"]``, ``meta["_metrics"]["ImageNet-1K"]["acc@1"]``
  and ``meta["_ops"]`` (GFLOPS as torchvision reports them: multiply-accumulates, e.g. 4.09
  for ResNet-50);
- every other network (timm's, the SNNs, CORnets): its parameters counted on the architecture
  built on torch's ``meta`` device (no memory, no weights); top-1 and GFLOPS are NaN, since
  timm's ``pretrained_cfg`` publishes neither and the repository holds no accuracy of the
  study's own SNNs;
- the branch structure, declared here (:data:`MULTI_BRANCH`): ``"multi"`` for networks whose
  blocks run parallel convolution paths and merge them (Inception modules; ResNeXt's grouped
  convolutions, Xie et al. 2017's equivalent form of aggregated parallel branches),
  ``"single"`` otherwise. Identity shortcuts (ResNets, DenseNets) do not count as branches.
  The study argues that multi-branch CNNs come closer to the mouse visual cortex, whose
  areas form parallel pathways.

Examples
--------
>>> from workbench.models import model_metadata
>>> model_metadata("resnet18").top1  # doctest: +SKIP
69.758
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

#: Zoo networks whose blocks run parallel convolution paths (see the module's docstring).
MULTI_BRANCH = frozenset({
    "googlenet", "inception_v3", "inceptionresnetv2",  # Inception modules
    "resnext50_32x4d", "resnext101_32x8d", "sew_resnext11", "sew_resnext20",  # grouped convolutions
})
BRANCHES = ("single", "multi")


@dataclass(frozen=True)
class ModelMetadata:
    """Size, accuracy and branch structure of a zoo model.

    Attributes
    ----------
    name : str
        The zoo name.
    params : float
        Number of parameters.
    top1 : float
        ImageNet-1K top-1 accuracy of the published weights, in percent; NaN where unpublished.
    gflops : float
        Operations per 224 px (or the network's input size) image, in GFLOPS as torchvision
        reports them; NaN where unpublished.
    branches : str
        ``"multi"`` or ``"single"`` (:data:`MULTI_BRANCH`).
    source : str
        Where ``params``, ``top1`` and ``gflops`` come from.
    """

    name: str
    params: float
    top1: float
    gflops: float
    branches: str
    source: str


@lru_cache(maxsize=None)
def model_metadata(name: str) -> ModelMetadata:
    """The metadata of registered model ``name``, read without weights or downloads.

    Raises
    ------
    ValidationError
        ``name`` is not a registered model (the message lists close names).
    """
    from torchvision import models as tvm

    from workbench.models.registry import light_architecture, model_entry

    name = model_entry(name).name
    branches = "multi" if name in MULTI_BRANCH else "single"
    if name in tvm.list_models():
        meta = tvm.get_model_weights(name).IMAGENET1K_V1.meta
        return ModelMetadata(name, float(meta["num_params"]), float(meta["_metrics"]["ImageNet-1K"]["acc@1"]),
                             float(meta["_ops"]), branches, "torchvision IMAGENET1K_V1 weights' metadata")
    module = light_architecture(name).module
    params = float(sum(p.numel() for p in module.parameters()))
    return ModelMetadata(name, params, math.nan, math.nan, branches,
                         "parameters counted on the architecture (meta device); no published top-1 or GFLOPS")
