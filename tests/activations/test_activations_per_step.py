"""Averaged and per-time-step statistics in one forward pass (issue 18, point 3)."""

import threading

import numpy as np
import pytest
import torch

from workbench.activations import extract, extract_stats
from workbench.errors import ValidationError

LAYERS = ["sn1", "block2.0", "avgpool"]


def assert_identical(got, expected, what):
    np.testing.assert_array_equal(got.gram, expected.gram, err_msg=what)
    np.testing.assert_array_equal(got.row_sums, expected.row_sums, err_msg=what)
    assert got.n_features == expected.n_features, what


@pytest.mark.parametrize("memory_bytes", [0, 2**30], ids=["spilled", "in-memory"])
def test_one_pass_equals_the_two_separate_passes(sew8, images, count_forward, memory_bytes):
    options = dict(layers=LAYERS, batch_size=3, cache=False, memory_bytes=memory_bytes, block_bytes=8 * 4 * 700)
    counter = count_forward(sew8.module)
    averaged, by_step = extract_stats(sew8, images, per_step=True, **options)
    assert counter.calls == 3  # 8 images in batches of 3: the network ran once per batch
    alone_mean = extract_stats(sew8, images, **options)
    alone_steps = extract_stats(sew8, images, time_reduce=None, **options)
    assert counter.calls == 3 + 3 + 3
    assert list(averaged) == list(by_step) == LAYERS
    for layer in LAYERS:
        assert_identical(averaged[layer], alone_mean[layer], f"{layer} averaged")
        assert len(by_step[layer]) == 4
        for t in range(4):
            assert_identical(by_step[layer][t], alone_steps[layer][t], f"{layer} t={t}")
    # and both are the statistics of the activations themselves
    full = extract(sew8, images, layers=["block2.0"], time_reduce=None)["block2.0"].values.astype(np.float64)
    for t in range(4):
        np.testing.assert_allclose(by_step["block2.0"][t].gram, full[:, t] @ full[:, t].T, rtol=1e-5, atol=1e-4)
    mean = full.mean(axis=1)
    np.testing.assert_allclose(averaged["block2.0"].gram, mean @ mean.T, rtol=1e-5, atol=1e-4)


def test_one_pass_fills_the_cache_of_both_separate_calls(tmp_path, sew8, images, count_forward):
    averaged, by_step = extract_stats(sew8, images, layers=LAYERS, batch_size=4, cache=tmp_path, per_step=True)
    counter = count_forward(sew8.module)
    again_mean = extract_stats(sew8, images, layers=LAYERS, batch_size=4, cache=tmp_path)
    again_steps = extract_stats(sew8, images, layers=LAYERS, batch_size=4, cache=tmp_path, time_reduce=None)
    assert counter.calls == 0  # both were cache hits
    for layer in LAYERS:
        assert_identical(again_mean[layer], averaged[layer], layer)
        for t in range(4):
            assert_identical(again_steps[layer][t], by_step[layer][t], f"{layer} t={t}")
    assert not any((tmp_path / "spill").iterdir())


def test_per_step_of_a_non_spiking_model_is_its_one_step(cornet, images):
    averaged, by_step = extract_stats(cornet, images, layers=["V1", "IT"], cache=False, per_step=True)
    for layer in ("V1", "IT"):
        assert len(by_step[layer]) == 1
        assert_identical(by_step[layer][0], averaged[layer], layer)


def test_per_step_needs_the_averaged_reduction(sew8, images, count_forward):
    counter = count_forward(sew8.module)
    with pytest.raises(ValidationError, match="per_step=True needs time_reduce='mean'"):
        extract_stats(sew8, images, time_reduce=None, per_step=True, cache=False)
    assert counter.calls == 0


def test_an_error_while_writing_the_spill_reaches_the_caller(sew8, images, monkeypatch):
    """The spill is written on a background thread; its errors are raised in the caller."""
    from workbench.activations import FeatureSpill

    original = FeatureSpill.append

    def full_disk(self, batch):
        if self.rows:
            raise OSError(28, "No space left on device")
        return original(self, batch)

    monkeypatch.setattr(FeatureSpill, "append", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        extract_stats(sew8, images, layers=["avgpool"], batch_size=3, cache=False, per_step=True)
    assert not [t for t in threading.enumerate() if t.name == "workbench-spill"]
    # the interrupted pass left inference mode and removed its hooks
    assert not torch.is_inference_mode_enabled()
    assert not any(m._forward_hooks for m in sew8.module.modules())
