"""Gram statistics accumulated on the device (torch), run here on the CPU: the same
statistics and scores as the numpy path of the spill, and the layers beyond the budget spilled."""

import numpy as np
import pytest
import torch

from workbench.activations import extract_stats
from workbench.activations.device_stats import DeviceGram, device_layers
from workbench.errors import ValidationError
from workbench.metrics import GramStats, compare

RTOL = 1e-6


def _same(device: GramStats, host: GramStats):
    scale = np.abs(host.gram).max()
    np.testing.assert_allclose(device.gram, host.gram, rtol=RTOL, atol=RTOL * scale)
    np.testing.assert_allclose(device.row_sums, host.row_sums, rtol=RTOL,
                               atol=RTOL * np.abs(host.row_sums).max())
    assert device.n_features == host.n_features and device.dtype == host.dtype
    np.testing.assert_array_equal(device.gram, device.gram.T)


def test_device_gram_equals_the_gram_of_the_whole_matrix():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(11, 37)).astype(np.float32)
    gram = DeviceGram(11, 37, "cpu", name="toy")
    for lo, hi in ((0, 4), (4, 8), (8, 11)):  # uneven batches, as the last one is
        gram.append(torch.from_numpy(x[lo:hi]))
    stats = gram.gram_stats()
    _same(stats, GramStats.from_array(x))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(stats.gram, x64 @ x64.T, rtol=RTOL, atol=RTOL * np.abs(x64 @ x64.T).max())


def test_device_gram_refuses_extra_rows_early_reads_and_nan():
    gram = DeviceGram(3, 2, "cpu", name="toy layer")
    gram.append(torch.ones(2, 2))
    with pytest.raises(ValidationError, match=r"toy layer: only 2 of 3 rows were appended"):
        gram.gram_stats()
    with pytest.raises(ValidationError, match=r"toy layer: batch of shape \(2, 2\) does not fit rows 2"):
        gram.append(torch.ones(2, 2))
    gram.append(torch.tensor([[np.nan, 1.0]]))
    with pytest.raises(ValidationError, match="toy layer: the activations hold NaN or inf"):
        gram.gram_stats()


# Spike products are exact in float32, so the SNN's scores are equal; a CNN's float32 products
# round differently in the two summation orders, and on 8 stimuli the metrics amplify that
# (the numpy path itself is up to 1.4e-4 from float64 products there, in TSVD regression).
@pytest.mark.parametrize("fixture, metric_atol", [("sew8", 1e-6), ("cornet", 5e-4)])
def test_torch_accumulation_equals_the_numpy_path(request, images, fixture, metric_atol):
    model = request.getfixturevalue(fixture)
    host = extract_stats(model, images, batch_size=3, cache=False, memory_bytes=0,
                         block_bytes=len(images) * 4 * 500, device_stats=False)
    device = extract_stats(model, images, batch_size=3, cache=False, device_stats=True)
    assert list(device) == list(host) == list(model.layers)
    neural = np.random.default_rng(1).normal(size=(len(images), 5))
    metrics = ["cka", "rsa", "svcca", "tsvd_regression"]
    for layer in model.layers:
        _same(device[layer], host[layer])
        ours = compare(device[layer].zscored(), neural, metrics, n_components=3)
        theirs = compare(host[layer].zscored(), neural, metrics, n_components=3)
        for metric in metrics:
            np.testing.assert_allclose(ours[metric], theirs[metric], rtol=0, atol=metric_atol)


def test_per_step_statistics_on_the_device(sew8, images):
    layers = ["sn1", "block2.0"]
    host = extract_stats(sew8, images, layers=layers, batch_size=4, cache=False, per_step=True,
                         memory_bytes=0, block_bytes=20000, device_stats=False)
    device = extract_stats(sew8, images, layers=layers, batch_size=4, cache=False,
                           per_step=True, device_stats=True)
    for layer in layers:
        _same(device[0][layer], host[0][layer])
        for ours, theirs in zip(device[1][layer], host[1][layer]):
            _same(ours, theirs)


def test_layers_beyond_the_device_budget_take_the_spill(cornet, images, caplog):
    sizes = {"a": 100, "b": 10_000, "c": 50}
    n = 8
    budget = DeviceGram.nbytes(n, 100) + DeviceGram.nbytes(n, 50)
    assert device_layers(sizes, n, budget) == {"a", "c"}  # b does not fit, c still does
    assert device_layers(sizes, n, None) == {"a", "b", "c"}
    host = extract_stats(cornet, images, batch_size=3, cache=False, device_stats=False)
    with caplog.at_level("INFO", logger="workbench.activations.streaming"):
        mixed = extract_stats(cornet, images, batch_size=3, cache=False, device_stats=True,
                              device_bytes=DeviceGram.nbytes(len(images), 1000))
    assert "cornet_z: Gram statistics of 1 of 5 layer(s) accumulate on cpu" in caplog.messages
    for layer in cornet.layers:
        _same(mixed[layer], host[layer])
