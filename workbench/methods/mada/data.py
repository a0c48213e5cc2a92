"""MADA's data: procedurally generated source/target scene domains, and GTA5, SYNTHIA and Cityscapes.

Every dataset item is ``(image, label)``: ``image`` a float32 tensor (3, H, W) normalised with
the domain's ``preprocessing`` (mean 0.5, std 0.5 for the scenes; ImageNet statistics for the
real datasets), ``label`` an int64 tensor (H, W) of train ids in ``[0, C)`` or 255 (ignored).

Generated scenes (the ``tiny`` preset)
--------------------------------------
A scene is a layout of labelled regions (``SCENE_CLASSES``): background above a random horizon,
ground below it, a band of textured stripes on the horizon, boxes standing on it, discs on the
ground and a triangle in the sky. The *layout* of scene ``i`` is drawn from
``numpy.random.default_rng([seed, 0, i])``, its *appearance* (``render``) from a second stream,
so the same scene can be drawn in both domains (the representation analysis does). The
**source** style has one palette, vertical stripes of period 4, almost no noise and no blur.
The **target** domain mixes three conditions of decreasing frequency and increasing shift
(``TARGET_CONDITIONS``): ``day`` (hue-rotated palette, diagonal stripes, noise, slight blur),
``dusk`` (dark, warm tint, more noise and blur) and ``fog`` (low contrast towards grey,
horizontal stripes, strong blur). Everything is a function of ``(seed, split, index)``:
the same seed gives bit-identical arrays.

Real datasets (the ``paper`` preset)
------------------------------------
- **Cityscapes** ``ROOT/leftImg8bit/{split}/{city}/*_leftImg8bit.png`` with
  ``ROOT/gtFine/{split}/{city}/*_gtFine_labelIds.png`` (8-bit label ids, mapped to the 19
  train ids by ``CITYSCAPES_ID_TO_TRAIN``; every other id -> 255).
- **GTA5** ``ROOT/images/NNNNN.png`` with ``ROOT/labels/NNNNN.png`` (8-bit palette PNGs whose
  indices are the Cityscapes label ids: the same map).
- **SYNTHIA** (RAND-CITYSCAPES) ``ROOT/RGB/NNNNNNN.png`` with ``ROOT/GT/LABELS/NNNNNNN.png``:
  16-bit PNGs whose first channel is the SYNTHIA class id (the second an instance id), mapped
  by ``SYNTHIA_ID_TO_TRAIN`` (the README of SYNTHIA-RAND-CITYSCAPES); with 16 classes (the
  usual SYNTHIA -> Cityscapes protocol) terrain, truck and train are ignored and the other ids
  renumbered (``TRAIN19_TO_16``), on the Cityscapes side too. Pillow truncates 16-bit RGB
  PNGs to 8 bits, so they are read by :func:`read_png16` (OpenCV when installed, else a
  small pure-numpy decoder, slow on full-size files).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from workbench.errors import DataError, ValidationError
from workbench.methods.mada.metrics import IGNORE
from workbench.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

SCENE_CLASSES = ("background", "ground", "stripes", "box", "disc", "triangle")

CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic_light", "traffic_sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                      "motorcycle", "bicycle")
#: Cityscapes (and GTA5) label id -> train id (cityscapesScripts' labels.py).
CITYSCAPES_ID_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                          25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
#: SYNTHIA-RAND-CITYSCAPES class id (first channel of GT/LABELS) -> Cityscapes train id.
SYNTHIA_ID_TO_TRAIN = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9, 1: 10, 10: 11, 17: 12,
                       8: 13, 18: 14, 19: 15, 20: 16, 12: 17, 11: 18}
#: 19 train ids -> the 16 classes of SYNTHIA -> Cityscapes (terrain 9, truck 14, train 16 ignored).
TRAIN19_TO_16 = {t: i for i, t in enumerate(t for t in range(19) if t not in (9, 14, 16))}


def lookup_table(mapping: dict[int, int], size: int = 65536) -> np.ndarray:
    """A uint8 table ``table[id] = train id`` (255 for ids not in ``mapping``)."""
    table = np.full(size, IGNORE, dtype=np.uint8)
    for key, value in mapping.items():
        table[key] = value
    return table


# --- generated scenes -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SceneStyle:
    """How a scene is drawn: palette (6 classes x RGB in [0, 1]), textures and degradations."""

    name: str
    palette: tuple
    stripe_period: float = 4.0
    stripe_angle: float = 0.0     # degrees; 0 = vertical stripes
    noise: float = 0.02
    blur: float = 0.0             # Gaussian sigma in pixels
    brightness: float = 1.0
    fog: float = 0.0              # blend towards grey 0.6
    tint: tuple = (1.0, 1.0, 1.0)


_SOURCE_PALETTE = ((0.55, 0.75, 0.95), (0.45, 0.42, 0.40), (0.20, 0.65, 0.25),
                   (0.80, 0.35, 0.25), (0.20, 0.30, 0.85), (0.95, 0.85, 0.20))
SOURCE_STYLE = SceneStyle("source", _SOURCE_PALETTE)


def _rotate(palette, amount: float) -> tuple:
    p = np.asarray(palette)
    return tuple(map(tuple, np.clip((1 - amount) * p + amount * p[:, [1, 2, 0]], 0, 1)))


#: (style, probability) of the target domain's conditions.
TARGET_CONDITIONS = (
    (SceneStyle("day", _rotate(_SOURCE_PALETTE, 0.35), stripe_period=6.0, stripe_angle=45.0, noise=0.05, blur=0.6),
     0.6),
    (SceneStyle("dusk", _rotate(_SOURCE_PALETTE, 0.5), stripe_period=5.0, stripe_angle=60.0, noise=0.08, blur=0.9,
                brightness=0.55, tint=(1.15, 0.9, 0.7)), 0.25),
    (SceneStyle("fog", _rotate(_SOURCE_PALETTE, 0.65), stripe_period=3.0, stripe_angle=90.0, noise=0.06, blur=1.4,
                fog=0.55), 0.15),
)


def scene_layout(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    """Label map (size, size) uint8 of one scene, and the parameters ``render`` needs."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    s = size / 48.0
    horizon = rng.uniform(0.45, 0.68) * size
    label = np.where(yy >= horizon, 1, 0).astype(np.uint8)
    if rng.random() < 0.75:
        x0 = rng.uniform(-0.2, 0.6) * size
        x1 = x0 + rng.uniform(0.3, 0.7) * size
        top = horizon - rng.uniform(4, 12) * s
        label[(xx >= x0) & (xx < x1) & (yy >= top) & (yy < horizon + 2 * s)] = 2
    for _ in range(rng.integers(1, 4)):
        w, h = rng.uniform(6, 14) * s, rng.uniform(8, 20) * s
        x0 = rng.uniform(-0.1, 0.95) * size - w / 2
        bottom = horizon + rng.uniform(-2, 6) * s
        label[(xx >= x0) & (xx < x0 + w) & (yy >= bottom - h) & (yy < bottom)] = 3
    for _ in range(rng.integers(0, 3)):
        r = rng.uniform(3, 7) * s
        cx, cy = rng.uniform(0, size), rng.uniform(horizon + r * 0.5, size)
        label[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = 4
    if rng.random() < 0.6:
        cx, r = rng.uniform(0.1, 0.9) * size, rng.uniform(4, 8) * s
        base = rng.uniform(r * 1.2, max(r * 1.3, horizon - 1))
        inside = (yy <= base) & (yy >= base - 1.7 * r) & (np.abs(xx - cx) <= (yy - (base - 1.7 * r)) * 0.6)
        label[inside] = 5
    return label, {"horizon": float(horizon)}


def render(label: np.ndarray, style: SceneStyle, rng: np.random.Generator) -> np.ndarray:
    """RGB image (3, H, W) float32 in [0, 1] of a label map drawn in ``style``."""
    from scipy.ndimage import gaussian_filter

    size = label.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    palette = np.clip(np.asarray(style.palette, np.float32) + rng.normal(0, 0.04, (len(SCENE_CLASSES), 3)), 0, 1)
    image = palette[label].transpose(2, 0, 1).copy()                     # (3, H, W)
    shade = np.ones((size, size), np.float32)
    shade[label == 0] = 1.05 - 0.25 * yy[label == 0]                      # sky gradient
    shade[label == 1] = 0.75 + 0.35 * yy[label == 1]                      # ground gradient
    angle = np.deg2rad(style.stripe_angle)
    phase = rng.uniform(0, 2 * np.pi)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) * size / style.stripe_period + phase)
    shade[label == 2] = 0.55 + 0.7 * wave[label == 2]
    windows = ((np.floor(xx * size / 3) % 2 == 0) & (np.floor(yy * size / 3) % 2 == 0))
    shade[(label == 3) & windows] = 1.35
    image *= shade[None]
    image *= np.asarray(style.tint, np.float32)[:, None, None] * style.brightness * rng.uniform(0.9, 1.1)
    if style.fog:
        image = (1 - style.fog) * image + style.fog * 0.6
    if style.blur:
        image = np.stack([gaussian_filter(c, style.blur) for c in image])
    image = image + rng.normal(0, style.noise, image.shape).astype(np.float32)
    return np.clip(image, 0, 1).astype(np.float32)


