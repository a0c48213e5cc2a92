"""PART's network: a ResNet, a global relational transformer and part transformers behind key-padding masks.

Zhao, Li, Chen & Tian, *Part-Guided Relational Transformers for Fine-Grained Visual
Recognition*, IEEE TIP 30, 2021 (arXiv 2212.13685); reference code iCVTEAM/PART
(``model/make_model.py``, ``model/backbones/Attention.py``, ``model/trans_utils``,
``processor/processor.py``), read, not copied.

Network (:class:`PARTNet`)
--------------------------
- **Backbone**: a ResNet of basic blocks, ``stem`` then ``layer1``..``layer4`` (strides 1, 2,
  2, 1: the last stage keeps its resolution, the reference's ``LAST_STRIDE = 1``), sized for
  32 px images on a CPU (``backbone="small"``, widths 16/32/64/128 by default, 8 x 8 maps),
  or torchvision's ResNet-50 / ResNet-101 with the last stride set to 1 (``backbone="resnet50"``
  or ``"resnet101"``, 2048 channels; the paper preset: ResNet-101, the reference's default).
  The last stage's output (after its ReLU, non-negative) gives the *channel maps* of part
  discovery. ``backbone_cut="reference"`` (the paper preset) cuts the ResNet as the
  reference's ``resnet*_bap`` (:mod:`workbench.models.part_backbone`): a 2 x 2 stem max-pool,
  ``layer4`` of 2 blocks, the 2nd cut after its conv2; discovery on its conv2 activation and
  tokens from its conv1 activation (512 channels each).
- **Tokens**: ``proj``, a 1 x 1 conv + BN + ReLU from the last stage's channels to the
  transformer width ``dim``; none with ``backbone_cut="reference"``, where ``dim`` must be 512
  (the reference feeds its 512-channel conv1 activation to 512-wide transformers,
  ``d_model=512``; the paper preset uses ``dim=512``).
- **Global transformer** (``global_transformer``): ``depth=3`` encoder blocks with ``heads=4``
  over the ``h * w`` spatial tokens (the reference's ``transformer_g``: ``nhead=4``,
  ``num_encoder_layers=3``), learned position embeddings (DETR's: a row and a column table of
  ``dim / 2`` each, 50 entries, uniform init; ``position_encoding.py``, mode ``learned``),
  added to queries and keys only; pre-norm blocks with GELU, a feed-forward width of
  ``4 * dim`` (2048 for 512) and dropout 0.1, and a final LayerNorm (``build_transformer``:
  ``normalize_before=True``, ``activation="gelu"``).
- **Part transformers**: per part a position embedding (``part_positions.<p>``) and an
  encoder of ``part_depth=1`` block with ``part_heads=1`` (``part_encoders.<e>``, the
  reference's ``transformer_p1..p4``), attending only to the positions of its part's mask
  (``key_padding_mask`` = outside the mask). ``part_encoders="separate"``: an encoder per part;
  ``"reference_shared_p3"`` (the paper preset): the 4th part runs the 3rd's encoder with its
  own position embedding, neck and classifier, as the reference's ``forward_multi`` does
  (``transformer_p3`` for ``part_4``; its ``transformer_p4`` is never used).
- **Heads**: per branch, pooling -> BN "neck" (bias frozen at 0, the reference's BNNeck) ->
  linear classifier without bias (init N(0, 0.001^2)). The global branch averages over all
  tokens; a part branch averages over the tokens *inside* its mask (``part_pooling=
  "inside_mask"``: the part branch sees its part only), or over every position like the
  reference's ``gap`` (``"all_positions"``, the paper preset: the outside positions still carry
  their own features through the residual path).

:meth:`PARTNet.forward` computes the **global branch only** (the inference of the paper and
reference ``test_multi``): the part modules are never called, so a network built with
``parts=0`` (no part modules at all: the architecture a run saves) gives the same logits.
``forward(images, part_taus=...)`` is the training forward (global and part logits, the parts
discovered with the given thresholds).

Part discovery (:func:`discover_parts`)
---------------------------------------
1. Channel weights ``w_c = sqrt(mean_xy A_c) + 1e-12``, normalised to sum 1 over channels
   (``Attention.py``, ``ATT.NMS_crop``: ``part_weights``); the ``top_channels=64`` channels
   of largest weight, in decreasing order, are the candidates (``NUM_PART_STACK = 64``).
2. For each candidate in turn, a box from its map and a threshold ``tau`` (``~ U(0.4, 0.6)``
   drawn per candidate in training, ``0.5`` at test; the reference's ``random.uniform(0.4, 0.6)``
   times the map's maximum), by one of two rules (``selection``):

   - ``"connected_region"`` (the paper's description): the box of the *largest 4-connected
     region* of ``map / max >= tau`` (``scipy.ndimage.label``), no border zeroed;
   - ``"reference_as_run"`` (the reference's main loop, ``ATT.NMS_crop``; the paper preset):
     the top and left 2 rows and columns are zeroed, then the box spans the positions
     *below* ``tau * max`` (``mask < mask.max() * threshold``). The zeroed border is below
     any positive threshold and reaches the last row and column, so every box is
     ``(0, 0, w - 1, h - 1)`` (:func:`reference_box`).
3. Greedy NMS in candidate order: a box whose IoU with a kept box exceeds ``nms_iou=0.6``
   (``THRE_IOU = 0.6``) is dropped; the first ``parts=4`` kept boxes are the parts
   (``NUM_SELECT_PART = 4``). When fewer survive: ``connected_region`` fills the slots with
   the best-ranked unused candidates; ``reference_as_run`` drops the kept ones and takes the
   ``parts`` channels of largest weight, as the reference does -- with its boxes NMS keeps one,
   so with ``parts >= 2`` every image ends on its top channels by weight.
4. A part's mask: ``connected_region``: the positions where its channel map exceeds the map's
   own mean over the image; ``reference_as_run``: the border-zeroed map not below its mean
   over the whole batch (the reference's ``part < part.mean()`` key-padding mask, so the
   zeroed border is never attended). A map (an image) with no position left keeps them all.

No padding of thin boxes in ``connected_region`` (``reference_box`` transcribes it), and the
boxes only describe the parts (the reference uses the crops for visualisation only; its part
branches, like these, see the masked features). Boxes are half-open ``(x1, y1, x2, y2)`` in
map cells: cell ``(y, x)`` is inside when ``x1 <= x < x2`` and ``y1 <= y < y2``;
``reference_box`` keeps the reference's last index as the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import ValidationError
from workbench.models.part_backbone import RESNETS, build_backbone
from workbench.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from workbench.models.registry import Architecture, register_model

#: Reference values (``config/default.py``, ``Attention.py``): candidates, parts, NMS IoU.
TOP_CHANNELS = 64
NUM_PARTS = 4
NMS_IOU = 0.6
TAU_RANGE = (0.4, 0.6)
TAU_TEST = 0.5
#: ``discover_parts`` rules: the reference's main loop as it runs, or the paper's description.
PART_SELECTIONS = ("reference_as_run", "connected_region")
#: What a part branch averages: the tokens inside its mask, or every position (the reference's ``gap``).
PART_POOLINGS = ("inside_mask", "all_positions")
#: Rows and columns zeroed at the top and left of each candidate map (``Attention.py``, ``mask[enum][0:2, :] = 0``).
REFERENCE_BORDER = 2
#: Which encoder each part branch runs: its own, or (the reference's ``forward_multi``) part 4 through part 3's.
PART_ENCODERS = ("separate", "reference_shared_p3")


# --- part discovery -------------------------------------------------------------------------
@dataclass
class PartSelection:
    """Parts discovered in a batch.

    Attributes
    ----------
    channels : torch.Tensor, shape (N, P), long
        Channel of the last stage behind each part.
    boxes : torch.Tensor, shape (N, P, 4), float
        Half-open boxes ``(x1, y1, x2, y2)`` in map cells.
    masks : torch.Tensor, shape (N, P, h, w), bool
        Positions a part transformer attends to (its map above the map's mean).
    """

    channels: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor


def channel_weights(maps: torch.Tensor) -> torch.Tensor:
    """Channel weights ``sqrt(mean_xy A) + 1e-12``, normalised over channels: (N, C) of maps (N, C, h, w).

    Negative means (not produced by a ReLU stage) are clipped at 0 before the square root.
    """
    w = torch.sqrt(maps.float().mean((2, 3)).clamp_min(0.0)) + 1e-12
    return w / w.sum(1, keepdim=True)


def largest_region_box(channel_map: np.ndarray, tau: float) -> tuple[int, int, int, int] | None:
    """Box of the largest 4-connected region of ``map / max(map) >= tau``; ``None`` when max <= 0.

    Parameters
    ----------
    channel_map : ndarray, shape (h, w)
    tau : float
        Threshold on the max-normalised map.

    Returns
    -------
    tuple of int or None
        Half-open ``(x1, y1, x2, y2)`` in cells; ties between equally large regions go to the
        one met first in raster order.
    """
    from scipy import ndimage

    peak = float(channel_map.max())
    if not peak > 0:
        return None
    labels, count = ndimage.label(channel_map / peak >= tau)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    ys, xs = np.nonzero(labels == int(np.argmax(sizes)))
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def box_iou(a, b) -> float:
    """IoU of two half-open boxes ``(x1, y1, x2, y2)`` (plain Python: called in the per-image loop).

    Equal to ``torchvision.ops.box_iou`` on the same boxes (``tests/methods/test_part_model.py``).
    """
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(iw, 0) * max(ih, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def part_masks(maps: torch.Tensor) -> torch.Tensor:
    """Masks (..., h, w) bool: positions of each map (..., h, w) above its own mean (all, if none)."""
    mean = maps.mean((-2, -1), keepdim=True)
    masks = maps > mean
    empty = ~masks.flatten(-2).any(-1)
    return masks | empty[..., None, None]


def reference_box(channel_map: np.ndarray, tau: float) -> tuple[int, int, int, int]:
    """The box the reference's main loop computes for one candidate (``Attention.py``, ``ATT.NMS_crop``).

    Parameters
    ----------
    channel_map : ndarray, shape (h, w)
        The candidate's map with its top and left ``REFERENCE_BORDER`` rows/columns already zeroed.
    tau : float

    Returns
    -------
    tuple of int
        ``(x1, y1, x2, y2)`` in cells: the extent of the positions *below* ``tau * max`` (the
        reference's ``torch.where(mask < mask.max() * threshold)``; every position when none
        is), the last index used as the end (not + 1), thin extents (<= 4 cells) padded by
        ``int(0.2 * size // 2)`` where ``size`` is the *other* side (the reference unpacks
        ``W, H`` from an ``N, C, h, w`` shape), and an empty extent widened to the whole side.
        The zeroed border is always below the threshold, so ``x1 = y1 = 0``.
    """
    h, w = channel_map.shape
    rows, cols = np.nonzero(channel_map < channel_map.max() * tau)
    if rows.size == 0:
        rows, cols = np.nonzero(np.ones_like(channel_map, dtype=bool))
    pad_rows = 0 if rows.max() - rows.min() > 4 else int(0.2 * w // 2)
    pad_cols = 0 if cols.max() - cols.min() > 4 else int(0.2 * h // 2)
    y1, y2 = max(0, int(rows.min()) - pad_rows), int(rows.max()) + pad_rows
    x1, x2 = max(0, int(cols.min()) - pad_cols), int(cols.max()) + pad_cols
    if y1 == y2:
        y1, y2 = 0, w
    if x1 == x2:
        x1, x2 = 0, h
    return x1, y1, x2, y2


def zero_border(maps: np.ndarray) -> np.ndarray:
    """A copy of maps (..., h, w) with the top and left ``REFERENCE_BORDER`` rows and columns set to 0."""
    out = np.array(maps, copy=True)
    out[..., :REFERENCE_BORDER, :] = 0
    out[..., :, :REFERENCE_BORDER] = 0
    return out


def _nms(boxes_of, order: np.ndarray, taus: np.ndarray, parts: int, nms_iou: float):
    """Greedy NMS over candidates ``order`` (K,): ``(channels, boxes)`` kept, at most ``parts``.

    ``boxes_of(channel, tau)`` gives a candidate's box, or ``None`` to skip it.
    """
    kept: list[int] = []
    kept_boxes: list[tuple] = []
    for rank, ch in enumerate(order):
        box = boxes_of(int(ch), float(taus[rank]))
        if box is not None and all(box_iou(box, other) <= nms_iou for other in kept_boxes):
            kept.append(int(ch))
            kept_boxes.append(box)
            if len(kept) == parts:
                break
    return kept, kept_boxes


def _select_connected_region(maps: np.ndarray, order: np.ndarray, taus: np.ndarray, parts: int, nms_iou: float):
    """The paper's rule for one image's maps (C, h, w): NMS on largest-region boxes, best unused fill."""
    c, h, w = maps.shape
    kept, kept_boxes = _nms(lambda ch, tau: largest_region_box(maps[ch], tau), order, taus, parts, nms_iou)
    for rank, ch in enumerate(order):  # fewer than `parts` survived: best-ranked unused candidates
        if len(kept) == parts:
            break
        if int(ch) not in kept:
            kept.append(int(ch))
            kept_boxes.append(largest_region_box(maps[ch], float(taus[rank])) or (0, 0, w, h))
    return kept, kept_boxes


def _select_reference_as_run(maps: np.ndarray, order: np.ndarray, taus: np.ndarray, parts: int, nms_iou: float):
    """The reference's main loop for one image's maps (C, h, w), border already zeroed.

    NMS on :func:`reference_box` boxes; when fewer than ``parts`` survive (the usual case:
    the boxes all start at the zeroed border), the ``parts`` channels of largest weight.
    """
    kept, kept_boxes = _nms(lambda ch, tau: reference_box(maps[ch], tau), order, taus, parts, nms_iou)
    if len(kept) < parts:
        kept = [int(ch) for ch in order[:parts]]
        kept_boxes = [reference_box(maps[ch], float(taus[rank])) for rank, ch in enumerate(kept)]
    return kept, kept_boxes


def discover_parts(maps: torch.Tensor, taus: torch.Tensor | float, *, parts: int = NUM_PARTS,
                   top_channels: int = TOP_CHANNELS, nms_iou: float = NMS_IOU,
                   selection: str = "connected_region") -> PartSelection:
    """Discover ``parts`` parts per image from last-stage channel maps (see the module docstring).

    Parameters
    ----------
    maps : torch.Tensor, shape (N, C, h, w)
        Non-negative channel maps (detached inside).
    taus : torch.Tensor of shape (N, K) or float
        Threshold of the k-th ranked candidate of each image (``K >= min(top_channels, C)``),
        or one threshold for all.
    parts : int
    top_channels : int
        Candidates: the channels of largest weight (all of them when ``C`` is smaller).
    nms_iou : float
        A candidate box overlapping a kept one with IoU above this is dropped.
    selection : {"connected_region", "reference_as_run"}
        The paper's rule, or the reference's main loop as it runs (zeroed border, boxes of
        the positions below the threshold, fallback to the top channels; masks of the
        border-zeroed maps against the batch mean).

    Returns
    -------
    PartSelection
    """
    if selection not in PART_SELECTIONS:
        raise ValidationError(f"part selection must be one of {PART_SELECTIONS}, found {selection!r}")
    maps = maps.detach().float()
    n, c, h, w = maps.shape
    if parts < 1 or parts > c:
        raise ValidationError(f"parts must be in [1, {c}] (the channels of the maps), found {parts}")
    k = min(int(top_channels), c)
    if k < parts:
        raise ValidationError(f"top_channels ({top_channels}) must be >= parts ({parts})")
    order = torch.topk(channel_weights(maps), k, dim=1).indices.cpu().numpy()
    if isinstance(taus, (int, float)):
        tau_array = np.full((n, k), float(taus))
    else:
        tau_array = taus.detach().cpu().double().numpy()
        if tau_array.shape[0] != n or tau_array.shape[1] < k:
            raise ValidationError(f"taus must have shape ({n}, >= {k}), found {tuple(taus.shape)}")
    reference = selection == "reference_as_run"
    cpu_maps = zero_border(maps.cpu().numpy()) if reference else maps.cpu().numpy()
    select = _select_reference_as_run if reference else _select_connected_region
    channels = np.zeros((n, parts), dtype=np.int64)
    boxes = np.zeros((n, parts, 4), dtype=np.float32)
    for i in range(n):
        kept, kept_boxes = select(cpu_maps[i], order[i], tau_array[i], parts, nms_iou)
        channels[i] = kept
        boxes[i] = np.asarray(kept_boxes, dtype=np.float32)
    index = torch.from_numpy(channels).to(maps.device)
    # the chosen maps (N, parts, h, w), gathered on the host: only they go back to the device
    chosen = torch.from_numpy(cpu_maps[np.arange(n)[:, None], channels]).to(maps.device)
    return PartSelection(index, torch.from_numpy(boxes), batch_mean_masks(chosen) if reference else part_masks(chosen))


def batch_mean_masks(maps: torch.Tensor) -> torch.Tensor:
    """Masks (N, P, h, w) bool: positions of part p's map not below its mean over the batch (N, h, w).

    The reference's ``mask_p = part_p < part_p.mean()`` (True = ignored key), inverted; an image
    with no position left keeps all of them (the reference would attend to nothing).
    """
    masks = maps >= maps.mean((0, 2, 3), keepdim=True)
    empty = ~masks.flatten(-2).any(-1)
    return masks | empty[..., None, None]


# --- modules --------------------------------------------------------------------------------
class LearnedPosition(nn.Module):
    """DETR's learned position embedding: ``[col_embed(x), row_embed(y)]``, ``dim / 2`` each.

    ``forward(h, w)`` returns (h * w, dim), row-major like the flattened tokens.
    """

    def __init__(self, dim: int, max_size: int = 50):
        super().__init__()
        if dim % 2:
            raise ValidationError(f"the transformer width must be even (row and column halves), found {dim}")
        self.row_embed = nn.Embedding(max_size, dim // 2)
        self.col_embed = nn.Embedding(max_size, dim // 2)
        nn.init.uniform_(self.row_embed.weight)
        nn.init.uniform_(self.col_embed.weight)

    def forward(self, h: int, w: int) -> torch.Tensor:
        if h > self.row_embed.num_embeddings or w > self.col_embed.num_embeddings:
            raise ValidationError(f"feature map {h} x {w} exceeds the position tables "
                                  f"({self.row_embed.num_embeddings} entries)")
        dev = self.row_embed.weight.device
        cols = self.col_embed(torch.arange(w, device=dev))  # (w, d/2)
        rows = self.row_embed(torch.arange(h, device=dev))  # (h, d/2)
        pos = torch.cat([cols[None, :, :].expand(h, w, -1), rows[:, None, :].expand(h, w, -1)], dim=-1)
        return pos.reshape(h * w, -1)


class EncoderBlock(nn.Module):
    """Pre-norm transformer encoder block; positions added to queries and keys only.

    ``forward(x, pos, key_padding_mask)``: ``x`` (N, L, d), ``pos`` (L, d), mask (N, L) bool,
    True = a key not attended to. Returns (N, L, d).
    """

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn)
        self.linear2 = nn.Linear(ffn, dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        qk = h + pos
        attended = self.attn(qk, qk, h, key_padding_mask=key_padding_mask, need_weights=False)[0]
        x = x + self.dropout1(attended)
        h = self.norm2(x)
        return x + self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(h)))))


class TransformerEncoder(nn.Module):
    """``depth`` :class:`EncoderBlock` s and a final LayerNorm over spatial tokens, positions given."""

    def __init__(self, dim: int, heads: int, depth: int, ffn: int, dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList([EncoderBlock(dim, heads, ffn, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        for block in self.blocks:  # the reference's Transformer._reset_parameters
            for p in block.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    def forward(self, tokens: torch.Tensor, pos: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens (N, L, d) and positions (L, d) -> (N, L, d); ``key_padding_mask`` (N, L), True = ignored key."""
        pos = pos.to(tokens.dtype)
        x = tokens
        for block in self.blocks:
            x = block(x, pos, key_padding_mask)
        return self.norm(x)


class RelationalTransformer(TransformerEncoder):
    """A :class:`TransformerEncoder` with its own :class:`LearnedPosition` table (the global branch)."""

    def __init__(self, dim: int, heads: int, depth: int, ffn: int, dropout: float, max_size: int = 50):
        pos = LearnedPosition(dim, max_size)  # drawn before the blocks: the initialisation order of earlier versions
        super().__init__(dim, heads, depth, ffn, dropout)
        self.pos = pos

    def forward(self, tokens: torch.Tensor, h: int, w: int,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens (N, h * w, d) -> (N, h * w, d); ``key_padding_mask`` (N, h * w), True = ignored key."""
        return super().forward(tokens, self.pos(h, w), key_padding_mask)


class BNNeck(nn.BatchNorm1d):
    """BatchNorm1d whose bias is fixed at 0 (not trained), the reference's ``bottleneck``."""

    def __init__(self, dim: int):
        super().__init__(dim)
        self.bias.requires_grad_(False)


def _head(dim: int, num_classes: int) -> nn.Linear:
    head = nn.Linear(dim, num_classes, bias=False)
    nn.init.normal_(head.weight, std=0.001)
    return head


def part_encoder_indices(parts: int, part_encoders: str) -> tuple[int, ...]:
    """Index of the encoder each of ``parts`` part branches runs: ``(0, 1, 2, 3)`` for 4 ``"separate"``
    ones, ``(0, 1, 2, 2)`` for ``"reference_shared_p3"`` (``parts`` must be 4 then, or 0: no branch)."""
    if part_encoders not in PART_ENCODERS:
        raise ValidationError(f"part_encoders must be one of {PART_ENCODERS}, found {part_encoders!r}")
    if part_encoders == "separate" or parts == 0:
        return tuple(range(parts))
    if parts != NUM_PARTS:
        raise ValidationError(f"part_encoders 'reference_shared_p3' follows the reference's {NUM_PARTS} part "
                              f"branches (the 4th through the 3rd's encoder); parts must be {NUM_PARTS}, found {parts}")
    return (0, 1, 2, 2)


class PARTNet(nn.Module):
    """Backbone + global transformer (+ ``parts`` part transformers); see the module docstring.

    Parameters
    ----------
    num_classes : int
    parts : int, default: 4
        Part branches (0: the global-only network a run saves).
    backbone : {"small", "resnet50", "resnet101"}
    widths : tuple of 4 int
        Stage widths of the small backbone.
    blocks : int
        Basic blocks per stage of the small backbone.
    dim, heads, depth : int
        Width, heads and blocks of the global transformer.
    part_heads, part_depth : int
        Heads and blocks of each part transformer.
    dropout : float
    top_channels : int
        Candidate channels of part discovery.
    nms_iou : float
    pretrained_backbone : bool
        ResNets only: start from torchvision's ImageNet weights (downloaded).
    part_selection : {"connected_region", "reference_as_run"}
        Rule of :func:`discover_parts` (its ``selection``).
    part_pooling : {"inside_mask", "all_positions"}
        What a part branch averages (:meth:`part_embedding`).
    part_encoders : {"separate", "reference_shared_p3"}
        Each part branch with its own encoder, or (``parts=4`` only) the 4th branch through the
        3rd's encoder with its own position table, neck and classifier (the reference's
        ``forward_multi``).
    backbone_cut : {"torchvision", "reference"}
        How a ResNet backbone is cut (:func:`workbench.models.part_backbone.build_backbone`):
        ``"reference"`` needs ``dim`` equal to its 512 channels (tokens without projection).
    """

    def __init__(self, num_classes: int = 10, parts: int = NUM_PARTS, backbone: str = "small",
                 widths: tuple[int, ...] = (), blocks: int = 1, dim: int = 64, heads: int = 4, depth: int = 3,
                 part_heads: int = 1, part_depth: int = 1, dropout: float = 0.1, top_channels: int = TOP_CHANNELS,
                 nms_iou: float = NMS_IOU, pretrained_backbone: bool = False,
                 part_selection: str = "connected_region", part_pooling: str = "inside_mask",
                 part_encoders: str = "separate", backbone_cut: str = "torchvision"):
        super().__init__()
        if part_selection not in PART_SELECTIONS or part_pooling not in PART_POOLINGS:
            raise ValidationError(f"part_selection must be one of {PART_SELECTIONS} and part_pooling one of "
                                  f"{PART_POOLINGS}, found {part_selection!r} and {part_pooling!r}")
        self.part_selection, self.part_pooling = part_selection, part_pooling
        if parts < 0:
            raise ValidationError(f"parts must be >= 0, found {parts}")
        if dim % heads or dim % part_heads:
            raise ValidationError(f"dim ({dim}) must be divisible by heads ({heads}) and part_heads ({part_heads})")
        self.parts, self.top_channels, self.nms_iou = int(parts), int(top_channels), float(nms_iou)
        self.part_encoder_of = part_encoder_indices(self.parts, part_encoders)
        body, channels = build_backbone(backbone, tuple(widths), blocks, pretrained_backbone, backbone_cut)
        self.stem, self.layer1, self.layer2, self.layer3, self.layer4 = body.children()
        self.channels, self.dim, self.backbone_cut = channels, int(dim), backbone_cut
        if backbone_cut == "reference" and dim != channels:
            raise ValidationError(f"backbone_cut 'reference' feeds its {channels}-channel features to the "
                                  f"transformers without projection: dim must be {channels}, found {dim}")
        self.proj = nn.Identity() if backbone_cut == "reference" else nn.Sequential(
            nn.Conv2d(channels, dim, 1, bias=True), nn.BatchNorm2d(dim), nn.ReLU(inplace=True))
        self.global_transformer = RelationalTransformer(dim, heads, depth, 4 * dim, dropout)
        self.neck = BNNeck(dim)
        self.classifier = _head(dim, num_classes)
        if self.parts:
            self._build_parts(num_classes, part_heads, part_depth, dropout)

    def _build_parts(self, num_classes: int, heads: int, depth: int, dropout: float) -> None:
        """Per part a position table, neck and classifier; an encoder per distinct ``part_encoder_of`` entry."""
        positions, encoders = [], []
        for encoder in self.part_encoder_of:  # a table, then its encoder: the initialisation order of one module
            positions.append(LearnedPosition(self.dim))
            if encoder == len(encoders):
                encoders.append(TransformerEncoder(self.dim, heads, depth, 4 * self.dim, dropout))
        self.part_positions, self.part_encoders = nn.ModuleList(positions), nn.ModuleList(encoders)
        self.part_necks = nn.ModuleList([BNNeck(self.dim) for _ in range(self.parts)])
        self.part_classifiers = nn.ModuleList([_head(self.dim, num_classes) for _ in range(self.parts)])

    def backbone_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(maps, features)`` of images (N, 3, H, W): channel maps of part discovery (N, C, h, w) and
        the features the tokens come from (N, C, h, w); the same tensor unless ``backbone_cut="reference"``."""
        x = self.stem(images)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
        return x if isinstance(x, tuple) else (x, x)

    def tokens(self, features: torch.Tensor) -> torch.Tensor:
        """Spatial tokens (N, h * w, dim) of backbone features (row-major positions)."""
        return self.proj(features).flatten(2).transpose(1, 2)

    def global_logits(self, features: torch.Tensor) -> torch.Tensor:
        _, _, h, w = features.shape
        feats = self.global_transformer(self.tokens(features), h, w)
        return self.classifier(self.neck(feats.mean(1)))

    def forward(self, images: torch.Tensor, part_taus: torch.Tensor | float | None = None):
        """Global-branch logits (N, classes); with ``part_taus``, ``(global, parts (N, P, classes), PartSelection)``."""
        maps, features = self.backbone_features(images)
        if part_taus is None:
            return self.global_logits(features)
        if not self.parts:
            raise ValidationError("this network has no part branches (parts=0); it runs global-only")
        _, _, h, w = features.shape
        tokens = self.tokens(features)
        global_out = self.classifier(self.neck(self.global_transformer(tokens, h, w).mean(1)))
        selection = discover_parts(maps, part_taus, parts=self.parts, top_channels=self.top_channels,
                                   nms_iou=self.nms_iou, selection=self.part_selection)
        part_out = [self.part_classifiers[p](self.part_necks[p](
            self.part_embedding(p, tokens, selection.masks[:, p], h, w))) for p in range(self.parts)]
        return global_out, torch.stack(part_out, 1), selection

    def part_embedding(self, p: int, tokens: torch.Tensor, mask: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Part ``p``'s embedding (N, dim): its encoder (``part_encoders[part_encoder_of[p]]``) with its
        position table over ``tokens`` (N, h * w, dim), keys restricted to ``mask`` (N, h, w) bool,
        averaged over the positions inside the mask (``part_pooling="inside_mask"``) or over every
        position (``"all_positions"``)."""
        inside = mask.flatten(1)
        encoder = self.part_encoders[self.part_encoder_of[p]]
        feats = encoder(tokens, self.part_positions[p](h, w), key_padding_mask=~inside)
        if self.part_pooling == "all_positions":
            return feats.mean(1)
        weights = inside.to(feats.dtype)[:, :, None]
        return (feats * weights).sum(1) / weights.sum(1)

    def discover(self, images: torch.Tensor, tau: float = TAU_TEST, parts: int | None = None) -> PartSelection:
        """Parts of images at threshold ``tau`` (the backbone only: works with ``parts=0`` too)."""
        return discover_parts(self.backbone_features(images)[0], tau, parts=parts or self.parts or NUM_PARTS,
                              top_channels=self.top_channels, nms_iou=self.nms_iou, selection=self.part_selection)


def global_state_dict(state: dict) -> dict:
    """The entries of a PART state dict that the global-only network (``parts=0``) has."""
    prefixes = ("part_positions.", "part_encoders.", "part_necks.", "part_classifiers.")
    return {k: v for k, v in state.items() if not k.startswith(prefixes)}


@register_model("part_net", family="cnn")
def part_net(pretrained: bool = False, num_classes: int = 10, parts: int = 0, backbone: str = "small",
             widths: tuple = (), blocks: int = 1, dim: int = 64, heads: int = 4, depth: int = 3, part_heads: int = 1,
             part_depth: int = 1, dropout: float = 0.1, top_channels: int = TOP_CHANNELS, nms_iou: float = NMS_IOU,
             pretrained_backbone: bool = False, part_selection: str = "connected_region",
             part_pooling: str = "inside_mask", part_encoders: str = "separate",
             backbone_cut: str = "torchvision") -> Architecture:
    """PART network: ResNet + global relational transformer (+ part transformers); train with `workbench train part`."""
    if pretrained:
        from workbench.errors import WeightsUnavailableError

        raise WeightsUnavailableError("part_net has no published weights; train it (`workbench train part`)")
    net = PARTNet(num_classes, parts=parts, backbone=backbone, widths=tuple(widths), blocks=blocks, dim=dim,
                  heads=heads, depth=depth, part_heads=part_heads, part_depth=part_depth, dropout=dropout,
                  top_channels=top_channels, nms_iou=nms_iou, pretrained_backbone=pretrained_backbone,
                  part_selection=part_selection, part_pooling=part_pooling, part_encoders=part_encoders,
                  backbone_cut=backbone_cut)
    if backbone in RESNETS:
        preprocessing = Preprocessing(input_size=448, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    else:
        preprocessing = Preprocessing(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    last = "layer4:out[1]" if backbone_cut == "reference" else "layer4"  # the features the tokens come from
    layers = ("layer1", "layer2", "layer3", last) + tuple(
        f"global_transformer.blocks.{i}" for i in range(depth)) + ("neck",)
    return Architecture(net, layers, preprocessing)


__all__ = ["PART_ENCODERS", "PART_POOLINGS", "PART_SELECTIONS", "PARTNet", "PartSelection",
           "batch_mean_masks", "channel_weights", "discover_parts", "global_state_dict", "largest_region_box",
           "part_encoder_indices", "part_masks", "part_net", "reference_box", "zero_border"]
