"""Stimulus sets: the images of a dataset, in the order of its responses, loaded lazily."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from workbench.errors import DataError
from workbench.storage import sha256_file


def _image_from_array(array: np.ndarray, where: str) -> Image.Image:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise DataError(f"{where}: expected an H x W or H x W x 3 image, found shape {array.shape}")
    if array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 255:
            raise DataError(
                f"{where}: pixel values must lie in [0, 255], found [{array.min()}, {array.max()}]"
            )
        array = array.astype(np.uint8)
    return Image.fromarray(array, mode="L" if array.ndim == 2 else "RGB")


def _open_image(source, where: str) -> Image.Image:
    """Decode an image file (path or file object) as RGB or L; errors name ``where``."""
    try:
        image = Image.open(source)
        image.load()
    except Exception as exc:
        raise DataError(f"{where}: cannot read image ({exc})") from exc
    return image if image.mode in ("RGB", "L") else image.convert("RGB")


class _ZipImages:
    """Reads image ``i`` = ``members[i]`` of a zip, keeping the archive open between reads.

    Opening a zip parses its whole central directory, so reopening it for every image costs
    more than decoding the image. The open handle is dropped when pickled and reopened lazily.
    """

    def __init__(self, path: Path, members: list[str]):
        self.path, self.members = path, members
        self._archive = None

    def __getstate__(self):
        return {"path": self.path, "members": self.members, "_archive": None}

    def __call__(self, i: int) -> Image.Image:
        where = f"{self.path}: image {self.members[i]!r}"
        try:
            if self._archive is None:
                self._archive = zipfile.ZipFile(self.path)
            data = self._archive.read(self.members[i])
        except Exception as exc:
            raise DataError(f"{where}: cannot read it from the zip ({exc})") from exc
        return _open_image(io.BytesIO(data), where)


class StimulusSet(Sequence):
    """The images of a dataset, in the same order as its responses.

    ``stimuli[i]`` is a ``PIL.Image`` (mode ``"RGB"`` or ``"L"``) read on demand from its
    source (an array, a zip of image files or a folder). Use the ``from_*`` constructors.

    Attributes
    ----------
    ids : list of str
        One identifier per image, in order; these are the ``stimulus_id`` coordinates of the
        dataset's assemblies.
    """

    #: False for a set of ids without images (:meth:`without_images`).
    has_images = True

    def __init__(self, ids: Sequence[str], read: Callable[[int], Image.Image], source_key: str):
        ids = [str(i) for i in ids]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise DataError(f"stimulus ids must be unique, found duplicates such as {dupes}")
        self.ids = ids
        self._read = read
        self._source_key = source_key

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"stimulus index {index} out of range for {n} stimuli")
        return self._read(index % n)

    def __repr__(self) -> str:
        images = "" if self.has_images else ", no images"
        return f"StimulusSet({len(self)} stimuli, first id {self.ids[0]!r}{images})"

    def to_array(self, index: int) -> np.ndarray:
        """Image ``index`` as a uint8 array, H x W x 3 (RGB) or H x W (grayscale)."""
        return np.asarray(self[index])

    def fingerprint(self) -> str:
        """A sha256 hex digest identifying these exact images in this order.

        It hashes the digests of the source files (or arrays) and the ids, not decoded
        pixels, so it is cheap; any change of image content, id or order changes it.
        """
        digest = hashlib.sha256(self._source_key.encode())
        for stimulus_id in self.ids:
            digest.update(b"\0" + stimulus_id.encode())
        return digest.hexdigest()

    @classmethod
    def without_images(cls, ids: Sequence[str], where: str) -> "StimulusSet":
        """Stimulus ids of a recording whose images are not available (``has_images`` False).

        Enough to score precomputed model features against the responses (rows in this
        order); reading an image, e.g. to extract a network's activations, raises a
        DataError that names ``where``.
        """

        def no_image(i: int) -> Image.Image:
            raise DataError(
                f"{where}: stimulus {ids[i]!r} has no image: the dataset was loaded without "
                "images (its manifest gives `images: null`), so network activations cannot be "
                "extracted for it; score precomputed features with workbench.metrics.compare, "
                "or give the images in the manifest's option 'images'"
            )

        ids = [str(i) for i in ids]
        out = cls(ids, no_image, "no-images")
        out.has_images = False
        return out

    @classmethod
    def from_arrays(cls, arrays: Sequence[np.ndarray], ids: Sequence[str]) -> "StimulusSet":
        """Images held in memory (e.g. read from a .mat struct), one array per image."""
        if len(arrays) != len(ids):
            raise DataError(f"found {len(arrays)} images but {len(ids)} stimulus ids")
        digest = hashlib.sha256()
        for array in arrays:
            array = np.ascontiguousarray(array)
            digest.update(str((array.shape, array.dtype.str)).encode())
            digest.update(array.tobytes())
        arrays = list(arrays)
        return cls(ids, lambda i: _image_from_array(arrays[i], f"stimulus {ids[i]!r}"),
                   "arrays:" + digest.hexdigest())

    @classmethod
    def from_zip(cls, path: str | Path, members: Sequence[str],
                 ids: Sequence[str]) -> "StimulusSet":
        """Image files inside a zip archive, ``members[i]`` being image ``i``.

        Raises
        ------
        DataError
            The zip is unreadable or truncated, or a member is missing.
        """
        path = Path(path)
        if len(members) != len(ids):
            raise DataError(f"{path}: {len(members)} member names but {len(ids)} stimulus ids")
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"{path}: not a readable zip archive ({exc})") from exc
        missing = [m for m in members if m not in names]
        if missing:
            raise DataError(
                f"{path}: {len(missing)} image(s) missing from the zip, e.g. {missing[:3]}; "
                f"the archive holds {len(names)} files"
            )
        read = _ZipImages(path, list(members))
        return cls(ids, read, f"zip:{sha256_file(path)}:" + "\0".join(members))

    @classmethod
    def from_folder(cls, folder: str | Path, filenames: Sequence[str],
                    ids: Sequence[str]) -> "StimulusSet":
        """Image files in a folder, ``filenames[i]`` (relative to ``folder``) being image ``i``.

        The fingerprint hashes every file once, when the set is built.
        """
        folder = Path(folder)
        if len(filenames) != len(ids):
            raise DataError(f"{folder}: {len(filenames)} file names but {len(ids)} stimulus ids")
        paths = [folder / f for f in filenames]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise DataError(f"{folder}: {len(missing)} image file(s) missing, e.g. {missing[:3]}")
        digest = hashlib.sha256()
        for p in paths:
            digest.update(sha256_file(p).encode())

        return cls(ids, lambda i: _open_image(paths[i], str(paths[i])), "files:" + digest.hexdigest())
