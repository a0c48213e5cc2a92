"""JPEG files: their quantisation tables, QAC, and encoding/decoding with Pillow.

Element order
-------------
Every table here is in **natural 8 x 8 order**, row-major: element ``8 * u + v`` is the step of
the DCT coefficient of vertical frequency ``u`` and horizontal frequency ``v`` (element 0 is DC).
That is the order in which Pillow (>= 8.3) returns ``Image.quantization`` (the file stores the
tables in zigzag order; Pillow un-zigzags them), so a table read here equals ITU-T T.81 Annex K's
Table K.1 (luma) or K.2 (chroma) at quality 50, scaled by libjpeg's quality rule at other
qualities. The 128-vector a network reads is luma (64) then chroma (64).

Paths for each kind of file (:func:`read_quantization`)
-------------------------------------------------------
- baseline or progressive YCbCr JPEG: tables 0 (luma) and 1 (chroma); ``kind="jpeg"``.
  A third or fourth table (rare encoders quantise Cr separately) is ignored; tables 0 and 1 are
  what Pillow and libjpeg use for Y and Cb.
- grayscale JPEG (mode ``L``, one table): the luma table is used for both halves, the image is
  replicated to three channels; ``kind="grayscale"``.
- PNG, BMP, PPM/PGM (lossless): the explicit *uncompressed* path, tables of ones (step 1 = no
  quantisation, QAC = 1); ``kind="uncompressed"``.
- CMYK JPEG: :class:`~workbench.errors.DataError` (no RGB conversion is unambiguous for it).
- a JPEG without a table 0, with a zero step, a truncated or corrupt file, any other format:
  :class:`~workbench.errors.DataError` naming the file. Never a silent default table.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass

import numpy as np

from workbench.errors import DataError

#: Lossless formats that take the uncompressed path.
LOSSLESS_FORMATS = ("PNG", "BMP", "PPM")


@dataclass(frozen=True)
class QuantTables:
    """Quantisation tables of one image file.

    Attributes
    ----------
    luma, chroma : ndarray of float64, shape (64,)
        Quantisation steps in natural 8 x 8 order (see the module docstring).
    kind : {"jpeg", "grayscale", "uncompressed"}
    source : str
        The file the tables were read from (``"<bytes>"`` for an in-memory file).
    """

    luma: np.ndarray
    chroma: np.ndarray
    kind: str
    source: str

    @property
    def vector(self) -> np.ndarray:
        """(128,) float32: luma then chroma, the network's input."""
        return np.concatenate([self.luma, self.chroma]).astype(np.float32)

    @property
    def qac(self) -> float:
        """Quantisation-aware confidence of these tables (see :func:`qac`)."""
        return qac(self.luma, self.chroma)


def qac(luma, chroma) -> float:
    """QAC = (1/128) * (sum of 1/Q over the 64 luma and the 64 chroma steps).

    Parameters
    ----------
    luma, chroma : array-like, shape (64,)
        Quantisation steps (> 0).

    Returns
    -------
    float
        1 for tables of ones (uncompressed); smaller for coarser quantisation.
    """
    steps = np.concatenate([np.asarray(luma, dtype=np.float64).ravel(), np.asarray(chroma, dtype=np.float64).ravel()])
    if steps.shape != (128,) or np.any(steps <= 0):
        raise DataError(f"QAC needs 64 luma and 64 chroma steps > 0, found {steps.shape[0]} values "
                        f"with minimum {steps.min() if steps.size else 'n/a'}")
    return float(np.sum(1.0 / steps) / 128.0)


def _name(file) -> str:
    if isinstance(file, (str, os.PathLike)):
        return str(file)
    return getattr(file, "name", "<bytes>") if not isinstance(file, (bytes, bytearray)) else "<bytes>"


def open_image(file):
    """``(PIL image loaded and converted to RGB, QuantTables)`` of an image file (see the module docstring).

    Parameters
    ----------
    file : path, bytes or binary file object

    Raises
    ------
    DataError
        Unreadable, truncated or corrupt files, CMYK JPEGs, JPEGs without a luma table, lossy
        formats other than JPEG; the message names the file.
    """
    from PIL import Image, UnidentifiedImageError

    name = _name(file)
    handle = io.BytesIO(bytes(file)) if isinstance(file, (bytes, bytearray)) else file
    try:
        image = Image.open(handle)
        image.load()   # decode now: a truncated file fails here, not later
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read the image {name}: {exc} (a truncated or corrupt file?)") from None
    fmt = image.format
    if fmt == "JPEG":
        if image.mode == "CMYK":
            raise DataError(f"{name} is a CMYK JPEG; QSAM reads YCbCr or grayscale JPEGs "
                            "(convert it to RGB with its colour profile first)")
        tables = getattr(image, "quantization", None) or {}
        if 0 not in tables:
            raise DataError(f"{name} is a JPEG without a readable luma quantisation table "
                            f"(found table ids {sorted(tables)}); expected tables 0 and 1")
        luma = np.asarray(tables[0], dtype=np.float64)
        if image.mode == "L":
            chroma, kind = luma, "grayscale"
        else:
            if 1 not in tables:
                raise DataError(f"{name} is a colour JPEG ({image.mode}) with only table(s) {sorted(tables)}; "
                                "expected a chroma table 1")
            chroma, kind = np.asarray(tables[1], dtype=np.float64), "jpeg"
        for label, table in (("luma", luma), ("chroma", chroma)):
            if table.shape != (64,) or np.any(table <= 0):
                raise DataError(f"{name}: its {label} quantisation table has {table.size} values, minimum "
                                f"{table.min() if table.size else 'n/a'}; expected 64 steps >= 1")
        quant = QuantTables(luma, chroma, kind, name)
    elif fmt in LOSSLESS_FORMATS:
        ones = np.ones(64)
        quant = QuantTables(ones, ones, "uncompressed", name)
    else:
        raise DataError(f"{name} is a {fmt} image; expected a JPEG, or a lossless "
                        f"{'/'.join(LOSSLESS_FORMATS)} file (the uncompressed path)")
    return image.convert("RGB"), quant


def read_quantization(file) -> QuantTables:
    """The quantisation tables of an image file (see :func:`open_image` for every path)."""
    return open_image(file)[1]


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB image at ``quality`` (Pillow/libjpeg, 4:2:0 subsampling, baseline).

    Parameters
    ----------
    pixels : ndarray of uint8, shape (H, W, 3)
    quality : int
        1..100 (libjpeg's scaling of the Annex K tables).
    """
    from PIL import Image

    if not 1 <= int(quality) <= 100:
        raise DataError(f"JPEG quality must be in 1..100, found {quality}")
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def decode(data: bytes) -> tuple[np.ndarray, QuantTables]:
    """``(pixels uint8 (H, W, 3), tables)`` of an encoded image."""
    image, tables = open_image(data)
    return np.asarray(image, dtype=np.uint8), tables


@functools.lru_cache(maxsize=256)
def quality_tables(quality: int | None) -> QuantTables:
    """Tables that this Pillow writes at ``quality`` (``None``: the uncompressed tables of ones).

    Read back from a JPEG file Pillow writes (an 8 x 8 mid-grey image): what any file of that
    quality from this encoder holds.
    """
    if quality is None:
        ones = np.ones(64)
        return QuantTables(ones, ones, "uncompressed", "<none>")
    return decode(encode_jpeg(np.full((8, 8, 3), 128, np.uint8), quality))[1]
