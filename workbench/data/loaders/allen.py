"""Allen Brain Observatory Visual Coding Neuropixels: mouse responses to 118 natural scenes.

Sessions come from allensdk's ``EcephysProjectCache`` (network, large NWB downloads; the
cache lives in ``<data cache>/allen_ecephys``). allensdk is imported only by
:func:`open_cache`; everything else works on any object shaped like an ``EcephysSession``:

- ``stimulus_presentations``: DataFrame with ``stimulus_name`` (``"natural_scenes"``),
  ``frame`` (scene 0..117; -1 is the blank screen, ignored), ``start_time``, ``stop_time`` (s);
- ``units``: DataFrame indexed by unit id with ``ecephys_structure_acronym``;
- ``spike_times``: dict of unit id to sorted spike times (s);
- ``ecephys_session_id``.

Response of a unit to a presentation: its spike count in ``[start_time, start_time +
window_s)`` (250 ms by default, the scene's duration). Repetitions of a scene are its
presentations in time order (about 50), NaN-padded; responses are their mean. Regions are the
six visual areas (VISp, VISl, VISrl, VISal, VISpm, VISam); units from several sessions are
pooled per area and kept where their split-half reliability is at least 0.8, as in the
reference study.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from workbench.data import reliability as rel
from workbench.data.assemblies import check_repeat_padding, drop_constant_neuroids, make_assembly
from workbench.data.dataset import NeuralDataset, build_region
from workbench.data.fetch import cache_dir
from workbench.data.registry import register_loader
from workbench.data.stimuli import StimulusSet
from workbench.dims import NEUROID, REGION
from workbench.errors import DataError, WorkbenchError

log = logging.getLogger(__name__)

AREAS = ("VISp", "VISl", "VISrl", "VISal", "VISpm", "VISam")
N_SCENES = 118
STIMULUS_NAME = "natural_scenes"
SESSION_TYPE = "brain_observatory_1.1"
SPECIES = "mouse"
INSTALL_HINT = (
    "allensdk is needed to download Allen Neuropixels sessions but is not installed (its pins "
    "clash with the workbench's). Install it without its pins: `pip install --no-deps "
    "allensdk==2.16.2` and then its runtime dependencies: `pip install 'setuptools<81' "
    "'statsmodels<0.15' 'pynwb<3' 'hdmf<4' aiohttp argschema boto3 cachetools future glymur "
    "jinja2 ndx-events nest-asyncio psycopg2-binary pynrrd requests-toolbelt scikit-build "
    "scikit-image seaborn semver simpleitk simplejson six sqlalchemy tables` (see "
    "../shared/notes/environment.md)"
)


def open_cache(folder=None):
    """allensdk's ``EcephysProjectCache`` in ``folder`` (default ``<data cache>/allen_ecephys``)."""
    try:
        from allensdk.brain_observatory.ecephys.ecephys_project_cache import EcephysProjectCache
    except ImportError as exc:
        raise WorkbenchError(INSTALL_HINT) from exc
    folder = cache_dir() / "allen_ecephys" if folder is None else Path(folder)
    return EcephysProjectCache.from_warehouse(manifest=str(folder / "manifest.json"))


def _scene_presentations(session, where: str) -> pd.DataFrame:
    table = session.stimulus_presentations
    missing = {"stimulus_name", "frame", "start_time", "stop_time"} - set(table.columns)
    if missing:
        raise DataError(f"{where}: stimulus_presentations lacks column(s) {sorted(missing)}")
    scenes = table[table["stimulus_name"] == STIMULUS_NAME]
    frames = pd.to_numeric(scenes["frame"], errors="coerce")
    scenes = scenes[frames >= 0].assign(frame=frames[frames >= 0].astype(int))
    bad = scenes["frame"][scenes["frame"] >= N_SCENES]
    if len(bad):
        raise DataError(f"{where}: natural-scene frame(s) {sorted(bad.unique())[:3]} outside "
                        f"0..{N_SCENES - 1}")
    shown = np.bincount(scenes["frame"], minlength=N_SCENES)
    if (shown == 0).any():
        raise DataError(f"{where}: {int((shown == 0).sum())} of {N_SCENES} natural scenes were "
                        f"never presented (e.g. frame {int(np.flatnonzero(shown == 0)[0])})")
    return scenes.sort_values("start_time")


