"""Any timm or torchvision classification network by name: ``timm:<name>``, ``torchvision:<name>``.

``workbench score --models timm:convnext_nano torchvision:regnet_y_400mf`` (or
``workbench.models.create("timm:convnext_nano")``) builds the network with default analysis
layers and the network's own preprocessing, the way THINGSvision names its models:

- ``timm:<name>`` or ``timm:<name>.<tag>``: the modules of its ``feature_info`` (the stages
  of a CNN, the blocks of a ViT; a transformer's stages are opened into their blocks), and the
  pretrained config's input size, mean, std, interpolation and centre crop. Models of timm's
  transformer modules (:data:`TIMM_VIT_MODULES`) are family ``"vit"``, the others ``"cnn"``.
  ``pretrained=True`` loads the default tag's file (or the named tag's) from the Hugging Face
  hub, kept in torch hub's checkpoint folder as ``<name>.<tag>.safetensors``.
- ``torchvision:<name>``: the children of ``features`` (VGG, MobileNet, EfficientNet, ConvNeXt,
  DenseNet, Swin ...), the blocks of a ResNet-like network's stages (``layer1..4``; RegNet's
  ``trunk_output``), the encoder blocks of a ViT; preprocessing from the ``DEFAULT`` weights'
  transforms, which ``pretrained=True`` loads.

Names are checked without building anything; an unknown one gets close matches from
``timm.list_models()`` / ``torchvision.models.list_models()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from workbench.errors import ValidationError
from workbench.models._layers import children
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, ModelEntry
from workbench.models.weights import WeightsSource, ensure_hub_file, fetched
from workbench.validation import did_you_mean

HUB_PREFIXES = ("timm", "torchvision")
#: timm model modules whose networks count as vision transformers (family "vit").
TIMM_VIT_MODULES = frozenset({
    "beit", "cait", "coat", "convit", "crossvit", "davit", "deit", "efficientformer",
    "efficientformer_v2", "eva", "gcvit", "hiera", "hieradet_sam2", "levit", "maxxvit", "mobilevit",
    "mvitv2", "naflexvit", "nest", "pit", "pvt_v2", "swin_transformer", "swin_transformer_v2",
    "swin_transformer_v2_cr", "tiny_vit", "tnt", "twins", "vision_transformer",
    "vision_transformer_hybrid", "vision_transformer_relpos", "vision_transformer_sam", "vitamin",
    "volo", "xcit",
})
#: timm modules whose blocks return a tuple: the element that carries the network's tokens.
TIMM_TUPLE_BLOCKS = {"tnt": ":out[1]"}
#: Children that are classifiers or training-only branches, never default analysis layers.
_HEADS = frozenset({"fc", "classifier", "head", "heads", "dropout", "aux1", "aux2", "AuxLogits"})
_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
_ENTRIES: dict[str, ModelEntry] = {}


def is_hub_name(name: str) -> bool:
    """Whether ``name`` has the ``timm:<name>`` or ``torchvision:<name>`` form."""
    prefix, sep, _ = str(name).partition(":")
    return bool(sep) and prefix in HUB_PREFIXES


def hub_entry(name: str) -> ModelEntry:
    """The registry entry of a ``timm:`` or ``torchvision:`` name (checked, nothing built).

    Raises
    ------
    ValidationError
        The library has no such model; the message names close matches.
    """
    if name not in _ENTRIES:
        prefix, _, model = name.partition(":")
        make = _timm_entry if prefix == "timm" else _torchvision_entry
        family, factory, description = make(name, model)
        _ENTRIES[name] = ModelEntry(name, family, factory, description)
    return _ENTRIES[name]


# --- timm -------------------------------------------------------------------------------------


def timm_weights(arch: str, tag: str) -> WeightsSource:
    """Where the weights of timm model ``arch`` with pretrained tag ``tag`` come from (HF hub)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(f"{arch}.{tag}")
    if cfg is None or not cfg.hf_hub_id:
        raise ValidationError(f"timm has no published weights {arch}.{tag} on the Hugging Face hub")
    return hf_hub_weights(cfg.hf_hub_id, f"{arch}.{tag}", cfg.hf_hub_filename or "model.safetensors")


def hf_hub_weights(hub_id: str, local_name: str, filename: str = "model.safetensors") -> WeightsSource:
    """File ``filename`` of Hugging Face repository ``hub_id``, kept as ``<local_name>.<suffix>``."""
    return WeightsSource(filename=f"{local_name}.{filename.rsplit('.', 1)[-1]}",
                         url=f"https://huggingface.co/{hub_id}/resolve/main/{filename}")


def build_timm(arch: str, tag: str, weights_file=None) -> nn.Module:
    """timm model ``arch`` with tag ``tag``'s config: random weights, or those of ``weights_file``."""
    import timm

    if weights_file is None:
        return timm.create_model(f"{arch}.{tag}", pretrained=False)
    return timm.create_model(f"{arch}.{tag}", pretrained=True,
                             pretrained_cfg_overlay={"file": str(weights_file)})


def timm_preprocessing(arch: str, tag: str, *, crop: bool, input_size: int | None = None) -> Preprocessing:
    """Preprocessing from timm's pretrained config of ``arch.tag``.

    Mean, std and interpolation come from the config; ``input_size`` defaults to the config's
    evaluation size (its test size where it has one). ``crop=True`` adds the config's centre
    crop (shorter side resized to ``input_size / crop_pct``); ``crop=False`` resizes the whole
    image, as the reference study did.
    """
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(f"{arch}.{tag}")
    size = int(input_size or (cfg.test_input_size or cfg.input_size)[-1])
    crop_pct = cfg.test_crop_pct if cfg.test_input_size and cfg.test_crop_pct else cfg.crop_pct
    resize = None
    if crop and cfg.crop_mode == "center" and crop_pct and crop_pct < 1:
        resize = int(math.floor(size / crop_pct))
    interpolation = cfg.interpolation if cfg.interpolation in _INTERPOLATIONS else "bicubic"
    return Preprocessing(size, mean=tuple(cfg.mean), std=tuple(cfg.std), interpolation=interpolation,
                         resize_size=resize)