def _pick_condition(rng: np.random.Generator) -> int:
    probs = np.array([p for _, p in TARGET_CONDITIONS])
    return int(rng.choice(len(probs), p=probs / probs.sum()))


_SPLITS = {"source_train": 1, "target_train": 2, "target_test": 3}


def generate_scenes(seed: int, split: str, count: int, size: int = 48, *, style: str = "auto"
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images (N, 3, S, S) float32 in [0, 1], labels (N, S, S) uint8, condition (N,) int)``.

    ``split`` is ``"source_train"``, ``"target_train"`` or ``"target_test"``; ``style``
    ``"auto"`` draws source splits in the source style and target splits in a random target
    condition (``condition`` indexes ``TARGET_CONDITIONS``; -1 = source); ``"source"`` or a
    condition name forces one style (the same layouts, e.g. for the representation analysis).
    """
    if split not in _SPLITS:
        raise ValidationError(f"split={split!r}; expected one of {list(_SPLITS)}")
    names = {s.name: i for i, (s, _) in enumerate(TARGET_CONDITIONS)}
    if style not in ("auto", "source", *names):
        raise ValidationError(f"style={style!r}; expected 'auto', 'source' or one of {list(names)}")
    images = np.empty((count, 3, size, size), np.float32)
    labels = np.empty((count, size, size), np.uint8)
    conditions = np.empty(count, np.int64)
    for i in range(count):
        label, _ = scene_layout(np.random.default_rng([seed, _SPLITS[split], 0, i]), size)
        rng = np.random.default_rng([seed, _SPLITS[split], 1, i])
        if style == "source" or (style == "auto" and split == "source_train"):
            condition, chosen = -1, SOURCE_STYLE
        else:
            condition = _pick_condition(rng) if style == "auto" else names[style]
            chosen = TARGET_CONDITIONS[condition][0]
        images[i], labels[i], conditions[i] = render(label, chosen, rng), label, condition
    return images, labels, conditions


class ArraySegmentation(Dataset):
    """Segmentation items from in-memory arrays: images (N, 3, H, W) in [0, 1], labels (N, H, W).

    ``flip``: a random horizontal flip per access, drawn from torch's global RNG.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean, std, *, flip: bool = False):
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64))
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]
        self.flip = flip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image, label = (self.images[index] - self.mean) / self.std, self.labels[index]
        if self.flip and bool(torch.rand(()) < 0.5):
            image, label = image.flip(-1), label.flip(-1)
        return image, label


