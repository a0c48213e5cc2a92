"""Vision transformers: ViT-B/16, ViT-B/32 and Swin-T (torchvision), DeiT-tiny (timm).

Analysis layers are the output of every transformer block and the final norm. ViT blocks
output tokens (N, tokens, channels); Swin stages output (N, H, W, C) feature maps.
"""

from __future__ import annotations

from torchvision import models as tvm

from workbench.models._layers import children
from workbench.models.cnn import IMAGENET_224, build_torchvision
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model
from workbench.models.weights import ensure_hub_file

DEIT_TINY_URL = "https://dl.fbaipublicfiles.com/deit/deit_tiny_patch16_224-a1311bcf.pth"


def _torchvision_vit(builder, weights_enum, pretrained: bool) -> Architecture:
    net = build_torchvision(builder, weights_enum, pretrained)
    return Architecture(net, (*children(net, "encoder.layers"), "encoder.ln"), IMAGENET_224)


@register_model("vit_b_16", family="vit")
def vit_b_16(pretrained: bool = False) -> Architecture:
    """ViT-B/16 (Dosovitskiy et al. 2021): the 12 encoder blocks and the final layer norm."""
    return _torchvision_vit(tvm.vit_b_16, tvm.ViT_B_16_Weights.IMAGENET1K_V1, pretrained)


@register_model("vit_b_32", family="vit")
def vit_b_32(pretrained: bool = False) -> Architecture:
    """ViT-B/32 (Dosovitskiy et al. 2021): the 12 encoder blocks and the final layer norm."""
    return _torchvision_vit(tvm.vit_b_32, tvm.ViT_B_32_Weights.IMAGENET1K_V1, pretrained)


@register_model("swin_t", family="vit")
def swin_t(pretrained: bool = False) -> Architecture:
    """Swin-T (Liu et al. 2021): patch embedding, the 4 stages and 3 patch mergings, final norm."""
    net = build_torchvision(tvm.swin_t, tvm.Swin_T_Weights.IMAGENET1K_V1, pretrained)
    layers = (*children(net, "features"), "norm")
    return Architecture(net, layers, Preprocessing(224, interpolation="bicubic"),
                        channels_last=frozenset(layers))


@register_model("deit_tiny", family="vit")
def deit_tiny(pretrained: bool = False) -> Architecture:
    """DeiT-tiny (Touvron et al. 2021, timm): the 12 transformer blocks and the final norm."""
    import timm

    if pretrained:
        path = ensure_hub_file(DEIT_TINY_URL)
        net = timm.create_model("deit_tiny_patch16_224", pretrained=True,
                                pretrained_cfg_overlay={"file": str(path)})
    else:
        net = timm.create_model("deit_tiny_patch16_224", pretrained=False)
    return Architecture(net, (*children(net, "blocks"), "norm"),
                        Preprocessing(224, interpolation="bicubic"))
