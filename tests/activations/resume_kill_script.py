"""Extract statistics into a cache; the resume test SIGKILLs this process part-way.

Usage: python resume_kill_script.py CACHE_DIR MARKER_PATH STOP_AT_CALL

The forward call number STOP_AT_CALL waits until batches 1..STOP_AT_CALL-1 are complete and
checkpointed (the spill is written by a background thread while the network runs the next
batch, so the checkpoint may lag by one batch), writes MARKER_PATH and then waits, so that the
test kills the process at a known checkpoint.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

#: Shared with the test: what is extracted, and how.
MODEL, INPUT_SIZE = "cornet_z", 48
N_IMAGES, BATCH_SIZE = 11, 2  # 6 batches, the last one of a single image
# V1 and V2 spill to disk in several column blocks; V4, IT and decoder.avgpool stay in memory
OPTIONS = {"batch_size": BATCH_SIZE, "memory_bytes": 150_000, "block_bytes": N_IMAGES * 4 * 3000}


def make_images():
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (40, 44, 3), dtype=np.uint8) for _ in range(N_IMAGES)]


def make_model():
    from workbench.models import create

    return create(MODEL).with_preprocessing(input_size=INPUT_SIZE)


if __name__ == "__main__":
    from workbench.activations import extract_stats

    cache, marker, stop_at = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    model = make_model()
    calls = [0]

    def checkpointed() -> int:
        rows = 0
        for path in Path(cache, "spill").glob("*/progress.json"):
            try:
                rows = max(rows, json.loads(path.read_text())["rows"])
            except (OSError, ValueError, KeyError):
                pass
        return rows

    def pause(*_):
        calls[0] += 1
        if calls[0] == stop_at:
            deadline = time.monotonic() + 120
            while checkpointed() < (stop_at - 1) * BATCH_SIZE and time.monotonic() < deadline:
                time.sleep(0.01)
            marker.write_text(str(calls[0]))
            time.sleep(300)

    model.module.register_forward_pre_hook(pause)
    extract_stats(model, make_images(), cache=cache, **OPTIONS)
