"""PART's datasets: a generated fine-grained task for the CPU, and the three fine-grained benchmarks.

``fg_motifs`` (the tiny preset) is generated deterministically from ``data_seed``
(:func:`make_motif_task`). Every image (32 x 32 RGB) shows the same kind of object: an ellipse
filled with a random grating texture on a noisy background. What tells the classes apart is
only a small *motif*, a 5 x 5 binary glyph (one glyph per class, all with the same number of
dark cells, pairwise different in at least 6 cells) stamped at a random position inside the
object; a *distractor* glyph (from a separate set shared by all classes) is stamped at another
random position, so that "where is a glyph" does not give the class away. Each split records
the motif box of every image (``motif_boxes``: half-open ``(x1, y1, x2, y2)`` in pixels) for
the part hit rate (:mod:`.analysis`).

The benchmarks ``cub200``, ``stanford_cars`` and ``fgvc_aircraft`` are read by
:mod:`workbench.data.training` (``cub200`` shared with SAVC) at PART's view, the reference code's
(``datasets/make_dataloader.py``): 448 px, test ``Resize(512, 512)`` + centre crop,
``"fine_grained"`` augmentation (:mod:`workbench.data.training.transforms`).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch.utils.data import Dataset

from workbench.data.training import TrainingData
from workbench.errors import ValidationError
from workbench.models.preprocessing import Preprocessing

#: The fine-grained benchmarks (read at :data:`BENCHMARK_VIEW`); ``fg_motifs`` is generated here.
DATASETS = ("cub200", "stanford_cars", "fgvc_aircraft")
MOTIF = 5  # glyph side, pixels
SIZE = 32  # image side of fg_motifs, pixels


# --- the generated task -----------------------------------------------------------------------
def make_glyphs(count: int, rng: np.random.Generator, *, on: int = 12, min_distance: int = 6) -> np.ndarray:
    """``count`` distinct 5 x 5 binary glyphs (bool, (count, 5, 5)), ``on`` cells each, >= ``min_distance`` apart."""
    glyphs: list[np.ndarray] = []
    for _ in range(100_000):
        g = np.zeros(MOTIF * MOTIF, dtype=bool)
        g[rng.choice(MOTIF * MOTIF, on, replace=False)] = True
        if all(np.sum(g != h) >= min_distance for h in glyphs):
            glyphs.append(g)
            if len(glyphs) == count:
                return np.stack(glyphs).reshape(count, MOTIF, MOTIF)
    raise ValidationError(f"could not draw {count} glyphs {min_distance} cells apart")


def _render(rng: np.random.Generator, glyph: np.ndarray, distractor: np.ndarray) -> tuple[np.ndarray, tuple]:
    """One uint8 image (32, 32, 3) and its motif box."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    image = 0.55 + 0.08 * rng.standard_normal((SIZE, SIZE, 1)) + 0.05 * rng.standard_normal((1, 1, 3))
    cy, cx = 15.5 + rng.uniform(-1.5, 1.5, 2)
    ry, rx = rng.uniform(11.5, 13.5, 2)
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    texture = np.zeros((SIZE, SIZE))
    for _ in range(2):
        theta, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.5, 1.1), rng.uniform(0, 2 * np.pi)
        texture += np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy) + phase)
    colour = np.array([0.72, 0.52, 0.32]) + 0.04 * rng.standard_normal(3)
    obj = colour[None, None, :] * (1.0 + 0.12 * texture[..., None])
    image = np.where(inside[..., None], obj, image)
    # glyph positions: top-left corners whose 5 x 5 square lies inside the object, not overlapping
    sums = np.pad(inside.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    area = sums[MOTIF:, MOTIF:] - sums[:-MOTIF, MOTIF:] - sums[MOTIF:, :-MOTIF] + sums[:-MOTIF, :-MOTIF]
    ok = area == MOTIF * MOTIF
    candidates = np.argwhere(ok)
    y0, x0 = candidates[rng.integers(len(candidates))]
    far = candidates[(np.abs(candidates[:, 0] - y0) >= MOTIF + 1) | (np.abs(candidates[:, 1] - x0) >= MOTIF + 1)]
    y1, x1 = far[rng.integers(len(far))]
    ink = 0.12 + 0.03 * rng.standard_normal(3)
    for (y, x), g in (((y0, x0), glyph), ((y1, x1), distractor)):
        patch = image[y:y + MOTIF, x:x + MOTIF]
        patch[g] = ink
    pixels = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    return pixels, (int(x0), int(y0), int(x0) + MOTIF, int(y0) + MOTIF)


class MotifImages(Dataset):
    """Generated images; item ``(image (3, 32, 32) float normalised with mean = std = 0.5, label)``.

    ``augment``: a random translation by up to 2 px (reflect padding), drawn from torch's
    global RNG. Attributes ``pixels`` (N, 32, 32, 3) uint8, ``targets``, ``motif_boxes`` (N, 4).
    """

    def __init__(self, pixels: np.ndarray, targets: np.ndarray, boxes: np.ndarray, augment: bool = False):
        self.pixels = pixels
        self.targets = [int(t) for t in targets]
        self.motif_boxes = boxes
        self.augment = augment
        self._images = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        image = self._images[i]
        if self.augment:
            dy, dx = (int(v) for v in torch.randint(0, 5, (2,)))
            padded = torch.nn.functional.pad(image[None], (2, 2, 2, 2), mode="reflect")[0]
            image = padded[:, dy:dy + SIZE, dx:dx + SIZE]
        return image, self.targets[i]


def make_motif_task(seed: int = 0, *, classes: int = 10, train_per_class: int = 80, test_per_class: int = 40,
                    distractors: int = 3) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Generate the ``fg_motifs`` splits.

    Returns ``{"train"|"test": (pixels (N, 32, 32, 3) uint8, labels (N,), boxes (N, 4))}``.

    Deterministic in its arguments; items are class-interleaved (``label = i % classes``).
    """
    if classes < 2 or train_per_class < 1 or test_per_class < 1 or distractors < 1:
        raise ValidationError("fg_motifs needs classes >= 2, train_per_class, test_per_class and distractors >= 1; "
                              f"found {classes}, {train_per_class}, {test_per_class}, {distractors}")
    rng = np.random.default_rng([int(seed), 14])
    glyphs = make_glyphs(classes + distractors, rng)
    out = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        split_rng = np.random.default_rng([int(seed), 14, 0 if split == "train" else 1])
        n = classes * per_class
        labels = np.arange(n) % classes
        pixels = np.zeros((n, SIZE, SIZE, 3), dtype=np.uint8)
        boxes = np.zeros((n, 4), dtype=np.int64)
        for i, y in enumerate(labels):
            d = glyphs[classes + split_rng.integers(distractors)]
            pixels[i], boxes[i] = _render(split_rng, glyphs[y], d)
        out[split] = (pixels, labels, boxes)
    return out


def load_motif_task(seed: int = 0, *, augment: bool = True, classes: int = 10, train_per_class: int = 80,
                    test_per_class: int = 40, distractors: int = 3) -> TrainingData:
    """The ``fg_motifs`` task as :class:`~workbench.data.training.TrainingData` (registered as
    ``fg_motifs``; see the module docstring and :func:`make_motif_task`)."""
    sizes = {"classes": classes, "train_per_class": train_per_class, "test_per_class": test_per_class,
             "distractors": distractors}
    splits = make_motif_task(seed, **sizes)
    digest = hashlib.sha256(repr(sorted(sizes.items())).encode() + str(seed).encode())
    for split in ("train", "test"):
        for array in splits[split]:
            digest.update(np.ascontiguousarray(array).tobytes())
    classes = int(splits["train"][1].max()) + 1
    train = MotifImages(*splits["train"], augment=augment)
    test = MotifImages(*splits["test"], augment=False)
    return TrainingData(
        name="fg_motifs", train=train, test=test, num_classes=classes,
        classes=tuple(f"motif{c}" for c in range(classes)),
        preprocessing=Preprocessing(input_size=SIZE, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        fingerprint=digest.hexdigest(),
        description=(f"fg_motifs (generated, seed {seed}): {classes} classes told apart by a 5 px motif on a "
                     f"textured object, {len(train)} train / {len(test)} test images, 32 px"
                     + (", random 2 px shifts" if augment else "")))


#: The view PART asks of the benchmark datasets (:func:`~workbench.data.training.transforms.image_transforms`).
BENCHMARK_VIEW = {"size": 448, "resize": (512, 512), "augmentation": "fine_grained"}


def load_data(config, *, augment: bool) -> TrainingData:
    """The registered dataset a :class:`~.train.PARTConfig` names (``fg_motifs`` from its ``tiny_*`` fields,
    the benchmarks at :data:`BENCHMARK_VIEW`)."""
    from workbench.data.training import load_training_data

    options = {}
    if config.dataset == "fg_motifs":
        options = {"seed": config.data_seed, "classes": config.tiny_classes,
                   "train_per_class": config.tiny_train_per_class, "test_per_class": config.tiny_test_per_class}
    elif config.dataset in DATASETS:
        options = BENCHMARK_VIEW
    return load_training_data(config.dataset, root=config.data_root, augment=augment, **options)
