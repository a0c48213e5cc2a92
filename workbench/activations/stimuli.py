"""The stimulus side of extraction: ids, a content fingerprint, preprocessed batches.

Any sequence of PIL images or uint8 arrays works (``len`` and integer indexing). A stimulus
set that has ``.ids`` and ``.fingerprint()`` (``workbench.data``'s ``StimulusSet``) supplies
them; otherwise ids are the positions and the fingerprint hashes the pixels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import torch

from workbench.errors import ValidationError
from workbench.models.preprocessing import Preprocessing, image_to_uint8_tensor


def check_stimuli(stimuli) -> int:
    """Return the number of stimuli, or raise if ``stimuli`` is not a non-empty sequence."""
    try:
        n = len(stimuli)
    except TypeError:
        raise ValidationError(
            f"stimuli must be a sequence of images (len and indexing), found {type(stimuli).__name__}"
        ) from None
    if n < 1:
        raise ValidationError("stimuli is empty; at least 1 image is required")
    if getattr(stimuli, "has_images", True) is False:
        raise ValidationError(
            f"stimuli ({n} ids) have no images (a dataset loaded with `images: null`), so no "
            "network can be run on them; score precomputed features with "
            "workbench.metrics.compare, or give the dataset's images in its manifest"
        )
    return n


def stimulus_ids(stimuli) -> list[str]:
    """The stimuli's ids (``stimuli.ids`` when present, else ``"0", "1", ...``)."""
    n = check_stimuli(stimuli)
    ids = getattr(stimuli, "ids", None)
    if ids is None:
        return [str(i) for i in range(n)]
    ids = [str(i) for i in ids]
    if len(ids) != n:
        raise ValidationError(f"stimuli.ids has {len(ids)} entries for {n} stimuli")
    return ids


def stimulus_fingerprint(stimuli) -> str:
    """A hash of the stimulus set: ``stimuli.fingerprint()`` when present, else of ids + pixels."""
    if callable(getattr(stimuli, "fingerprint", None)):
        return str(stimuli.fingerprint())
    digest = hashlib.sha256()
    for i, stimulus_id in enumerate(stimulus_ids(stimuli)):
        pixels = image_to_uint8_tensor(stimuli[i]).numpy()
        digest.update(f"{stimulus_id}|{pixels.shape}|".encode())
        digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def iter_batches(stimuli, preprocessing: Preprocessing, batch_size: int,
                 first: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, x)`` with ``x`` of shape (b, 3, input_size, input_size), float32.

    Batches cover stimuli ``first, first + batch_size, ...`` (``first`` > 0 resumes a pass).
    """
    n = check_stimuli(stimuli)
    for start in range(int(first), n, batch_size):
        stop = min(start + batch_size, n)
        yield start, torch.stack([preprocessing(stimuli[i]) for i in range(start, stop)])
