"""Vision transformers from torchvision (ViT-B/16, B/32, L/16, L/32; Swin-T) and DeiT-tiny (timm).

The four ViTs are the study's (torchvision ``IMAGENET1K_V1`` weights), scored on the outputs
of their encoder blocks, (N, tokens, channels), as the study's layer lists give them (the
final layer norm is not among them). ``swin_t`` and ``deit_tiny`` are kept for the demo and
the tests but are not the study's networks: the study used timm's
``swin_tiny_patch4_window7_224`` and ``deit_tiny_distilled_patch16_224``
(:mod:`workbench.models.vit_timm`). Swin stages output (N, H, W, C) feature maps.
"""

from __future__ import annotations

from torchvision import models as tvm

from workbench.models._layers import children
from workbench.models.cnn import IMAGENET_224, build_torchvision
from workbench.models.hub import build_timm
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model
from workbench.models.weights import declare_weights, published_weights, url_source

DEIT_TINY_URL = "https://dl.fbaipublicfiles.com/deit/deit_tiny_patch16_224-a1311bcf.pth"
#: The study's torchvision ViTs: name -> (builder, weights, number of blocks, patch size).
TORCHVISION_VITS = {
    "vit_b_16": (tvm.vit_b_16, tvm.ViT_B_16_Weights.IMAGENET1K_V1, 12, 16),
    "vit_b_32": (tvm.vit_b_32, tvm.ViT_B_32_Weights.IMAGENET1K_V1, 12, 32),
    "vit_l_16": (tvm.vit_l_16, tvm.ViT_L_16_Weights.IMAGENET1K_V1, 24, 16),
    "vit_l_32": (tvm.vit_l_32, tvm.ViT_L_32_Weights.IMAGENET1K_V1, 24, 32),
}


def _register_torchvision_vit(name: str, builder, weights_enum, depth: int, patch: int) -> None:
    size = "B" if depth == 12 else "L"

    def factory(pretrained: bool = False) -> Architecture:
        net = build_torchvision(builder, weights_enum, pretrained)
        return Architecture(net, tuple(children(net, "encoder.layers")), IMAGENET_224)

    factory.__name__ = name
    factory.__doc__ = (f"ViT-{size}/{patch} (Dosovitskiy et al. 2021; torchvision IMAGENET1K_V1): "
                       f"its {depth} encoder blocks, the study's layers")
    register_model(name, family="vit")(factory)
    declare_weights(name, url_source(weights_enum.url))


for _name, _spec in TORCHVISION_VITS.items():
    _register_torchvision_vit(_name, *_spec)
declare_weights("swin_t", url_source(tvm.Swin_T_Weights.IMAGENET1K_V1.url))
declare_weights("deit_tiny", url_source(DEIT_TINY_URL))


@register_model("swin_t", family="vit")
def swin_t(pretrained: bool = False) -> Architecture:
    """Swin-T, torchvision's; not the study's network (it used timm's swin_tiny_patch4_window7_224).

    Layers: the patch embedding, the 4 stages and 3 patch mergings, the final norm.
    """
    net = build_torchvision(tvm.swin_t, tvm.Swin_T_Weights.IMAGENET1K_V1, pretrained)
    layers = (*children(net, "features"), "norm")
    return Architecture(net, layers, Preprocessing(224, interpolation="bicubic"),
                        channels_last=frozenset(layers))


@register_model("deit_tiny", family="vit")
def deit_tiny(pretrained: bool = False) -> Architecture:
    """DeiT-tiny, timm deit_tiny_patch16_224; not the study's network (it used the distilled one).

    Layers: the 12 transformer blocks and the final norm. The study's network is
    ``deit_tiny_distilled_patch16_224``.
    """
    net = build_timm("deit_tiny_patch16_224", "fb_in1k", published_weights("deit_tiny") if pretrained else None)
    return Architecture(net, (*children(net, "blocks"), "norm"),
                        Preprocessing(224, interpolation="bicubic"))
