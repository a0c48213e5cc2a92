"""QSAM's JPEG layer: tables read back from files Pillow writes, QAC, and every bad-input path."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from workbench.errors import DataError
from workbench.methods.qsam.jpeg import decode, encode_jpeg, open_image, qac, quality_tables, read_quantization

# ITU-T T.81 Annex K, Tables K.1 (luminance) and K.2 (chrominance), natural (row-major) order.
ANNEX_K_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])
ANNEX_K_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32)

# The reference QAC values (libjpeg's standard tables scaled by quality).
REFERENCE_QAC = {95: .2338, 90: .1146, 80: .0565, 70: .0379, 60: .0283, 50: .0227, 40: .0180,
                 30: .0136, 20: .0091, 10: .0057}


def libjpeg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's jpeg_quality_scaling + jpeg_add_quant_table (force_baseline), computed directly."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


def photo(seed=0, size=32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def jpeg_file(tmp_path, pixels, quality, name="x.jpg", **kwargs):
    path = tmp_path / name
    Image.fromarray(pixels).save(path, format="JPEG", quality=quality, **kwargs)
    return path


@pytest.mark.parametrize("quality", sorted(REFERENCE_QAC))
def test_qac_reference_values_from_pillow_files(tmp_path, quality):
    tables = read_quantization(jpeg_file(tmp_path, photo(quality), quality))
    assert tables.kind == "jpeg"
    assert tables.qac == pytest.approx(REFERENCE_QAC[quality], abs=6e-5)
    # and the formula itself, on the tables read back
    direct = (np.sum(1.0 / tables.luma) + np.sum(1.0 / tables.chroma)) / 128
    assert tables.qac == pytest.approx(direct, rel=1e-12)


def test_qac_is_monotone_in_quality():
    values = [quality_tables(q).qac for q in range(1, 101)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[-1] == 1.0 and quality_tables(None).qac == 1.0   # quality 100: every step is 1


@pytest.mark.parametrize("quality", [10, 25, 50, 75, 90])
def test_tables_read_back_are_annex_k_in_natural_order(tmp_path, quality):
    tables = read_quantization(jpeg_file(tmp_path, photo(1), quality))
    np.testing.assert_array_equal(tables.luma, libjpeg_table(ANNEX_K_LUMA, quality))
    np.testing.assert_array_equal(tables.chroma, libjpeg_table(ANNEX_K_CHROMA, quality))
    assert tables.vector.shape == (128,) and tables.vector[0] == tables.luma[0] and tables.vector[64] == tables.chroma[0]


def test_every_file_of_one_quality_holds_the_same_tables(tmp_path):
    for seed in range(3):
        tables = read_quantization(encode_jpeg(photo(seed, size=16 + 8 * seed), 40))
        np.testing.assert_array_equal(tables.vector, quality_tables(40).vector)


def test_progressive_jpeg_reads_the_same_tables(tmp_path):
    path = jpeg_file(tmp_path, photo(2), 60, progressive=True)
    assert Image.open(path).info.get("progressive") or Image.open(path).info.get("progression")
    tables = read_quantization(path)
    assert tables.kind == "jpeg"
    np.testing.assert_array_equal(tables.vector, quality_tables(60).vector)


def test_grayscale_jpeg_uses_its_one_table_for_both_halves(tmp_path):
    path = tmp_path / "grey.jpg"
    Image.fromarray(photo(3)[..., 0]).save(path, format="JPEG", quality=30)
    image, tables = open_image(path)
    assert tables.kind == "grayscale" and image.mode == "RGB"
    np.testing.assert_array_equal(tables.luma, libjpeg_table(ANNEX_K_LUMA, 30))
    np.testing.assert_array_equal(tables.chroma, tables.luma)


def test_png_takes_the_uncompressed_path(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(photo(4)).save(path)
    pixels, tables = decode(path.read_bytes())
    assert tables.kind == "uncompressed" and tables.qac == 1.0
    np.testing.assert_array_equal(tables.vector, np.ones(128))
    np.testing.assert_array_equal(pixels, photo(4))   # lossless


def test_truncated_jpeg_names_the_file(tmp_path):
    path = jpeg_file(tmp_path, photo(5, size=64), 80, name="cut.jpg")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"cut\.jpg.*truncated or corrupt"):
        read_quantization(path)


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(b"\xff\xd8\xff" + bytes(range(200)))
    with pytest.raises(DataError, match=r"noise\.jpg"):
        read_quantization(path)


def test_cmyk_jpeg_is_refused(tmp_path):
    path = tmp_path / "print.jpg"
    Image.fromarray(photo(6)).convert("CMYK").save(path, format="JPEG", quality=70)
    with pytest.raises(DataError, match=r"print\.jpg is a CMYK JPEG"):
        read_quantization(path)


def test_lossy_non_jpeg_format_is_refused(tmp_path):
    path = tmp_path / "anim.gif"
    Image.fromarray(photo(7)).convert("P").save(path, format="GIF")
    with pytest.raises(DataError, match=r"anim\.gif is a GIF image; expected a JPEG"):
        read_quantization(path)


def test_jpeg_without_luma_table_is_refused(tmp_path, monkeypatch):
    path = jpeg_file(tmp_path, photo(8), 50, name="notables.jpg")
    from PIL import JpegImagePlugin

    original = JpegImagePlugin.JpegImageFile._open

    def no_tables(self):
        original(self)
        self.quantization = {}

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "_open", no_tables)
    with pytest.raises(DataError, match=r"notables\.jpg is a JPEG without a readable luma quantisation table"):
        read_quantization(path)


def test_qac_rejects_bad_tables():
    with pytest.raises(DataError, match="64 luma and 64 chroma steps > 0"):
        qac(np.ones(64), np.zeros(64))
    with pytest.raises(DataError, match="found 65 values"):
        qac(np.ones(64), np.ones(1))


def test_bytes_and_file_objects_are_read_like_paths(tmp_path):
    path = jpeg_file(tmp_path, photo(9), 20)
    a = read_quantization(path)
    b = read_quantization(path.read_bytes())
    c = read_quantization(io.BytesIO(path.read_bytes()))
    np.testing.assert_array_equal(a.vector, b.vector)
    np.testing.assert_array_equal(a.vector, c.vector)
    assert a.source == str(path) and b.source == "<bytes>"
