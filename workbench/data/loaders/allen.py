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
reference study; each load logs the kept/total units per area beside the study's counts
(:func:`unit_counts`, :data:`STUDY_UNIT_COUNTS`).

Processing a session (reading its NWB file through allensdk and counting every unit's spikes
in every presentation) is done once: the counts are cached in ``<data cache>/allen_processed``
(:func:`cached_session_repeats`), keyed by the session id, the counting window, the unit filter
handed to allensdk and the stimulus protocol, written with a sha256 record and verified when
read back (:func:`workbench.storage.write_verified`), so a second load reads them instead of processing the session again.
Reliability filtering and pooling run on every load (they are cheap and take their own options).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from workbench.config import fingerprint_of
from workbench.data import reliability as rel
from workbench.data.assemblies import check_repeat_padding, drop_constant_neuroids, make_assembly
from workbench.data.dataset import NeuralDataset, build_region
from workbench.data.fetch import cache_dir
from workbench.data.registry import register_loader
from workbench.data.stimuli import StimulusSet
from workbench.dims import NEUROID, REGION
from workbench.errors import DataError, WorkbenchError
from workbench.storage import read_verified, write_verified

log = logging.getLogger(__name__)

AREAS = ("VISp", "VISl", "VISrl", "VISal", "VISpm", "VISam")
N_SCENES = 118
STIMULUS_NAME = "natural_scenes"
SESSION_TYPE = "brain_observatory_1.1"
SPECIES = "mouse"
INSTALL_HINT = (
    "allensdk is needed to read Allen Neuropixels sessions but is not installed. `make setup` "
    "installs it; by hand, without its own pins (they clash with the workbench's): `pip install "
    "--no-deps -r requirements-allensdk.txt` (allensdk==2.16.2), after `pip install -r "
    "requirements.txt`, which pins its runtime dependencies (see ../shared/notes/environment.md)"
)
#: Environment variable naming an existing allensdk cache folder (the one holding its
#: ``manifest.json``); the loader's ``cache_folder=`` option overrides it.
ALLEN_CACHE_ENV = "WORKBENCH_ALLEN_CACHE"
#: allensdk's default unit filter (``EcephysProjectCache.get_session_data``), written out so
#: that it is part of the processed-session cache key.
UNIT_FILTER = {"filter_by_validity": True, "amplitude_cutoff_maximum": 0.1,
               "presence_ratio_minimum": 0.95, "isi_violations_maximum": 0.5}
#: What :func:`session_repeats` computes; change ``version`` whenever that changes, so that
#: sessions processed before are processed again.
PROTOCOL = {"stimulus_name": STIMULUS_NAME, "n_scenes": N_SCENES, "blank_frame": -1,
            "count": "spikes in [start_time, start_time + window_s)", "version": 1}
PROCESSED_DIR = "allen_processed"
#: The study's units per area, ``(kept, total)``: kept where split-half reliability >= 0.8,
#: of the units recorded in the area (Huang et al. 2023, counted from the per-unit
#: reliabilities ``shr_<area>.npy`` of its released Allen files). Compare with
#: :func:`unit_counts` of a load of all ``brain_observatory_1.1`` sessions.
STUDY_UNIT_COUNTS = {"VISp": (1758, 2015), "VISl": (634, 933), "VISrl": (722, 1415),
                     "VISal": (959, 1553), "VISpm": (524, 879), "VISam": (799, 1506)}


def allen_cache_folder(folder=None) -> Path:
    """The allensdk cache folder: ``folder``, else ``$WORKBENCH_ALLEN_CACHE``, else
    ``<data cache>/allen_ecephys``."""
    if folder is not None:
        return Path(folder)
    env = os.environ.get(ALLEN_CACHE_ENV)
    return Path(env) if env else cache_dir() / "allen_ecephys"


def open_cache(folder=None):
    """allensdk's ``EcephysProjectCache`` in :func:`allen_cache_folder` ``(folder)``."""
    try:
        with warnings.catch_warnings():  # allensdk 2.16.2 uses marshmallow APIs deprecated in 3.x
            warnings.simplefilter("ignore", DeprecationWarning)
            from allensdk.brain_observatory.ecephys.ecephys_project_cache import EcephysProjectCache
    except ImportError as exc:
        raise WorkbenchError(INSTALL_HINT) from exc
    folder = allen_cache_folder(folder)
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
        if spikes.size > 1 and (np.diff(spikes) < 0).any():
            spikes = np.sort(spikes)
        n = np.searchsorted(spikes, starts + window_s) - np.searchsorted(spikes, starts)
        counts[frames, column, occurrence] = n
    return xr.DataArray(
        counts, dims=("stimulus", NEUROID, "repetition"),
        coords={"neuroid_id": (NEUROID, [f"{session_id}_{u}" for u in units.index]),
                REGION: (NEUROID, units["ecephys_structure_acronym"].astype(str).to_numpy())},
    )


