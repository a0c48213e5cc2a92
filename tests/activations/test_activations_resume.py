"""An interrupted extraction continues from its last completed batch (issue 19, point 6)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from resume_kill_script import BATCH_SIZE, N_IMAGES, OPTIONS, make_images, make_model
from workbench.activations import FeatureSpill, StatsCache, extract_stats
from workbench.activations import streaming
from workbench.errors import DataError

HERE = Path(__file__).resolve().parent
N_BATCHES = -(-N_IMAGES // BATCH_SIZE)


def assert_equal_stats(got: dict, expected: dict):
    assert list(got) == list(expected)
    for layer in expected:
        np.testing.assert_array_equal(got[layer].gram, expected[layer].gram, err_msg=layer)
        np.testing.assert_array_equal(got[layer].row_sums, expected[layer].row_sums, err_msg=layer)
        assert got[layer].n_features == expected[layer].n_features


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Statistics of a pass that ran through, in a cache of its own."""
    return extract_stats(make_model(), make_images(), cache=tmp_path_factory.mktemp("whole"), **OPTIONS)


def spill_folders(cache: Path) -> list[Path]:
    spill = cache / "spill"
    return sorted(p for p in spill.iterdir() if p.is_dir()) if spill.is_dir() else []


@pytest.mark.slow
def test_sigkill_mid_extraction_resumes_from_the_last_batch(tmp_path, uninterrupted, count_forward):
    cache, marker, stop_at = tmp_path / "cache", tmp_path / "paused", 4
    process = subprocess.Popen(
        [sys.executable, str(HERE / "resume_kill_script.py"), str(cache), str(marker), str(stop_at)],
        cwd=HERE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, "the extraction ended before it was killed"
            assert time.monotonic() < deadline, "the extraction did not reach the batch to kill at"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    (folder,) = spill_folders(cache)  # left behind by the killed process, with its checkpoint
    assert (folder / streaming.PROGRESS_FILE).is_file()
    assert StatsCache(cache).entries() == []

    model = make_model()
    counter = count_forward(model.module)
    resumed = extract_stats(model, make_images(), cache=cache, **OPTIONS)
    done = stop_at - 1  # batches completed before the kill
    assert counter.calls == N_BATCHES - done < N_BATCHES
    assert_equal_stats(resumed, uninterrupted)
    assert spill_folders(cache) == []  # removed once every layer is in the cache
    assert len(StatsCache(cache).entries()) == len(resumed)


class Interrupt:
    """A forward pre-hook raising KeyboardInterrupt at call ``at`` (as Ctrl-C would)."""

    def __init__(self, module, at: int):
        self.calls, self.at = 0, at
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, *_):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt


def test_interrupted_pass_with_a_torn_batch_resumes_exactly(tmp_path, uninterrupted, count_forward):
    model = make_model()
    interrupt = Interrupt(model.module, at=3)
    with pytest.raises(KeyboardInterrupt):
        extract_stats(model, make_images(), cache=tmp_path, **OPTIONS)
    interrupt.handle.remove()
    (folder,) = spill_folders(tmp_path)
    files = sorted(folder.glob("*.f32"))
    # V1 and V2 in column blocks, V4, IT and decoder.avgpool journalled beside their arrays
    assert len([f for f in files if f.name.endswith("_rows.f32")]) == 3 and len(files) > 5
    for path in files:  # half of a batch written when the process stopped
        with open(path, "ab") as fh:
            fh.write(b"\x7f" * 12)
    counter = count_forward(model.module)
    resumed = extract_stats(model, make_images(), cache=tmp_path, **OPTIONS)
    assert counter.calls == N_BATCHES - 2
    assert_equal_stats(resumed, uninterrupted)
    assert spill_folders(tmp_path) == []