# --- real datasets -----------------------------------------------------------------------------

def _png_chunks(data: bytes, path) -> list[tuple[bytes, bytes]]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise DataError(f"{path} is not a PNG file (bad signature)")
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            break
    return chunks


def _unfilter(raw: np.ndarray, height: int, stride: int, bpp: int, path) -> np.ndarray:
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    rows = raw.reshape(height, stride + 1)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 1:                                    # Sub: a running sum per byte lane
            cur = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) & 255
        elif kind == 2:                                    # Up
            cur = (line + prev) & 255
        elif kind in (3, 4):                               # Average, Paeth: sequential in x
            cur = np.zeros(stride, np.int32)
            for x in range(0, stride, bpp):
                a = cur[x - bpp:x] if x else np.zeros(bpp, np.int32)
                b = prev[x:x + bpp]
                if kind == 3:
                    cur[x:x + bpp] = (line[x:x + bpp] + ((a + b) >> 1)) & 255
                else:
                    c = prev[x - bpp:x] if x else np.zeros(bpp, np.int32)
                    p = a + b - c
                    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
                    pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
                    cur[x:x + bpp] = (line[x:x + bpp] + pred) & 255
        else:
            raise DataError(f"{path}: PNG row {y} has filter type {kind}; expected 0-4")
        out[y], prev = cur, cur
    return out


