"""Model metadata read without weights: torchvision's published numbers, counted parameters, branches."""

import math

import pytest
from torchvision import models as tvm

from workbench.errors import ValidationError
from workbench.models import model_metadata


def test_torchvision_networks_give_their_published_metadata():
    meta = tvm.ResNet50_Weights.IMAGENET1K_V1.meta
    resnet = model_metadata("resnet50")
    assert (resnet.params, resnet.top1, resnet.gflops) == (meta["num_params"], meta["_metrics"]["ImageNet-1K"]["acc@1"],
                                                           meta["_ops"])
    assert resnet.branches == "single" and "torchvision" in resnet.source
    assert model_metadata("googlenet").branches == "multi"


def test_other_networks_count_their_parameters_and_publish_no_accuracy():
    sew = model_metadata("sew_resnet18")  # SEW-ResNet's spiking blocks add no parameter to ResNet-18's
    assert sew.params == tvm.ResNet18_Weights.IMAGENET1K_V1.meta["num_params"]
    assert math.isnan(sew.top1) and math.isnan(sew.gflops) and "meta device" in sew.source
    assert model_metadata("sew_resnext11").branches == "multi"


def test_an_unknown_name_is_refused():
    with pytest.raises(ValidationError, match="unknown model 'resnet19'"):
        model_metadata("resnet19")
