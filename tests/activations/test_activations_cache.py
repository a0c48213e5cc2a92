"""The statistics cache: hits do no forward pass, keys cover what matters, corruption recovers."""

import hashlib
import json
import logging

import numpy as np

from workbench.activations import StatsCache, extract_stats
from workbench.activations.cache import default_cache_dir
from workbench.cli import main
from workbench.metrics import GramStats
from workbench.models import create


def test_cache_hit_does_no_forward_pass(tmp_path, cornet, images, count_forward):
    counter = count_forward(cornet.module)
    first = extract_stats(cornet, images, batch_size=4, cache=tmp_path)
    assert counter.calls == 2  # 8 images, batches of 4
    again = extract_stats(cornet, images, batch_size=4, cache=tmp_path)
    assert counter.calls == 2
    for layer in cornet.layers:
        np.testing.assert_array_equal(again[layer].gram, first[layer].gram)
        assert again[layer].n_features == first[layer].n_features


def test_only_missing_layers_are_computed(tmp_path, cornet, images, count_forward):
    extract_stats(cornet, images, layers=["V1"], batch_size=8, cache=tmp_path)
    counter = count_forward(cornet.module)
    stats = extract_stats(cornet, images, layers=["V1", "V2"], batch_size=8, cache=tmp_path)
    assert counter.calls == 1 and set(stats) == {"V1", "V2"}
    assert len(StatsCache(tmp_path).entries()) == 2


def test_key_covers_weights_preprocessing_stimuli_and_time(tmp_path, images):
    def run(model, stimuli, **kwargs):
        extract_stats(model, stimuli, layers=["avgpool"], cache=tmp_path, **kwargs)
        return len(StatsCache(tmp_path).entries())

    base = create("sew_resnet8").with_preprocessing(input_size=32)
    assert run(base, images) == 1
    assert run(base, images) == 1
    assert run(create("sew_resnet8", seed=1).with_preprocessing(input_size=32), images) == 2
    assert run(base.with_preprocessing(input_size=40), images) == 3
    assert run(base, images[:-1]) == 4
    changed = [im.copy() for im in images]
    changed[0][0, 0, 0] ^= 1
    assert run(base, changed) == 5
    assert run(base, images, time_steps=2) == 6
    assert run(base, images, time_reduce=None) == 6 + 4  # one entry per time step


def test_corrupt_entry_is_recomputed(tmp_path, cornet, images, count_forward, caplog):
    first = extract_stats(cornet, images, layers=["V2"], cache=tmp_path)
    (entry,) = tmp_path.glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:200])  # truncated, as after a crash
    counter = count_forward(cornet.module)
    with caplog.at_level(logging.WARNING, logger="workbench.activations.cache"):
        again = extract_stats(cornet, images, layers=["V2"], cache=tmp_path)
    assert counter.calls == 1 and "corrupt cache entry" in caplog.text
    np.testing.assert_array_equal(again["V2"].gram, first["V2"].gram)
    counter.calls = 0
    extract_stats(cornet, images, layers=["V2"], cache=tmp_path)  # repaired entry is used
    assert counter.calls == 0


def test_an_entry_has_a_record_of_its_key_and_sha256(tmp_path, cornet, images):
    first = extract_stats(cornet, images, layers=["V2"], cache=tmp_path)
    (entry,) = tmp_path.glob("*.npz")
    record = json.loads(entry.with_suffix(".json").read_text())
    assert record["key"] == entry.stem and record["layer"] == "V2"
    assert record["sha256"] == hashlib.sha256(entry.read_bytes()).hexdigest()
    assert record["bytes"] == entry.stat().st_size
    stored = GramStats.load(entry)
    np.testing.assert_array_equal(stored.gram, first["V2"].gram)
    np.testing.assert_array_equal(stored.row_sums, first["V2"].row_sums)
    assert (stored.n_features, stored.dtype) == (first["V2"].n_features, first["V2"].dtype)


def test_duck_typed_fingerprint_is_used(tmp_path, cornet, images):
    class Stimuli(list):
        calls = 0

        @property
        def ids(self):
            return [f"s{i}" for i in range(len(self))]

        def fingerprint(self):
            Stimuli.calls += 1
            return "fixed-fingerprint"

    extract_stats(cornet, Stimuli(images), layers=["V1"], cache=tmp_path)
    assert Stimuli.calls == 1
    (row,) = StatsCache(tmp_path).entries()
    assert row["model"] == "cornet_z" and row["layer"] == "V1" and row["n_stimuli"] == 8


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "activations"


def test_cache_cli_lists_and_clears(tmp_path, cornet, images, capsys):
    extract_stats(cornet, images, layers=["V1", "IT"], cache=tmp_path)
    assert main(["cache", "list", "--dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "2 entries" in listing and "cornet_z" in listing and " IT " in listing
    assert main(["cache", "clear", "--dir", str(tmp_path), "--model", "other"]) != 0
    assert "no cache entry matched --model 'other'" in capsys.readouterr().err
    assert main(["cache", "clear", "--dir", str(tmp_path)]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert list(tmp_path.glob("*.npz")) == [] and list(tmp_path.glob("*.json")) == []