def processed_key(session_id: int, *, areas=AREAS, window_s: float = 0.25,
                  unit_filter: dict | None = None) -> dict:
    """What a processed session depends on: the cache key of :func:`cached_session_repeats`.

    Returns
    -------
    dict
        ``session_id`` (int), ``window_s`` (float, s), ``areas`` (list of str, in order),
        ``unit_filter`` (the allensdk unit-quality filter, :data:`UNIT_FILTER` by default) and
        ``protocol`` (:data:`PROTOCOL`: stimulus, scene count, counting rule, version).
    """
    try:
        session_id = int(session_id)
    except (TypeError, ValueError):
        raise DataError(f"Allen session id {session_id!r}: expected an integer "
                        "(e.g. 715093703)") from None
    return {"session_id": session_id, "window_s": float(window_s), "areas": [str(a) for a in areas],
            "unit_filter": dict(sorted((UNIT_FILTER if unit_filter is None else unit_filter).items())),
            "protocol": PROTOCOL}


def processed_path(key: dict) -> Path:
    """Where the processed session of ``key`` lives: ``<data cache>/allen_processed/
    session_<id>/<sha256 of the key, 16 hex>.npz``, with its record ``.json`` beside it."""
    return (cache_dir() / PROCESSED_DIR / f"session_{key['session_id']}"
            / f"{fingerprint_of(key)}.npz")


def _read_processed(path: Path, key: dict) -> xr.DataArray | None:
    """The cached counts of ``key``, or None (missing, or invalid: logged, then ignored)."""
    record = path.with_suffix(".json")
    if not path.is_file() or not record.is_file():
        return None
    try:
        read_verified(path, expect={"key": key}, record=record, what="processed session")
        with np.load(path, allow_pickle=False) as arrays:
            counts, neuroid_ids, regions = (arrays["counts"], arrays["neuroid_id"],
                                            arrays["region"])
    except (OSError, ValueError, KeyError) as exc:  # DataError is a ValueError
        log.warning("processed Allen session %s is not used and will be processed again: %s (%s)",
                    key["session_id"], path, exc)
        return None
    return xr.DataArray(counts, dims=("stimulus", NEUROID, "repetition"),
                        coords={"neuroid_id": (NEUROID, neuroid_ids.astype(str)),
                                REGION: (NEUROID, regions.astype(str))})


def _write_processed(path: Path, key: dict, repeats: xr.DataArray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, counts=repeats.values,
                     neuroid_id=np.asarray(repeats["neuroid_id"].values, dtype=str),
                     region=np.asarray(repeats[REGION].values, dtype=str))

    write_verified(path, write, fields={"key": key, "shape": list(repeats.shape)},
                   record=path.with_suffix(".json"))


def cached_session_repeats(session_id, get_session, *, areas=AREAS, window_s: float = 0.25,
                           unit_filter: dict | None = None) -> xr.DataArray:
    """:func:`session_repeats` of one session, processed once and then read from the cache.

    Parameters
    ----------
    session_id : int
        The ``ecephys_session_id``.
    get_session : callable
        ``get_session()`` returns the session (an allensdk ``EcephysSession``); called only when
        no valid cache entry exists for this key, i.e. on the first load.
    areas, window_s
        As in :func:`session_repeats`.
    unit_filter : dict, optional
        The unit filter that ``get_session`` applies (:data:`UNIT_FILTER` by default); part of
        the key.

    Returns
    -------
    xarray.DataArray
        ``(stimulus=118, neuroid, repetition)`` spike counts, as :func:`session_repeats`.

    Notes
    -----
    An entry is used only when its record holds the same key (:func:`processed_key`) and the
    sha256 of its bytes; otherwise (truncated, modified, written by another version) a warning
    is logged and the session is processed again and the entry rewritten.
    """
    key = processed_key(session_id, areas=areas, window_s=window_s, unit_filter=unit_filter)
    path = processed_path(key)
    cached = _read_processed(path, key)
    if cached is not None:
        log.info("Allen session %s: processed counts read from %s", key["session_id"], path)
        return cached
    session = get_session()
    found = getattr(session, "ecephys_session_id", key["session_id"])
    if int(found) != key["session_id"]:
        raise DataError(f"Allen session {key['session_id']}: the session returned has "
                        f"ecephys_session_id {found}")
    repeats = session_repeats(session, areas=areas, window_s=window_s)
    _write_processed(path, key, repeats)
    return repeats


