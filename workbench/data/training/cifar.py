"""CIFAR-10 and CIFAR-100 from their official "python version" pickled batches.

The batches are read by a small reader of our own (not torchvision's dataset class, whose md5
check is the only check it makes): each file is read once, hashed into the fingerprint and
unpickled with an unpickler that admits only the numpy array constructors, so a tampered file
cannot run code. torchvision is used only to download and extract the official archive.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from workbench.errors import DataError
from workbench.models.preprocessing import Preprocessing

log = logging.getLogger(__name__)

#: Per-channel RGB mean and std of the CIFAR-10 training pixels (scaled to [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
#: Per-channel RGB mean and std of the CIFAR-100 training pixels (scaled to [0, 1]).
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
#: Training augmentation: random 32x32 crop of the image zero-padded by this many pixels.
PAD = 4


@dataclass(frozen=True)
class CifarSpec:
    name: str
    title: str
    folder: str                   # sub-folder of root that the archive extracts to
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    url: str
    archive: str
    archive_md5: str

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train_files, self.test_file, self.meta_file)

    def layout(self, root: Path) -> str:
        if len(self.train_files) > 1:
            train = f"{self.train_files[0]}..{self.train_files[-1][-1]}"
        else:
            train = self.train_files[0]
        return f"{root}/{self.folder}/{{{train},{self.test_file},{self.meta_file}}}"


SPECS = {
    "cifar10": CifarSpec(
        name="cifar10", title="CIFAR-10", folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_file="test_batch",
        meta_file="batches.meta", label_key="labels", names_key="label_names",
        num_classes=10, mean=CIFAR10_MEAN, std=CIFAR10_STD,
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        archive="cifar-10-python.tar.gz", archive_md5="c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": CifarSpec(
        name="cifar100", title="CIFAR-100", folder="cifar-100-python",
        train_files=("train",), test_file="test", meta_file="meta",
        label_key="fine_labels", names_key="fine_label_names",
        num_classes=100, mean=CIFAR100_MEAN, std=CIFAR100_STD,
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        archive="cifar-100-python.tar.gz", archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
    ),
}

# Globals a CIFAR pickle may name: numpy's array and dtype constructors, nothing else.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol 2 stores Python 3 bytes
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"the pickle refers to {module}.{name}; a CIFAR batch holds only numpy arrays, "
                "lists, bytes and ints"
            )
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.split(".", 2)[2]
        return super().find_class(module, name)


def _unpickle(path: Path, payload: bytes) -> dict:
    try:
        obj = _ArrayUnpickler(io.BytesIO(payload), encoding="bytes").load()
    except Exception as exc:  # EOFError, UnpicklingError, ValueError, ... on a bad file
        raise DataError(
            f"{path}: cannot read the CIFAR pickle ({type(exc).__name__}: {exc}); the file is "
            "truncated or corrupt: delete it and extract the archive again"
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _field(path: Path, d: dict, key: str):
    if key not in d:
        raise DataError(f"{path}: no {key!r} entry (found keys {sorted(d)})")
    return d[key]


def _read_batch(path: Path, payload: bytes, spec: CifarSpec) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one batch file."""
    d = _unpickle(path, payload)
    data = np.asarray(_field(path, d, "data"))
    labels = np.asarray(_field(path, d, spec.label_key))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(
            f"{path}: 'data' must be a uint8 array of shape (N, 3072), found {data.dtype} "
            f"{data.shape}"
        )
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{path}: {spec.label_key!r} must hold {len(data)} integer labels (one per row of "
            f"'data'), found {labels.dtype} {labels.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise DataError(
            f"{path}: labels range {labels.min()}..{labels.max()}, expected 0.."
            f"{spec.num_classes - 1} for {spec.title}"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _read_names(path: Path, payload: bytes, spec: CifarSpec) -> tuple[str, ...]:
    names = _field(path, _unpickle(path, payload), spec.names_key)
    names = tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)
    if len(names) != spec.num_classes:
        raise DataError(
            f"{path}: {spec.names_key!r} holds {len(names)} names, expected {spec.num_classes}"
        )
    return names