def read_png16(path: str | os.PathLike) -> np.ndarray:
    """Pixel array (H, W, channels) uint16 of a 16-bit non-interlaced PNG (grey, RGB or RGBA).

    OpenCV reads it when installed (channels reordered to RGB); otherwise a pure-numpy decoder.
    """
    path = Path(path)
    try:
        import cv2  # noqa: F401
    except ImportError:
        cv2 = None
    if cv2 is not None:
        array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise DataError(f"{path} could not be read as an image")
        return array[..., ::-1].copy() if array.ndim == 3 else array[..., None]
    chunks = _png_chunks(path.read_bytes(), path)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    channels = {0: 1, 2: 3, 6: 4}.get(colour)
    if depth != 16 or channels is None or interlace:
        raise DataError(f"{path} is a PNG of bit depth {depth}, colour type {colour}, interlace {interlace}; "
                        "expected a 16-bit non-interlaced grey/RGB/RGBA PNG (SYNTHIA GT/LABELS)")
    raw = np.frombuffer(zlib.decompress(b"".join(d for k, d in chunks if k == b"IDAT")), np.uint8)
    stride = width * channels * 2
    if raw.size != height * (stride + 1):
        raise DataError(f"{path}: decompressed image data has {raw.size} bytes; expected {height * (stride + 1)}")
    data = _unfilter(raw, height, stride, channels * 2, path)
    return data.view(">u2").reshape(height, width, channels).astype(np.uint16)