def timm_family(arch: str) -> str:
    """``"vit"`` for a model of timm's transformer modules, else ``"cnn"``."""
    from timm.models import is_model_in_modules

    return "vit" if is_model_in_modules(arch, TIMM_VIT_MODULES) else "cnn"


def timm_feature_layers(net: nn.Module, arch: str, family: str) -> tuple[str, ...]:
    """Default layers of a timm network: its ``feature_info`` modules, a ViT's stages opened into blocks."""
    from timm.models import is_model_in_modules

    modules = dict(net.named_modules())
    names = list(dict.fromkeys(info["module"] for info in getattr(net, "feature_info", None) or ()
                               if info.get("module") in modules))
    if family == "vit":
        names = [block for name in names
                 for block in (children(net, f"{name}.blocks") if f"{name}.blocks" in modules else [name])]
    if not names:
        raise ValidationError(f"timm model {arch!r} declares no feature_info modules; wrap it with "
                              "workbench.models.wrap_model(timm.create_model(...), layers=[...])")
    suffix = next((s for m, s in TIMM_TUPLE_BLOCKS.items() if is_model_in_modules(arch, [m])), "")
    return tuple(f"{name}{suffix}" for name in names)


def _timm_entry(name: str, spec: str) -> tuple[str, Callable, str]:
    import timm
    from timm.models import get_pretrained_cfg

    arch, _, tag = spec.partition(".")
    known = timm.list_models()
    if arch not in known:
        raise ValidationError(f"unknown model {name!r}: timm {timm.__version__} has no model {arch!r}"
                              f"{did_you_mean(arch, known)} (`timm.list_models()` lists them)")
    tag = tag or getattr(get_pretrained_cfg(arch), "tag", "")
    tags = timm.list_pretrained(f"{arch}.*")
    if f"{arch}.{tag}" not in tags:
        raise ValidationError(f"unknown model {name!r}: timm has no pretrained tag {tag!r} for {arch!r}"
                              f"{did_you_mean(f'{arch}.{tag}', tags)}")
    family = timm_family(arch)

    def factory(pretrained: bool = False) -> Architecture:
        source = timm_weights(arch, tag) if pretrained else None
        net = build_timm(arch, tag, source and ensure_hub_file(source.url, filename=source.filename))
        channels_last = getattr(net, "output_fmt", "NCHW") == "NHWC"
        layers = timm_feature_layers(net, arch, family)
        return Architecture(net, layers, timm_preprocessing(arch, tag, crop=True),
                            channels_last=frozenset(layers if channels_last else ()))

    return family, factory, f"timm {arch}.{tag}: its feature_info modules, its pretrained config's transform"


# --- torchvision ------------------------------------------------------------------------------

_TORCHVISION_VIT = ("vit_", "swin_", "maxvit")


def torchvision_layers(net: nn.Module, name: str) -> tuple[tuple[str, ...], frozenset]:
    """Default layers of a torchvision classifier and those of them that are (N, H, W, C)."""
    modules = dict(net.named_modules())
    if "encoder.layers" in modules:  # ViT
        return tuple(children(net, "encoder.layers")), frozenset()
    for container in ("features", "blocks", "layers"):  # most CNNs and Swin; MaxViT; MNASNet
        if container in modules:
            layers = tuple(children(net, container))
            return layers, frozenset(layers if name.startswith("swin_") else ())
    stages = [s for s in ("layer1", "layer2", "layer3", "layer4") if s in modules]
    if not stages and "trunk_output" in modules:  # RegNet
        stages = children(net, "trunk_output")
    if stages:
        return tuple(block for stage in stages for block in children(net, stage)), frozenset()
    return tuple(child for child, module in net.named_children()
                 if child not in _HEADS and not isinstance(module, (nn.Dropout, nn.Flatten))), frozenset()


def _torchvision_preprocessing(weights) -> Preprocessing:
    transform = weights.transforms()
    return Preprocessing(int(transform.crop_size[0]), mean=tuple(transform.mean),
                         std=tuple(transform.std), interpolation=transform.interpolation.value,
                         resize_size=int(transform.resize_size[0]))


def _torchvision_entry(name: str, model: str) -> tuple[str, Callable, str]:
    import torchvision
    from torchvision import models as tvm

    known = tvm.list_models(module=tvm)
    if model not in known:
        raise ValidationError(f"unknown model {name!r}: torchvision {torchvision.__version__} has no "
                              f"classification model {model!r}{did_you_mean(model, known)} "
                              "(`torchvision.models.list_models()` lists them)")
    weights = tvm.get_model_weights(model).DEFAULT
    family = "vit" if model.startswith(_TORCHVISION_VIT) else "cnn"

    def factory(pretrained: bool = False) -> Architecture:
        # RegNet computes its widths with tensors: on the meta device it raises
        # NotImplementedError, and registry.light_architecture builds it on the CPU instead
        net = tvm.get_model(model, weights=fetched(weights) if pretrained else None)
        layers, channels_last = torchvision_layers(net, model)
        return Architecture(net, layers, _torchvision_preprocessing(weights), channels_last=channels_last)

    return family, factory, f"torchvision {model} ({weights}): default layers, its weights' transforms"