class CifarImages(torch.utils.data.Dataset):
    """uint8 CIFAR images in memory, returned normalised, optionally augmented.

    Parameters
    ----------
    images : torch.Tensor
        uint8, shape (N, 3, 32, 32).
    labels : torch.Tensor
        int64, shape (N,).
    mean, std : tuple of 3 floats
        Normalisation applied to the pixels scaled to [0, 1].
    augment : bool
        Random 32x32 crop of the image zero-padded by :data:`PAD` px, then a horizontal flip
        with probability 1/2: the same draws from torch's global RNG (``randint`` for the
        top, ``randint`` for the left offset, ``rand`` for the flip), in the same order, and
        so the same images as ``v2.Compose([v2.RandomCrop(32, padding=4),
        v2.RandomHorizontalFlip()])`` (:func:`reference_augmentation`), several times faster.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean, std, *,
                 augment: bool = False):
        self._images = images
        self.targets = labels.tolist()
        self.mean, self.std = list(mean), list(std)
        self.augment = bool(augment)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        x = self._images[index]
        if self.augment:
            x = _crop_flip(x)
        x = TF.normalize(x.to(torch.float32).div_(255.0), self.mean, self.std)
        return x, self.targets[index]


def reference_augmentation() -> v2.Compose:
    """The torchvision pipeline that :class:`CifarImages` reproduces draw for draw."""
    return v2.Compose([v2.RandomCrop(32, padding=PAD), v2.RandomHorizontalFlip()])


def _crop_flip(x: torch.Tensor) -> torch.Tensor:
    """Random 32x32 crop of ``x`` (3, 32, 32) zero-padded by PAD, then a random h-flip."""
    span = 32 + 2 * PAD - 32 + 1
    top = int(torch.randint(0, span, size=()))
    left = int(torch.randint(0, span, size=()))
    flip = bool(torch.rand(1) < 0.5)
    out = torch.zeros_like(x)
    # rows/cols of the output that the image covers, and where they come from in x
    r0, r1 = max(PAD - top, 0), min(32 + PAD - top, 32)
    c0, c1 = max(PAD - left, 0), min(32 + PAD - left, 32)
    out[:, r0:r1, c0:c1] = x[:, r0 + top - PAD:r1 + top - PAD, c0 + left - PAD:c1 + left - PAD]
    return out.flip(-1) if flip else out


def _missing_message(spec: CifarSpec, root: Path, missing: list[str], download: bool) -> str:
    folder = root / spec.folder
    where = (f"{folder} lacks {', '.join(missing)}" if folder.is_dir()
             else f"folder {folder} does not exist")
    hint = "" if download else "; or pass download=True when online"
    return (
        f"{spec.title} files not found: {where}. Put the files in {root}: extract "
        f"{spec.url} there, giving the layout {spec.layout(root)}{hint}"
    )


def _download(spec: CifarSpec, root: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    log.info("downloading %s from %s into %s", spec.title, spec.url, root)
    try:
        download_and_extract_archive(spec.url, str(root), filename=spec.archive,
                                     md5=spec.archive_md5)
    except Exception as exc:  # URLError, RuntimeError (md5), OSError, ...
        raise DataError(
            f"downloading {spec.title} from {spec.url} into {root} failed "
            f"({type(exc).__name__}: {exc}). Offline, extract the archive into {root} by "
            f"hand, giving the layout {spec.layout(root)}"
        ) from exc


def load_cifar(name: str, *, root=None, augment: bool = True, download: bool = False):
    """Build the CIFAR-10 or CIFAR-100 :class:`~workbench.data.training.TrainingData`.

    Parameters
    ----------
    name : {"cifar10", "cifar100"}
    root : path-like, optional
        Folder holding ``cifar-10-batches-py/`` or ``cifar-100-python/``; defaults to
        ``$WORKBENCH_DATA/training/<name>``.
    augment : bool, default: True
        Train augmentation (random crop with 4 px zero padding + horizontal flip).
    download : bool, default: False
        Download and extract the official archive into ``root`` when a file is missing.

    Raises
    ------
    DataError
        Missing files (names the folder, the expected layout and the URL), a failed
        download, or a truncated, corrupt or malformed batch file (names the file).
    """
    from workbench.data.training.base import TrainingData, default_root

    spec = SPECS[name]
    root = Path(root) if root is not None else default_root(name)
    folder = root / spec.folder

    def missing_files():
        return [f for f in spec.files if not (folder / f).is_file()]

    missing = missing_files()
    if missing and download:
        _download(spec, root)
        missing = missing_files()
    if missing:
        raise DataError(_missing_message(spec, root, missing, download))

    digest = hashlib.sha256(f"{spec.name}: official train/test batches\n".encode())
    parts = {}
    for fname in spec.files:
        path = folder / fname
        payload = path.read_bytes()
        digest.update(f"{spec.folder}/{fname}\0{len(payload)}\0".encode())
        digest.update(payload)
        parts[fname] = (path, payload)

    train_parts = [_read_batch(*parts[f], spec) for f in spec.train_files]
    x_train = np.concatenate([p[0] for p in train_parts])
    y_train = np.concatenate([p[1] for p in train_parts])
    x_test, y_test = _read_batch(*parts[spec.test_file], spec)
    classes = _read_names(*parts[spec.meta_file], spec)
    del parts, train_parts

    train = CifarImages(torch.from_numpy(np.ascontiguousarray(x_train)),
                        torch.from_numpy(y_train), spec.mean, spec.std, augment=augment)
    test = CifarImages(torch.from_numpy(np.ascontiguousarray(x_test)),
                       torch.from_numpy(y_test), spec.mean, spec.std)
    aug = (f"random crop 32 with {PAD} px zero padding + horizontal flip" if augment
           else "no augmentation")
    description = (
        f"{spec.title} ({folder}): official split, train {len(train):,} / test {len(test):,} "
        f"32x32 RGB images; train augmentation: {aug}"
    )
    return TrainingData(
        name=spec.name,
        train=train,
        test=test,
        num_classes=spec.num_classes,
        classes=classes,
        preprocessing=Preprocessing(input_size=32, mean=spec.mean, std=spec.std),
        fingerprint=digest.hexdigest(),
        description=description,
    )


#: The registry's loaders (:mod:`workbench.data.training.base`): :func:`load_cifar` of one archive.
load_cifar10 = functools.partial(load_cifar, "cifar10")
load_cifar100 = functools.partial(load_cifar, "cifar100")