def write_png16(path: str | os.PathLike, array: np.ndarray, *, filters=(0,)) -> None:
    """Write (H, W, C) uint16 as a 16-bit PNG; row ``y`` uses filter ``filters[y % len]`` (0-4)."""
    array = np.asarray(array, dtype=np.uint16)
    if array.ndim == 2:
        array = array[..., None]
    height, width, channels = array.shape
    colour = {1: 0, 3: 2, 4: 6}[channels]
    data = array.astype(">u2").view(np.uint8).reshape(height, -1).astype(np.int32)
    bpp = 2 * channels
    rows = []
    for y in range(height):
        kind = int(filters[y % len(filters)])
        line, prev = data[y], data[y - 1] if y else np.zeros_like(data[0])
        left = np.concatenate([np.zeros(bpp, np.int32), line[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        if kind == 0:
            pred = 0
        elif kind == 1:
            pred = left
        elif kind == 2:
            pred = prev
        elif kind == 3:
            pred = (left + prev) >> 1
        else:
            p = left + prev - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - prev), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        rows.append(bytes([kind]) + ((line - pred) & 255).astype(np.uint8).tobytes())

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
                           + chunk(b"IEND", b""))


def cityscapes_pairs(root: str | os.PathLike, split: str = "train") -> list[tuple[Path, Path]]:
    """(image, ``*_gtFine_labelIds.png``) pairs of a Cityscapes split, sorted."""
    root = Path(root)
    images = sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
    if not images:
        raise DataError(f"no Cityscapes images in {root / 'leftImg8bit' / split}/CITY/*_leftImg8bit.png")
    pairs = []
    for image in images:
        label = root / "gtFine" / split / image.parent.name / image.name.replace("_leftImg8bit.png",
                                                                                 "_gtFine_labelIds.png")
        if not label.is_file():
            raise DataError(f"{label} (the label of {image}) does not exist")
        pairs.append((image, label))
    return pairs


def gta5_pairs(root: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(``images/X.png``, ``labels/X.png``) pairs of GTA5, sorted."""
    root = Path(root)
    images = sorted((root / "images").glob("*.png"))
    if not images:
        raise DataError(f"no GTA5 images in {root / 'images'}/*.png")
    missing = [p.name for p in images if not (root / "labels" / p.name).is_file()]
    if missing:
        raise DataError(f"{len(missing)} GTA5 image(s) have no label in {root / 'labels'}, e.g. {missing[0]}")
    return [(p, root / "labels" / p.name) for p in images]


def synthia_pairs(root: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(``RGB/X.png``, ``GT/LABELS/X.png``) pairs of SYNTHIA-RAND-CITYSCAPES, sorted."""
    root = Path(root)
    images = sorted((root / "RGB").glob("*.png"))
    if not images:
        raise DataError(f"no SYNTHIA images in {root / 'RGB'}/*.png")
    missing = [p.name for p in images if not (root / "GT" / "LABELS" / p.name).is_file()]
    if missing:
        raise DataError(f"{len(missing)} SYNTHIA image(s) have no label in {root / 'GT' / 'LABELS'}, e.g. {missing[0]}")
    return [(p, root / "GT" / "LABELS" / p.name) for p in images]


_CITY_TABLE = lookup_table(CITYSCAPES_ID_TO_TRAIN, 256)
_SYNTHIA_TABLE = lookup_table(SYNTHIA_ID_TO_TRAIN)
_TO16 = lookup_table(TRAIN19_TO_16, 256)


def read_label(path: str | os.PathLike, kind: str, num_classes: int = 19) -> np.ndarray:
    """Train-id label map (H, W) uint8 of a label file; ``kind``: cityscapes, gta5 or synthia."""
    from PIL import Image

    if kind == "synthia":
        ids = read_png16(path)[..., 0]
        label = _SYNTHIA_TABLE[ids]
    elif kind in ("cityscapes", "gta5"):
        with Image.open(path) as image:
            ids = np.asarray(image)
        if ids.ndim != 2:
            raise DataError(f"{path} has shape {ids.shape}; expected a single-channel label-id image")
        label = _CITY_TABLE[ids]
    else:
        raise ValidationError(f"label kind={kind!r}; expected 'cityscapes', 'gta5' or 'synthia'")
    if num_classes == 16:
        label = _TO16[label]
    elif num_classes != 19:
        raise ValidationError(f"num_classes={num_classes}; expected 19 or 16 (SYNTHIA protocol)")
    return label


class FileSegmentation(Dataset):
    """Segmentation items read from (image, label) files, resized to ``size`` (H, W).

    Images are resized bilinearly, labels with nearest neighbour, or (``resize_labels=False``)
    kept at their file's size (mIoU at the full label resolution); ``flip`` draws a random
    horizontal flip from torch's global RNG.
    """

    def __init__(self, pairs, kind: str, num_classes: int, size: tuple[int, int], *, flip: bool = False,
                 resize_labels: bool = True, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.pairs, self.kind, self.num_classes = list(pairs), kind, num_classes
        self.size, self.flip, self.resize_labels = (int(size[0]), int(size[1])), flip, resize_labels
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        from PIL import Image

        image_path, label_path = self.pairs[index]
        h, w = self.size
        with Image.open(image_path) as image:
            pixels = np.asarray(image.convert("RGB").resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
        label = read_label(label_path, self.kind, self.num_classes)
        if self.resize_labels:
            label = np.asarray(Image.fromarray(label).resize((w, h), Image.NEAREST))
        image_t = (torch.from_numpy(pixels.transpose(2, 0, 1).copy()) - self.mean) / self.std
        label_t = torch.from_numpy(label.astype(np.int64))
        if self.flip and bool(torch.rand(()) < 0.5):
            image_t, label_t = image_t.flip(-1), label_t.flip(-1)
        return image_t, label_t


# --- the domains of a run ---------------------------------------------------------------------

@dataclasses.dataclass
class DomainData:
    """Source and target splits of a run, described like a ``TrainingData`` for the model card.

    ``train`` is the labelled source training set, ``test`` the target evaluation set (labels
    used for mIoU only), ``target_train`` the unlabelled target pool the selection draws from
    (its labels are read only for the selected images), ``target_conditions`` the condition
    index of each target training image (generated scenes; -1 elsewhere).
    """

    name: str
    train: Dataset
    test: Dataset
    target_train: Dataset
    source_plain: Dataset
    num_classes: int
    classes: tuple[str, ...]
    preprocessing: Preprocessing
    fingerprint: str
    description: str
    target_conditions: np.ndarray


def _digest(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def load_scenes(*, augment: bool = True, seed: int = 0, source_images: int = 240, target_images: int = 200,
                test_images: int = 100, size: int = 48) -> DomainData:
    """The generated scene domains (registered as ``mada_scenes``; see the module docstring).

    ``augment`` flips the source training images; the counts are images per split, ``size``
    their side in pixels. The fingerprint hashes every generated array.
    """
    src_x, src_y, _ = generate_scenes(seed, "source_train", source_images, size)
    tgt_x, tgt_y, cond = generate_scenes(seed, "target_train", target_images, size)
    test_x, test_y, _ = generate_scenes(seed, "target_test", test_images, size)
    mean = std = (0.5, 0.5, 0.5)
    arrays = (src_x, src_y, tgt_x, tgt_y, test_x, test_y)
    fingerprint = hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest()
    return DomainData(
        "mada_scenes", ArraySegmentation(src_x, src_y, mean, std, flip=augment),
        ArraySegmentation(test_x, test_y, mean, std), ArraySegmentation(tgt_x, tgt_y, mean, std),
        ArraySegmentation(src_x, src_y, mean, std), len(SCENE_CLASSES), SCENE_CLASSES,
        Preprocessing(input_size=size, mean=mean, std=std), fingerprint,
        f"generated scenes (seed {seed}, {size} px): {len(src_y)} source, {len(tgt_y)} target "
        f"training, {len(test_y)} target test images; target conditions "
        + ", ".join(f"{s.name} {p:.0%}" for s, p in TARGET_CONDITIONS), cond)


def load_domains(config) -> DomainData:
    """The run's domains from its config (``dataset``: scenes, gta5_cityscapes or synthia_cityscapes)."""
    if config.dataset == "scenes":
        return load_scenes(augment=config.augment, seed=config.scene_seed, source_images=config.source_images,
                           target_images=config.target_images, test_images=config.test_images,
                           size=int(config.image_size[0]))
    source_kind = {"gta5_cityscapes": "gta5", "synthia_cityscapes": "synthia"}.get(config.dataset)
    if source_kind is None:
        raise ValidationError(f"config field 'dataset' is {config.dataset!r}; expected 'scenes', "
                              "'gta5_cityscapes' or 'synthia_cityscapes'")
    if not config.source_root or not config.target_root:
        raise ValidationError(f"dataset {config.dataset!r} needs the config fields 'source_root' (the "
                              f"{source_kind.upper()} folder) and 'target_root' (the Cityscapes folder)")
    num_classes = int(config.num_classes)
    source = gta5_pairs(config.source_root) if source_kind == "gta5" else synthia_pairs(config.source_root)
    target, test = cityscapes_pairs(config.target_root, "train"), cityscapes_pairs(config.target_root, "val")
    size = tuple(int(v) for v in config.image_size)
    classes = CITYSCAPES_CLASSES if num_classes == 19 else tuple(c for i, c in enumerate(CITYSCAPES_CLASSES)
                                                                  if i in TRAIN19_TO_16)
    listing = [[str(p.relative_to(root)), p.stat().st_size] for pairs, root in
               ((source, Path(config.source_root)), (target, Path(config.target_root)), (test, Path(config.target_root)))
               for pair in pairs for p in pair]
    full_labels = config.eval_labels == "full_resolution"
    return DomainData(
        config.dataset, FileSegmentation(source, source_kind, num_classes, size, flip=config.augment),
        FileSegmentation(test, "cityscapes", num_classes, size, resize_labels=not full_labels),
        FileSegmentation(target, "cityscapes", num_classes, size),
        FileSegmentation(source, source_kind, num_classes, size), num_classes, classes,
        Preprocessing(input_size=max(size)),
        _digest([num_classes, list(size), listing] + (["full_resolution_test_labels"] if full_labels else [])),
        f"{source_kind.upper()} ({len(source)}) -> Cityscapes train ({len(target)}) / val ({len(test)}), "
        f"{num_classes} classes, {size[0]}x{size[1]} px"
        + (", test labels at their full resolution" if full_labels else ""), np.full(len(target), -1))
