"""Streaming into GramStats: equal to the statistics of the full activations, for every family."""

import numpy as np
import pytest
import xarray as xr

from workbench.activations import FeatureSpill, extract, extract_stats, load_activations
from workbench.errors import ValidationError
from workbench.metrics import GramStats
from workbench.models import create


def assert_same_stats(streamed: GramStats, full: np.ndarray):
    x = full.astype(np.float64)
    np.testing.assert_allclose(streamed.gram, x @ x.T, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(streamed.row_sums, x.sum(axis=1), rtol=1e-5, atol=1e-4)
    assert streamed.n_features == x.shape[1]


def test_feature_spill_reassembles_the_matrix(tmp_path):
    x = np.random.default_rng(0).normal(size=(10, 23)).astype(np.float32)
    spill = FeatureSpill(10, 23, tmp_path, memory_bytes=0, block_bytes=10 * 4 * 5)  # 5 columns
    assert not spill.in_memory and spill.edges == [0, 5, 10, 15, 20, 23]
    for start in range(0, 10, 3):
        spill.append(x[start:start + 3])
    np.testing.assert_array_equal(np.concatenate(list(spill.blocks()), axis=1), x)
    assert_same_stats(spill.gram_stats(), x)
    spill.discard()
    assert list(tmp_path.iterdir()) == []


def test_feature_spill_rejects_extra_rows_and_early_reads(tmp_path):
    spill = FeatureSpill(4, 3, tmp_path)
    assert spill.in_memory
    spill.append(np.zeros((3, 3), np.float32))
    with pytest.raises(ValidationError, match="only 3 of 4 rows were written"):
        list(spill.blocks())
    with pytest.raises(ValidationError, match=r"batch of shape \(2, 3\) does not fit rows 3"):
        spill.append(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("name, size", [("sew_resnet8", 48), ("cornet_z", 48), ("swin_t", 64)])
def test_streamed_stats_equal_full_activation_stats(tmp_path, images, name, size):
    model = create(name).with_preprocessing(input_size=size)
    full = extract(model, images, batch_size=3)
    # tiny limits: every layer spills to disk in several column blocks
    stats = extract_stats(model, images, batch_size=3, cache=tmp_path, memory_bytes=0,
                          block_bytes=len(images) * 4 * 1000)
    assert list(stats) == list(model.layers)
    for layer in model.layers:
        assert_same_stats(stats[layer], full[layer].values)
    assert not any((tmp_path / "spill").iterdir())  # spill removed after the pass


def test_time_resolved_stats_one_per_step(tmp_path, sew8, images):
    full = extract(sew8, images, layers=["sn1", "block2.0"], time_reduce=None, batch_size=4)
    stats = extract_stats(sew8, images, layers=["sn1", "block2.0"], time_reduce=None,
                          batch_size=4, cache=False, memory_bytes=0, block_bytes=20000)
    for layer, per_step in stats.items():
        assert len(per_step) == 4
        for t, step_stats in enumerate(per_step):
            assert_same_stats(step_stats, full[layer].values[:, t])


def test_save_activations_during_the_pass(tmp_path, sew8, images):
    folder = tmp_path / "acts"
    for reduce in ("mean", None):
        extract_stats(sew8, images, layers=["maxpool", "avgpool"], cache=False,
                      save_activations=folder, time_reduce=reduce, batch_size=3)
        full = extract(sew8, images, layers=["maxpool", "avgpool"], time_reduce=reduce)
        for layer in ("maxpool", "avgpool"):
            saved = load_activations(folder, "sew_resnet8", layer)
            assert saved.dims == full[layer].dims
            np.testing.assert_array_equal(saved.values, full[layer].values)
            for coord in ("stimulus_id", "neuroid_id", "channel", "spatial_y", "layer", "model"):
                np.testing.assert_array_equal(saved[coord].values, full[layer][coord].values)
            saved.close()
    assert sorted(p.name for p in folder.iterdir()) == ["sew_resnet8__avgpool.nc",
                                                        "sew_resnet8__maxpool.nc"]
    assert isinstance(xr.open_dataarray(folder / "sew_resnet8__avgpool.nc"), xr.DataArray)


def test_spike_codes_take_one_byte_and_read_back_bit_for_bit(tmp_path):
    """Issue 18, point 5: spikes (and spike counts / T) spill as uint8 codes; other values
    arriving later turn the files back into float32; either way the blocks are the values."""
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 5, size=(9, 23)).astype(np.float32) / np.float32(4)  # mean of 4 steps
    spill = FeatureSpill(9, 23, tmp_path, memory_bytes=0, block_bytes=9 * 4 * 5, codes=4)
    for start in range(0, 9, 3):
        spill.append(counts[start:start + 3])
    assert spill.scale == 4 and sorted(p.suffix for p in tmp_path.iterdir()) == [".u8"] * 5
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) == counts.size  # one byte a value
    blocks = np.concatenate(list(spill.blocks()), axis=1)
    assert blocks.dtype == np.float32 and np.array_equal(blocks, counts)
    plain = FeatureSpill(9, 23, tmp_path / "f32", memory_bytes=0, block_bytes=9 * 4 * 5)
    for start in range(0, 9, 3):
        plain.append(counts[start:start + 3])
    for coded, value in zip(spill.gram_stats().__dict__.items(), plain.gram_stats().__dict__.items()):
        np.testing.assert_array_equal(coded[1], value[1])  # identical statistics

    mixed = counts.copy()
    mixed[7, 3] = 0.3  # not a code: the files are widened when this batch arrives
    widened = FeatureSpill(9, 23, tmp_path / "mixed", memory_bytes=0, block_bytes=9 * 4 * 5, codes=4)
    for start in range(0, 9, 3):
        widened.append(mixed[start:start + 3])
    assert widened.scale is None and {p.suffix for p in (tmp_path / "mixed").iterdir()} == {".f32"}
    assert np.array_equal(np.concatenate(list(widened.blocks()), axis=1), mixed)


def test_a_coded_spill_resumes_from_its_checkpointed_scale(tmp_path):
    spikes = (np.random.default_rng(2).random((6, 11)) < 0.3).astype(np.float32)
    first = FeatureSpill(6, 11, tmp_path, memory_bytes=0, block_bytes=6 * 4 * 4, stem="s", codes=1)
    first.append(spikes[:4])
    with open(tmp_path / "s_0.u8", "ab") as fh:  # half a batch written when the process stopped
        fh.write(b"\x01" * 3)
    again = FeatureSpill(6, 11, tmp_path, memory_bytes=0, block_bytes=6 * 4 * 4, stem="s", codes=1)
    again.resume(4, first.scale)
    again.append(spikes[4:])
    assert np.array_equal(np.concatenate(list(again.blocks()), axis=1), spikes)
