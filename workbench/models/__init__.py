"""The model zoo: spiking networks, CNNs and vision transformers with declared analysis layers.

Examples
--------
>>> from workbench.models import create, list_models
>>> list_models(family="snn")  # doctest: +SKIP
>>> model = create("sew_resnet18", weights=None, seed=0)  # doctest: +SKIP
>>> model.layers[:3]  # doctest: +SKIP
('sn1', 'maxpool', 'layer1.0')
"""

from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import (
    FAMILIES,
    Architecture,
    ModelInfo,
    ModelWrapper,
    create,
    list_models,
    model_description,
    model_family,
    model_info,
    register_model,
)
from workbench.models.weights import load_checkpoint, state_dict_hash
from workbench.models.custom import wrap_model
from workbench.models.resolve import check_model_names

__all__ = [
    "FAMILIES",
    "Architecture",
    "ModelInfo",
    "ModelWrapper",
    "Preprocessing",
    "check_model_names",
    "create",
    "list_models",
    "load_checkpoint",
    "model_description",
    "model_family",
    "model_info",
    "register_model",
    "state_dict_hash",
    "wrap_model",
]
