"""The model zoo: spiking networks, CNNs and vision transformers with declared analysis layers.

Examples
--------
>>> from workbench.models import create, list_models
>>> list_models(family="snn")  # doctest: +SKIP
>>> model = create("sew_resnet18", weights=None, seed=0)  # doctest: +SKIP
>>> model.layers[:3]  # doctest: +SKIP
('sn1', 'maxpool', 'layer1.0')
"""

from workbench.models.layer_spec import LAYER_SPEC_GRAMMAR, LayerSpec, parse_layer_spec
from workbench.models.metadata import ModelMetadata, model_metadata
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import (
    FAMILIES,
    Architecture,
    ModelInfo,
    ModelWrapper,
    create,
    list_models,
    model_aliases,
    model_description,
    model_family,
    model_info,
    model_study_name,
    register_model,
)
from workbench.models.study_layers import (
    StudyLayer,
    study_family,
    study_input_size,
    study_layers,
    study_models,
    study_source,
    study_specs,
)
from workbench.models.weights import load_checkpoint, state_dict_hash
from workbench.models.custom import wrap_model
from workbench.models.resolve import check_model_names

__all__ = [
    "FAMILIES",
    "LAYER_SPEC_GRAMMAR",
    "Architecture",
    "LayerSpec",
    "ModelInfo",
    "ModelMetadata",
    "ModelWrapper",
    "Preprocessing",
    "StudyLayer",
    "check_model_names",
    "create",
    "list_models",
    "load_checkpoint",
    "model_aliases",
    "model_description",
    "model_family",
    "model_info",
    "model_metadata",
    "model_study_name",
    "parse_layer_spec",
    "register_model",
    "state_dict_hash",
    "study_family",
    "study_input_size",
    "study_layers",
    "study_models",
    "study_source",
    "study_specs",
    "wrap_model",
]