def session_repeats(session, *, areas=AREAS, window_s: float = 0.25) -> xr.DataArray:
    """Spike counts of one session: ``(stimulus=118, neuroid, repetition)``, NaN-padded.

    Neuroids are the session's units in ``areas`` (``neuroid_id`` = ``<session>_<unit>``,
    ``region`` = the unit's area); stimulus ``i`` is scene frame ``i``.
    """
    session_id = getattr(session, "ecephys_session_id", "session")
    where = f"Allen session {session_id}"
    scenes = _scene_presentations(session, where)
    units = session.units
    if "ecephys_structure_acronym" not in units.columns:
        raise DataError(f"{where}: units lacks column 'ecephys_structure_acronym'")
    units = units[units["ecephys_structure_acronym"].isin(areas)]
    starts = scenes["start_time"].to_numpy(dtype=np.float64)
    frames = scenes["frame"].to_numpy()
    occurrence = scenes.groupby("frame").cumcount().to_numpy()
    counts = np.full((N_SCENES, len(units), occurrence.max() + 1), np.nan)
    spike_times = session.spike_times
    for column, unit_id in enumerate(units.index):
        if unit_id not in spike_times:
            raise DataError(f"{where}: unit {unit_id} has no entry in spike_times")
        spikes = np.asarray(spike_times[unit_id], dtype=np.float64)
        n = np.searchsorted(spikes, starts + window_s) - np.searchsorted(spikes, starts)
        counts[frames, column, occurrence] = n
    return xr.DataArray(
        counts, dims=("stimulus", NEUROID, "repetition"),
        coords={"neuroid_id": (NEUROID, [f"{session_id}_{u}" for u in units.index]),
                REGION: (NEUROID, units["ecephys_structure_acronym"].astype(str).to_numpy())},
    )


def scene_stimuli(templates) -> StimulusSet:
    """The 118 scene images (grayscale template arrays, frame order) as a StimulusSet."""
    if len(templates) != N_SCENES:
        raise DataError(f"expected {N_SCENES} natural-scene templates, found {len(templates)}")
    return StimulusSet.from_arrays(list(templates), [f"scene{i:03d}" for i in range(N_SCENES)])


def dataset_from_sessions(manifest, sessions, templates, *, areas=AREAS, window_s: float = 0.25,
                          reliability_threshold: float | None = 0.8,
                          reliability_method: str = rel.DEFAULT_METHOD,
                          reliability_splits: int = rel.DEFAULT_SPLITS,
                          reliability_seed: int = rel.DEFAULT_SEED) -> NeuralDataset:
    """Pool sessions' units per area into a :class:`NeuralDataset` (one region per area)."""
    stimuli = scene_stimuli(templates)
    parts = [session_repeats(s, areas=areas, window_s=window_s) for s in sessions]
    depth = max(p.sizes["repetition"] for p in parts)
    parts = [p.pad(repetition=(0, depth - p.sizes["repetition"])) for p in parts]
    pooled = xr.concat(parts, dim=NEUROID)
    regions = []
    for area in areas:
        pick = np.flatnonzero(pooled[REGION].values == area)
        if not len(pick):
            log.warning("%s: no units in %s", manifest.name, area)
            continue
        where = f"{manifest.name} ({area})"
        values = pooled.values[:, pick, :]
        check_repeat_padding(values, where, same_across_neuroids=False)
        assembly = make_assembly(values, stimulus_ids=stimuli.ids,
                                 neuroid_ids=pooled["neuroid_id"].values[pick], region=area,
                                 species=SPECIES, dataset=manifest.name, where=where)
        assembly = drop_constant_neuroids(assembly, where)
        data = build_region(assembly, species=SPECIES, threshold=reliability_threshold,
                            method=reliability_method, n_splits=reliability_splits,
                            seed=reliability_seed)
        data.n_recorded = len(pick)
        regions.append(data)
    if not regions:
        raise DataError(f"{manifest.name}: no units in any of the areas {list(areas)}")
    return NeuralDataset(manifest, stimuli, regions)


@register_loader("allen_neuropixels")
def load_allen(manifest, files, *, session_ids=None, cache_folder=None, **options) -> NeuralDataset:
    """Download (through allensdk) and process Neuropixels sessions showing natural scenes.

    Parameters
    ----------
    session_ids : list of int, optional
        Sessions to pool; default every ``brain_observatory_1.1`` session (tens of GB).
    cache_folder : path-like, optional
        allensdk cache folder (default ``<data cache>/allen_ecephys``).
    **options
        ``areas``, ``window_s``, ``reliability_threshold`` (0.8) and the other reliability
        options of :func:`dataset_from_sessions`.
    """
    cache = open_cache(cache_folder)
    if session_ids is None:
        table = cache.get_session_table()
        session_ids = table.index[table["session_type"] == SESSION_TYPE].tolist()
        log.warning("loading all %d %s sessions; pass session_ids=[...] to load fewer",
                    len(session_ids), SESSION_TYPE)
    sessions = [cache.get_session_data(int(s))
                for s in tqdm(session_ids, desc="Allen sessions", unit="session")]
    templates = [cache.get_natural_scene_template(i) for i in range(N_SCENES)]
    return dataset_from_sessions(manifest, sessions, templates, **options)