def scene_stimuli(templates) -> StimulusSet:
    """The 118 scene images (grayscale template arrays, frame order) as a StimulusSet."""
    if len(templates) != N_SCENES:
        raise DataError(f"expected {N_SCENES} natural-scene templates, found {len(templates)}")
    return StimulusSet.from_arrays(list(templates), [f"scene{i:03d}" for i in range(N_SCENES)])


def dataset_from_sessions(manifest, sessions, templates, *, areas=AREAS, window_s: float = 0.25,
                          **options) -> NeuralDataset:
    """Pool sessions' units per area into a :class:`NeuralDataset` (one region per area).

    ``options`` are those of :func:`dataset_from_repeats`.
    """
    parts = [session_repeats(s, areas=areas, window_s=window_s) for s in sessions]
    return dataset_from_repeats(manifest, parts, templates, areas=areas, **options)


def dataset_from_repeats(manifest, parts, templates, *, areas=AREAS,
                         reliability_threshold: float | None = 0.8,
                         reliability_method: str = rel.DEFAULT_METHOD,
                         reliability_splits: int = rel.DEFAULT_SPLITS,
                         reliability_seed: int = rel.DEFAULT_SEED) -> NeuralDataset:
    """Pool processed sessions (:func:`session_repeats` arrays) into a :class:`NeuralDataset`.

    Units are pooled per area, NaN-padded to the largest repetition count, and kept where
    their split-half reliability reaches ``reliability_threshold`` (None keeps all).
    """
    stimuli = scene_stimuli(templates)
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
    dataset = NeuralDataset(manifest, stimuli, regions)
    _log_unit_counts(dataset, reliability_threshold)
    return dataset


def unit_counts(dataset: NeuralDataset) -> dict[str, tuple[int, int]]:
    """Units per area after the split-half selection: ``{area: (kept, total)}``.

    ``total`` counts every unit recorded in the area (all sessions pooled), ``kept`` those that
    passed the reliability threshold; compare with :data:`STUDY_UNIT_COUNTS`.
    """
    return {area: (int(dataset.responses(area).sizes[NEUROID]), dataset.region_data(area).n_recorded)
            for area in dataset.regions}


def _log_unit_counts(dataset: NeuralDataset, threshold) -> None:
    for area, (kept, total) in unit_counts(dataset).items():
        study = STUDY_UNIT_COUNTS.get(area)
        log.info("%s %s: kept %d of %d units (split-half reliability >= %s)%s", dataset.name,
                 area, kept, total, threshold,
                 f"; the study kept {study[0]} of {study[1]}" if study else "")


def _from_allensdk(get, what: str, folder: Path, manifest):
    """``get()``, with a failure of allensdk (often: no network) turned into a DataError."""
    try:
        return get()
    except WorkbenchError:
        raise
    except Exception as exc:  # allensdk raises many kinds (HTTP, OS, HDF5); the message says which
        raise DataError(
            f"{manifest.name}: allensdk could not provide {what} from its cache {folder} "
            f"({type(exc).__name__}: {exc}); it downloads what the cache lacks, which needs the "
            f"network. To use an existing allensdk cache folder, set {ALLEN_CACHE_ENV}=DIR or "
            f"pass cache_folder=DIR; `workbench data fetch {manifest.name}` says what a load "
            "downloads") from exc


@register_loader("allen_neuropixels")
def load_allen(manifest, files, *, session_ids=None, cache_folder=None, areas=AREAS,
               window_s: float = 0.25, unit_filter: dict | None = None,
               **options) -> NeuralDataset:
    """Download (through allensdk) and process Neuropixels sessions showing natural scenes.

    Parameters
    ----------
    session_ids : list of int, optional
        Sessions to pool; default every ``brain_observatory_1.1`` session (32 sessions, about
        81 GB of NWB files; see ``workbench data fetch allen2019_neuropixels_natural_scenes``).
    cache_folder : path-like, optional
        allensdk cache folder, the one holding its ``manifest.json`` (default
        ``$WORKBENCH_ALLEN_CACHE``, else ``<data cache>/allen_ecephys``). An existing folder
        is used as it is: sessions already in it are not downloaded again.
    areas : sequence of str, default: the six visual areas
    window_s : float, default: 0.25
        Counting window after each scene's onset, in s.
    unit_filter : dict, optional
        Unit-quality filter handed to allensdk's ``get_session_data`` (default
        :data:`UNIT_FILTER`, allensdk's own defaults).
    **options
        ``reliability_threshold`` (0.8) and the other options of :func:`dataset_from_repeats`.

    Notes
    -----
    Each session is processed once (:func:`cached_session_repeats`); later loads with the same
    session, window, unit filter and areas read the cached counts and do not open its NWB file.
    """
    cache = open_cache(cache_folder)
    folder = allen_cache_folder(cache_folder)
    if session_ids is None:
        table = _from_allensdk(cache.get_session_table, "the session table", folder, manifest)
        session_ids = table.index[table["session_type"] == SESSION_TYPE].tolist()
        log.warning("loading all %d %s sessions; pass session_ids=[...] to load fewer",
                    len(session_ids), SESSION_TYPE)
    unit_filter = UNIT_FILTER if unit_filter is None else dict(unit_filter)
    parts = [cached_session_repeats(
                 s, lambda s=s: _from_allensdk(lambda: cache.get_session_data(int(s), **unit_filter),
                                               f"session {s}", folder, manifest),
                 areas=areas, window_s=window_s, unit_filter=unit_filter)
             for s in tqdm(session_ids, desc="Allen sessions", unit="session")]
    templates = _from_allensdk(lambda: [cache.get_natural_scene_template(i) for i in range(N_SCENES)],
                               "the natural-scene images", folder, manifest)
    return dataset_from_repeats(manifest, parts, templates, areas=areas, **options)


