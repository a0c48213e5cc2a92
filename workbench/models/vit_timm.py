"""The study's 22 timm vision transformers, under the study's names, on the study's layers.

Huang et al. 2023 built these with timm 0.6 (``timm.create_model(name, pretrained=True)``) and
hooked the layers of its ``model_layers/<name>.json`` (Grasshlw/SNN-Neural-Similarity-Static;
the last entry, the logits, is never scored). Here they are built with timm 1.0, whose module
tree differs for some families; each study position is mapped to the timm 1.0 module whose
output equals what the study hooked:

- DeiT (distilled), ConViT, CaiT: ``blocks[i]`` -> ``blocks.i`` (CaiT also ``norm``).
- TNT-S: the study's network is timm 1.0's ``tnt_s_legacy_patch16_224`` (timm 1.0's
  ``tnt_s_patch16_224`` is a re-implementation with other weights); its blocks return
  ``(pixel tokens, patch tokens)`` and the study kept the patch tokens: ``blocks.i:out[1]``.
- PiT: ``transformers[s].blocks[j]`` -> ``transformers.s.blocks.j`` (unchanged).
- LeViT: timm 0.6 had one flat ``blocks`` list (attention, MLP, ..., subsample, MLP, ...); the
  study hooked every MLP residual, i.e. the output of each attention + MLP pair, now
  ``stages.k.blocks.j``, and the MLP after each subsampling, now the end of
  ``stages.k.downsample`` (k >= 1).
- Swin: timm 0.6 ended stage i with its patch merging (``layers[i].downsample``); timm 1.0
  opens stage i + 1 with it, so the study's ``layers[i].downsample`` is
  ``layers.{i+1}.downsample``. The study's ``avgpool`` (mean of the final norm's tokens) is
  ``head.global_pool``. timm 1.0's Swin keeps (H, W, C) maps where timm 0.6 had (H*W, C)
  tokens in the same row-major order, so each layer holds the study's numbers, as
  (56, 56, 96) for its [3136, 96] (declared channels-last), and (C,) for its pooled (C, 1).

Weights: the timm 1.0 tag of the file timm 0.6 loaded by default (:data:`STUDY_VITS`), from
the Hugging Face hub (``timm/<name>.<tag>``), kept in torch hub's checkpoint folder as
``<name>.<tag>.safetensors``. Preprocessing: 224 px, the tag's mean, std and interpolation;
the whole image is resized (no crop), as in the study.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import nn

from workbench.models._layers import children
from workbench.models.hub import build_timm, hf_hub_weights, timm_preprocessing
from workbench.models.registry import Architecture, register_model
from workbench.models.weights import declare_weights, published_weights


def _blocks(net: nn.Module) -> tuple[str, ...]:
    return tuple(children(net, "blocks"))


def _blocks_and_norm(net: nn.Module) -> tuple[str, ...]:
    return (*children(net, "blocks"), "norm")


def _patch_tokens(net: nn.Module) -> tuple[str, ...]:
    return tuple(f"{block}:out[1]" for block in children(net, "blocks"))


def _pit(net: nn.Module) -> tuple[str, ...]:
    stages = children(net, "transformers")
    return tuple(block for stage in stages for block in children(net, f"{stage}.blocks"))


def _staged(net: nn.Module, stages: str) -> list[str]:
    """Each stage's blocks, preceded (from the second stage on) by its downsampling."""
    layers = []
    for k, stage in enumerate(children(net, stages)):
        layers += ([f"{stage}.downsample"] if k else []) + children(net, f"{stage}.blocks")
    return layers


def _levit(net: nn.Module) -> tuple[str, ...]:
    return tuple(_staged(net, "stages"))


def _swin(net: nn.Module) -> tuple[str, ...]:
    return (*_staged(net, "layers"), "head.global_pool")


class StudyViT(NamedTuple):
    """One row of the table: the study's name, timm 1.0's tag, the layers, the paper, timm's name."""

    name: str
    tag: str
    layers: Callable[[nn.Module], tuple[str, ...]]
    title: str
    timm_name: str = ""  # timm 1.0's model when it is not ``name``

    @property
    def arch(self) -> str:
        return self.timm_name or self.name