def test_interruption_while_reducing_keeps_what_is_done(tmp_path, uninterrupted, count_forward,
                                                        monkeypatch):
    original = FeatureSpill.gram_stats
    calls = []

    def stop_at_third_layer(self):
        calls.append(self.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(FeatureSpill, "gram_stats", stop_at_third_layer)
    with pytest.raises(KeyboardInterrupt):
        extract_stats(make_model(), make_images(), cache=tmp_path, **OPTIONS)
    monkeypatch.setattr(FeatureSpill, "gram_stats", original)
    assert len(StatsCache(tmp_path).entries()) == 2  # two layers reached the cache
    model = make_model()
    counter = count_forward(model.module)
    resumed = extract_stats(model, make_images(), cache=tmp_path, **OPTIONS)
    assert counter.calls == 0  # every batch was checkpointed: only the reduction is left
    assert_equal_stats(resumed, uninterrupted)
    assert spill_folders(tmp_path) == []


def test_a_checkpoint_of_other_arguments_is_not_resumed(tmp_path, uninterrupted, count_forward):
    model = make_model()
    interrupt = Interrupt(model.module, at=3)
    with pytest.raises(KeyboardInterrupt):
        extract_stats(model, make_images(), cache=tmp_path, **OPTIONS)
    interrupt.handle.remove()
    counter = count_forward(model.module)
    other = {**OPTIONS, "batch_size": 3}  # another batching: a separate spill, from the start
    stats = extract_stats(model, make_images(), cache=tmp_path, **other)
    assert counter.calls == -(-N_IMAGES // 3)
    for layer in uninterrupted:
        np.testing.assert_allclose(stats[layer].gram, uninterrupted[layer].gram, rtol=1e-5)
    assert len(spill_folders(tmp_path)) == 1  # the interrupted one, still resumable
    assert StatsCache(tmp_path).clear() == len(stats)
    assert spill_folders(tmp_path) == []  # cache clear removes abandoned spills too


def test_errors_and_disabled_resume_leave_no_spill(tmp_path, count_forward):
    model = make_model()
    interrupt = Interrupt(model.module, at=3)
    with pytest.raises(KeyboardInterrupt):
        extract_stats(model, make_images(), cache=tmp_path, resume=False, **OPTIONS)
    interrupt.handle.remove()
    assert spill_folders(tmp_path) == []

    def fail(*_):
        raise RuntimeError("boom")

    handle = model.module.register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="boom"):
        extract_stats(model, make_images(), cache=tmp_path, **OPTIONS)
    handle.remove()
    assert spill_folders(tmp_path) == []


def test_a_spill_in_use_is_not_shared(tmp_path, uninterrupted, monkeypatch):
    monkeypatch.setattr(streaming, "_lock", lambda folder, stack: False)  # another process holds it
    stats = extract_stats(make_model(), make_images(), cache=tmp_path, **OPTIONS)
    assert_equal_stats(stats, uninterrupted)
    assert spill_folders(tmp_path) == []


def test_feature_spill_resume_truncates_and_checks(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 7)).astype(np.float32)
    for memory_bytes in (0, 10**6):  # on disk in 3 column blocks; in memory with a journal

        def spill():
            return FeatureSpill(6, 7, tmp_path, memory_bytes=memory_bytes, block_bytes=6 * 4 * 3,
                                stem=f"s{memory_bytes}")

        first = spill()
        assert first.in_memory == bool(memory_bytes)
        first.append(x[:2])
        first.append(x[2:4])
        second = spill()
        second.resume(2)  # the rows of the second batch are dropped
        second.append(x[2:])
        np.testing.assert_array_equal(np.concatenate(list(second.blocks()), axis=1), x)
        third = spill()
        third.resume(0)
        third.append(x[:1])
        with pytest.raises(DataError, match="holds 1 complete row"):
            spill().resume(3)
        spill().discard()
    assert list(tmp_path.iterdir()) == []


def test_cache_clear_of_one_model_keeps_other_models_spills(tmp_path):
    spill = tmp_path / "spill"
    names = ["cornet_z_0123456789abcdef", "cornet_z_ab_cd123", "cornet_z_x_0123456789abcdef",
             "alexnet_0123456789abcdef", "my.pkg_mod_f_0123456789abcdef"]
    for name in names:
        (spill / name).mkdir(parents=True)
    cache = StatsCache(tmp_path)
    assert cache.clear_spills("cornet_z") == 2  # not those of the model "cornet_z_x"
    assert sorted(p.name for p in spill.iterdir()) == sorted(names[2:])
    assert cache.clear_spills("my.pkg:mod/f") == 1  # names made safe for the file system
    assert cache.clear_spills() == 2 and list(spill.iterdir()) == []
