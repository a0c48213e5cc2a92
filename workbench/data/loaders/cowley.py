"""Cowley, Stan, Pillow & Smith (2023): macaque V4 spike counts to natural images.

Files (``V4_compact_models/data_V4_responses/``): ``responses_raw/responses_<session>.npy``
(neurons x images x repeats, NaN-padded, spike counts in 100 ms bins),
``responses_repeat_averaged/responses_<session>.npy`` (neurons x images) and
``images/images_<session>.zip`` (``image0001.jpg`` ... aligned with the responses).

One session is loaded at a time, as the single region ``"V4"`` (option ``session``,
default ``"210325"``). Session 210325 has repeats: responses are their mean (checked against
the published average), with reliability and ceilings. Session 201025 was published
repeat-averaged only: no repeats, no reliability filtering, no ceiling.
"""

from __future__ import annotations

import zipfile

import numpy as np

from workbench.data import reliability as rel
from workbench.data.assemblies import (check_finite_responses, check_repeat_padding,
                                       drop_constant_neuroids, make_assembly)
from workbench.data.dataset import NeuralDataset, RegionData, build_region
from workbench.data.loaders._io import read_npy
from workbench.data.registry import register_loader
from workbench.data.stimuli import StimulusSet
from workbench.errors import DataError, ValidationError

REGION = "V4"
SPECIES = "macaque"


def image_name(index: int) -> str:
    """Zip member of image ``index`` (0-based)."""
    return f"image{index + 1:04d}.jpg"


def _stimuli(zip_path, n_images: int, responses_path) -> StimulusSet:
    try:
        with zipfile.ZipFile(zip_path) as archive:
            jpgs = [n for n in archive.namelist() if n.lower().endswith(".jpg")]
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{zip_path}: not a readable zip archive ({exc})") from exc
    if len(jpgs) != n_images:
        raise DataError(f"{zip_path}: holds {len(jpgs)} images but {responses_path} has responses "
                        f"to {n_images}; they must match one to one")
    members = [image_name(i) for i in range(n_images)]
    return StimulusSet.from_zip(zip_path, members, [m.removesuffix(".jpg") for m in members])


@register_loader("cowley2023_v4")
def load_cowley2023(manifest, files, *, session: str = "210325",
                    reliability_threshold: float | None = None,
                    reliability_method: str = rel.DEFAULT_METHOD,
                    reliability_splits: int = rel.DEFAULT_SPLITS,
                    reliability_seed: int = rel.DEFAULT_SEED) -> NeuralDataset:
    """Load one session of the V4 data.

    Parameters
    ----------
    session : {"210325", "201025"}, default: "210325"
        Which recording session.
    reliability_threshold : float, optional
        Keep neuroids whose split-half reliability is at least this (210325 only; session
        201025 has no repeats, and a threshold for it is a ValidationError).
    reliability_method, reliability_splits, reliability_seed
        Split-half options (see :func:`workbench.data.reliability.split_half_means`).
    """
    session = str(session)
    sessions = sorted({p.rsplit("_", 1)[-1].split(".")[0] for p in files if p.endswith(".zip")})
    if session not in sessions:
        raise DataError(
            f"{manifest.name}: session={session!r} is not valid; expected one of {sessions}"
        )
    raw_key = [p for p in files if p.endswith(f"responses_raw/responses_{session}.npy")]
    avg_path = files[manifest.file(f"responses_repeat_averaged/responses_{session}.npy").path]
    zip_path = files[manifest.file(f"images_{session}.zip").path]
    where = f"{manifest.name} session {session}"
    averaged = read_npy(avg_path, ndim=2)
    stimuli = _stimuli(zip_path, averaged.shape[1], avg_path)
    neuroid_ids = [f"{session}_n{i:03d}" for i in range(averaged.shape[0])]
    common = dict(stimulus_ids=stimuli.ids, neuroid_ids=neuroid_ids, region=REGION,
                  species=SPECIES, dataset=manifest.name)
    if not raw_key:
        if reliability_threshold is not None:
            raise ValidationError(
                f"manifest {manifest.source}: field 'options.reliability_threshold' is "
                f"{reliability_threshold} but session {session} has repeat-averaged responses "
                "only (no repeats to estimate reliability from); set it to null for this session")
        check_finite_responses(averaged, str(avg_path))
        responses = make_assembly(averaged.T, where=str(avg_path), **common)
        responses = drop_constant_neuroids(responses, where)
        region = RegionData(name=REGION, species=SPECIES, responses=responses,
                            n_recorded=averaged.shape[0])
        return NeuralDataset(manifest, stimuli, [region])

    raw_path = files[raw_key[0]]
    raw = read_npy(raw_path, ndim=3)
    if raw.shape[:2] != averaged.shape:
        raise DataError(f"{raw_path}: shape {raw.shape} does not match {avg_path} {averaged.shape} "
                        "(neurons x images [x repeats])")
    repeats = raw.transpose(1, 0, 2)
    check_repeat_padding(repeats, str(raw_path))
    if not np.allclose(np.nanmean(repeats, axis=2).T, averaged, equal_nan=False):
        raise DataError(f"{avg_path}: differs from the repeat mean of {raw_path}")
    assembly = drop_constant_neuroids(make_assembly(repeats, where=str(raw_path), **common), where)
    region = build_region(assembly, species=SPECIES, threshold=reliability_threshold,
                          method=reliability_method, n_splits=reliability_splits,
                          seed=reliability_seed)
    region.n_recorded = raw.shape[0]
    return NeuralDataset(manifest, stimuli, [region])