#: The study's timm ViTs (R2's ``vit_list`` after the 4 torchvision ViTs), in its order.
STUDY_VITS = tuple(StudyViT(*row) for row in (
    ("deit_tiny_distilled_patch16_224", "fb_in1k", _blocks, "DeiT-Ti distilled (Touvron et al. 2021)"),
    ("deit_small_distilled_patch16_224", "fb_in1k", _blocks, "DeiT-S distilled (Touvron et al. 2021)"),
    ("deit_base_distilled_patch16_224", "fb_in1k", _blocks, "DeiT-B distilled (Touvron et al. 2021)"),
    ("tnt_s_patch16_224", "in1k", _patch_tokens, "TNT-S (Han et al. 2021)", "tnt_s_legacy_patch16_224"),
    ("convit_tiny", "fb_in1k", _blocks, "ConViT-Ti (d'Ascoli et al. 2021)"),
    ("convit_small", "fb_in1k", _blocks, "ConViT-S (d'Ascoli et al. 2021)"),
    ("convit_base", "fb_in1k", _blocks, "ConViT-B (d'Ascoli et al. 2021)"),
    ("pit_ti_224", "in1k", _pit, "PiT-Ti (Heo et al. 2021)"),
    ("pit_xs_224", "in1k", _pit, "PiT-XS (Heo et al. 2021)"),
    ("pit_s_224", "in1k", _pit, "PiT-S (Heo et al. 2021)"),
    ("pit_b_224", "in1k", _pit, "PiT-B (Heo et al. 2021)"),
    ("cait_xxs24_224", "fb_dist_in1k", _blocks_and_norm, "CaiT-XXS24 (Touvron et al. 2021)"),
    ("cait_s24_224", "fb_dist_in1k", _blocks_and_norm, "CaiT-S24 (Touvron et al. 2021)"),
    ("levit_128s", "fb_dist_in1k", _levit, "LeViT-128S (Graham et al. 2021)"),
    ("levit_128", "fb_dist_in1k", _levit, "LeViT-128 (Graham et al. 2021)"),
    ("levit_192", "fb_dist_in1k", _levit, "LeViT-192 (Graham et al. 2021)"),
    ("levit_256", "fb_dist_in1k", _levit, "LeViT-256 (Graham et al. 2021)"),
    ("levit_384", "fb_dist_in1k", _levit, "LeViT-384 (Graham et al. 2021)"),
    ("swin_tiny_patch4_window7_224", "ms_in1k", _swin, "Swin-T (Liu et al. 2021)"),
    ("swin_small_patch4_window7_224", "ms_in1k", _swin, "Swin-S (Liu et al. 2021)"),
    ("swin_base_patch4_window7_224", "ms_in22k_ft_in1k", _swin, "Swin-B (Liu et al. 2021)"),
    ("swin_large_patch4_window7_224", "ms_in22k_ft_in1k", _swin, "Swin-L (Liu et al. 2021)"),
))
#: What each layout means, for the one-line descriptions (timm 1.0 paths for the study's layers).
_LAYOUTS = {
    _blocks: "its blocks",
    _blocks_and_norm: "its blocks and the final norm",
    _patch_tokens: "its blocks' patch tokens (blocks.i:out[1])",
    _pit: "the blocks of its 3 stages",
    _levit: "each attention+MLP pair (stages.k.blocks.j) and subsample+MLP (stages.k.downsample)",
    _swin: "its blocks, the mergings (study's layers[i].downsample = layers.{i+1}.downsample), the pool",
}


def _register(row: StudyViT) -> None:
    def factory(pretrained: bool = False) -> Architecture:
        net = build_timm(row.arch, row.tag, published_weights(row.name) if pretrained else None)
        layers = row.layers(net)
        channels_last = frozenset(layers[:-1]) if row.layers is _swin else frozenset()
        return Architecture(net, layers, timm_preprocessing(row.arch, row.tag, crop=False, input_size=224),
                            channels_last=channels_last)

    factory.__name__ = row.name
    factory.__doc__ = f"{row.title}, timm {row.arch}.{row.tag}: {_LAYOUTS[row.layers]}"
    register_model(row.name, family="vit")(factory)
    declare_weights(row.name, hf_hub_weights(f"timm/{row.arch}.{row.tag}", f"{row.arch}.{row.tag}"))


for _row in STUDY_VITS:
    _register(_row)