#: Sizes published with the dataset (allensdk's "Accessing Neuropixels Visual Coding Data"):
#: the metadata tables, and one NWB file per session (spike times, stimulus tables; no LFP).
METADATA_GB = 0.058
SESSION_NWB_GB = (1.7, 3.3)
ALL_SESSIONS_NWB_GB = 146.5  # all 58 sessions of both session types
N_SESSIONS = {"brain_observatory_1.1": 32, "functional_connectivity": 26}
SCENE_TEMPLATES_GB = N_SCENES * 918 * 1174 / 1e9  # 118 grayscale 918 x 1174 8-bit images


def download_plan(manifest, *, cache_folder=None) -> str:
    """What loading ``manifest`` (the Allen dataset) downloads, how large it is, and where.

    Works offline: it reads nothing from the network, only looks into the allensdk cache
    folder (:func:`allen_cache_folder`) and the processed-session cache.

    Returns
    -------
    str
        Several lines for ``workbench data fetch allen2019_neuropixels_natural_scenes``.
    """
    from importlib import metadata

    folder = allen_cache_folder(cache_folder)
    n_sessions = N_SESSIONS[SESSION_TYPE]
    mean_gb = ALL_SESSIONS_NWB_GB / sum(N_SESSIONS.values())
    low, high = SESSION_NWB_GB
    lines = [
        f"{manifest.name}: not downloaded by `workbench data fetch`; allensdk's "
        "EcephysProjectCache downloads it from the Allen Institute the first time the dataset "
        "is loaded (`workbench data info`, `workbench score`, `workbench.data.load`).",
        f"What loading it downloads into {folder}, about "
        f"{METADATA_GB + n_sessions * mean_gb + SCENE_TEMPLATES_GB:.0f} GB in all:",
        f"  - the metadata tables (sessions, probes, channels, units .csv): {METADATA_GB * 1000:.0f} MB",
        f"  - one NWB file per session (spike times, stimulus tables; {low}-{high} GB each): "
        f"by default the {n_sessions} {SESSION_TYPE} sessions, the ones that show the "
        f"{N_SCENES} natural scenes, about {n_sessions * mean_gb:.0f} GB",
        f"  - the {N_SCENES} natural-scene images: {SCENE_TEMPLATES_GB * 1000:.0f} MB",
        "  (the probes' LFP files, 707 GB, are not needed and not downloaded)",
        f"To download less, load a few sessions: `workbench data info {manifest.name} -o "
        f"session_ids=[715093703,719161530]` (about {2 * mean_gb:.0f} GB) or "
        f"`workbench.data.load('{manifest.name}', session_ids=[...])`.",
        f"To use an existing allensdk cache folder (the folder holding its manifest.json), set "
        f"{ALLEN_CACHE_ENV}=DIR, or pass `-o cache_folder=DIR` (`load(..., cache_folder=DIR)`); "
        "sessions already in it are not downloaded again.",
    ]
    if (folder / "manifest.json").is_file():
        found = sorted(folder.glob("session_*/session_*.nwb"))
        size = sum(p.stat().st_size for p in found) / 1e9
        lines.append(f"Found an allensdk cache in {folder}: {len(found)} session NWB file(s), "
                     f"{size:.1f} GB.")
    else:
        lines.append(f"No allensdk cache in {folder} yet (no manifest.json).")
    processed = sorted((cache_dir() / PROCESSED_DIR).glob("session_*/*.json"))
    if processed:
        lines.append(f"Processed sessions cached in {cache_dir() / PROCESSED_DIR}: "
                     f"{len(processed)} (read instead of the NWB files).")
    try:
        lines.append(f"allensdk {metadata.version('allensdk')} is installed.")
    except metadata.PackageNotFoundError:
        lines.append(INSTALL_HINT)
    return "\n".join(lines)
