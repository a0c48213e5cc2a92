"""The Allen Neuropixels loader, driven through allensdk's own ``EcephysSession``.

Each session is an allensdk ``EcephysSession`` built on a small ``EcephysSessionApi`` that
returns tables in the schema of the published NWB files (units, channels, probes, invalid
times, the stimulus table with ``natural_scenes`` presentations, spike times per unit), so
allensdk's own table building runs here: the units table merged with channels and probes
(the area of a unit comes from its peak channel), the stimulus table renamed, typed and masked
where an invalid time overlaps it, and the spike times of units outside the units table
dropped. Only the download (``EcephysProjectCache``) is replaced by a stand-in.
"""

import json
import logging
import warnings

import numpy as np
import pandas as pd
import pytest

with warnings.catch_warnings():  # allensdk 2.16.2 uses marshmallow 3 APIs deprecated since
    warnings.simplefilter("ignore", DeprecationWarning)
    from allensdk.brain_observatory.ecephys.ecephys_session import EcephysSession
    from allensdk.brain_observatory.ecephys.ecephys_session_api import EcephysSessionApi

import workbench.data.loaders.allen as allen
from workbench.data import reliability as rel
from workbench.cli import main
from workbench.data import load
from workbench.data.loaders.allen import (N_SCENES, UNIT_FILTER, cached_session_repeats,
                                          processed_key, processed_path, session_repeats)
from workbench.errors import DataError, WorkbenchError

AREAS = ["VISp", "VISl", "VISrl", "VISal", "VISpm", "VISam"]
NAME = "allen2019_neuropixels_natural_scenes"
MASKED_FRAME = 17  # one of its presentations overlaps an invalid time (tag "stimulus")


class SessionApi(EcephysSessionApi):
    """Tables as allensdk's NWB session API returns them, for a small synthetic session.

    Two probes; ``units_per_area`` units in each visual area (the first scene-driven, the
    others firing at a constant rate), one CA1 unit, and a unit that the quality filter left
    out of the units table but that still has spike times (allensdk drops them).
    """

    def __init__(self, session_id=715093703, n_repeats=6, units_per_area=3, seed=0, mask=False):
        rng = np.random.default_rng(seed)
        self.session_id = session_id
        # stimulus table: spontaneous, a static-gratings block, natural scenes (-1 = blank)
        frames = np.concatenate([rng.permutation(np.arange(-1, N_SCENES)) for _ in range(n_repeats)])
        starts = 100.0 + 0.25 * np.arange(frames.size)
        n_other = 5
        table = pd.DataFrame({
            "start_time": np.concatenate([[0.0], 60.0 + 0.25 * np.arange(n_other), starts]),
            "stimulus_name": ["", *["static_gratings"] * n_other, *["natural_scenes"] * frames.size],
            "stimulus_block": [np.nan, *[0.0] * n_other, *[2.0] * frames.size],
            "frame": np.concatenate([[np.nan], np.full(n_other, np.nan), frames.astype(float)]),
            "orientation": np.concatenate([[np.nan], 30.0 * np.arange(n_other), np.full(frames.size, np.nan)]),
            "spatial_frequency": np.concatenate([[np.nan], np.full(n_other, "0.04"), np.full(frames.size, np.nan)]),
            "phase": np.concatenate([[np.nan], np.full(n_other, "[0.25, 0.25]"), np.full(frames.size, np.nan)]),
            "stimulus_index": np.concatenate([[0], np.ones(n_other), np.full(frames.size, 9)]).astype(int),
        })
        table["stop_time"] = table["start_time"] + np.where(table["stimulus_name"] == "", 60.0, 0.25)
        table.index.name = "id"
        self.table = table
        self.scene_starts, self.scene_frames = starts, frames
        # with mask: an invalid interval over the third presentation of MASKED_FRAME (allensdk
        # masks presentations row by row with iterrows, about 1 s per 700 rows: only where needed)
        masked = starts[np.flatnonzero(frames == MASKED_FRAME)[2]]
        self.invalid_times = pd.DataFrame({"start_time": [masked + 0.1], "stop_time": [masked + 0.2],
                                           "tags": [["EcephysSession", str(session_id), "stimulus"]]})
        if not mask:
            self.invalid_times = self.invalid_times.iloc[:0]
        # probes, channels (one per unit, the area lives here) and units
        areas = [a for a in AREAS for _ in range(units_per_area)] + ["CA1"]
        probe_ids = np.array([session_id % 1000 * 10 + 1, session_id % 1000 * 10 + 2])
        self.probes = pd.DataFrame({"description": ["probeA", "probeC"], "location": ["See electrode locations"] * 2,
                                    "sampling_rate": [30000.0, 30000.0], "lfp_sampling_rate": [2500.0, 2500.0],
                                    "has_lfp_data": [True, True]}, index=pd.Index(probe_ids, name="id"))
        n = len(areas)
        channel_ids = 850_000_000 + np.arange(n) * 3
        probe_of = probe_ids[(np.arange(n) >= n // 2).astype(int)]
        self.channels = pd.DataFrame({
            "probe_id": probe_of, "local_index": np.arange(n) * 4,
            "probe_horizontal_position": np.tile([43, 11, 59, 27], n)[:n],
            "probe_vertical_position": rng.permutation(n) * 20 + 20,
            "anterior_posterior_ccf_coordinate": rng.uniform(7000, 9000, n),
            "dorsal_ventral_ccf_coordinate": rng.uniform(500, 3000, n),
            "left_right_ccf_coordinate": rng.uniform(6000, 9000, n),
            "ecephys_structure_id": np.arange(n) + 385, "ecephys_structure_acronym": areas,
            "filtering": "AP band: 500 Hz high-pass; LFP band: 1000 Hz low-pass", "valid_data": True,
        }, index=pd.Index(channel_ids, name="id"))
        unit_ids = 950_000_000 + np.arange(n) * 7
        self.units = pd.DataFrame({
            "peak_channel_id": channel_ids, "cluster_id": np.arange(n), "local_index": np.arange(n),
            "quality": "good", "firing_rate": rng.uniform(2, 20, n), "snr": rng.uniform(1, 5, n),
            "isi_violations": rng.uniform(0, 0.4, n), "presence_ratio": 0.99,
            "amplitude_cutoff": rng.uniform(0, 0.09, n), "amplitude": rng.uniform(50, 300, n),
            "PT_ratio": rng.uniform(0.2, 0.8, n),
        }, index=pd.Index(unit_ids, name="id"))
        self.filtered_out_unit = 949_999_999
        # spike times: Poisson counts per presentation, uniform within it, sorted per unit
        self.spikes = {}
        edges = np.concatenate([starts, [starts[-1] + 0.25]])
        for k, unit in enumerate([*unit_ids, self.filtered_out_unit]):
            rate = rng.gamma(2.0, 10.0, N_SCENES) if k % units_per_area == 0 else np.full(N_SCENES, 8.0)
            lam = np.where(frames < 0, 2.0, rate[np.maximum(frames, 0)] * 0.25)
            counts = rng.poisson(lam)
            onset = np.repeat(edges[:-1], counts)
            self.spikes[unit] = np.sort(onset + rng.uniform(0, 0.25, onset.size))

    def get_ecephys_session_id(self):
        return self.session_id

    def get_stimulus_presentations(self):
        return self.table.copy()

    def get_invalid_times(self):
        return self.invalid_times.copy()

    def get_probes(self):
        return self.probes.copy()

    def get_channels(self):
        return self.channels.copy()

    def get_units(self):
        return self.units.copy()

    def get_spike_times(self):
        return {unit: times.copy() for unit, times in self.spikes.items()}


def make_session(**kwargs) -> EcephysSession:
    return EcephysSession(api=SessionApi(**kwargs))


class FakeProjectCache:
    """Stands in for allensdk's EcephysProjectCache (the download) and counts its sessions."""

    def __init__(self, apis):
        self.apis = {api.session_id: api for api in apis}
        self.calls = []

    def get_session_table(self):
        return pd.DataFrame({"session_type": ["brain_observatory_1.1"] * len(self.apis)},
                            index=list(self.apis))

    def get_session_data(self, session_id, **unit_filter):
        self.calls.append((session_id, unit_filter))
        return EcephysSession(api=self.apis[session_id])

    def get_natural_scene_template(self, number):
        return np.full((9, 12), number, dtype=np.uint8)


@pytest.fixture
def two_sessions(monkeypatch):
    cache = FakeProjectCache([SessionApi(), SessionApi(session_id=719161530, n_repeats=5, seed=1)])
    monkeypatch.setattr(allen, "open_cache", lambda folder=None: cache)
    return cache


def test_allensdk_builds_the_tables_and_counts_match_its_own():
    api = SessionApi(mask=True)
    session = EcephysSession(api=api)
    # allensdk's table building: the area comes from the peak channel, probes are merged in,
    # units are sorted by probe and depth, the filtered-out unit's spike times are dropped
    units = session.units
    assert units.index.name == "unit_id" and set(units.index) == set(api.units.index)
    expected_area = api.channels.loc[api.units["peak_channel_id"], "ecephys_structure_acronym"].to_numpy()
    np.testing.assert_array_equal(units.loc[api.units.index, "ecephys_structure_acronym"], expected_area)
    assert set(units["probe_description"]) == {"probeA", "probeC"}
    assert api.filtered_out_unit not in session.spike_times
    table = session.stimulus_presentations
    assert "spontaneous" in set(table["stimulus_name"])  # renamed from ""
    assert (table["stimulus_name"] == "invalid_presentation").sum() == 1

    repeats = session_repeats(session)
    visual = units[units["ecephys_structure_acronym"].isin(AREAS)]
    assert repeats.dims == ("stimulus", "neuroid", "repetition")
    assert repeats.shape == (N_SCENES, 18, 6)  # the CA1 unit is not in a visual area
    assert list(repeats["neuroid_id"].values) == [f"715093703_{u}" for u in visual.index]
    np.testing.assert_array_equal(repeats["region"].values, visual["ecephys_structure_acronym"])
    # the masked presentation is not counted: frame 17 has 5 repetitions, the others 6
    assert np.isnan(repeats.values[MASKED_FRAME, :, 5]).all()
    assert not np.isnan(np.delete(repeats.values, MASKED_FRAME, axis=0)).any()

    # allensdk's own spike counting (presentationwise_spike_counts) gives the same counts
    scenes = table[(table["stimulus_name"] == "natural_scenes")]
    scenes = scenes[pd.to_numeric(scenes["frame"]) >= 0].sort_values("start_time")
    counts = session.presentationwise_spike_counts(
        bin_edges=[0.0, 0.25], stimulus_presentation_ids=scenes.index.values,
        unit_ids=visual.index.values)
    counts = counts.values[:, 0, :]  # (presentation, unit)
    frames = pd.to_numeric(scenes["frame"]).astype(int).to_numpy()
    for frame in (0, MASKED_FRAME, 117):
        np.testing.assert_array_equal(repeats.values[frame, :, :(frames == frame).sum()],
                                      counts[frames == frame].T)
    # and a direct count on the raw spike times of the API agrees for one unit
    unit, start = visual.index[4], api.scene_starts[api.scene_frames == 40]
    spikes = api.spikes[unit]
    direct = [np.sum((spikes >= t) & (spikes < t + 0.25)) for t in start]
    np.testing.assert_array_equal(repeats.values[40, 4], direct)


def test_loader_pools_sessions_and_keeps_reliable_units(two_sessions):
    dataset = load(NAME, session_ids=[715093703, 719161530])
    assert [call[1] for call in two_sessions.calls] == [UNIT_FILTER, UNIT_FILTER]
    assert dataset.regions == AREAS
    assert len(dataset.stimuli) == N_SCENES and dataset.stimuli.ids[5] == "scene005"
    assert dataset.stimuli[5].mode == "L" and np.asarray(dataset.stimuli[5]).max() == 5
    visp = dataset.responses("VISp")
    # the scene-driven unit of each session passes 0.8, the random ones do not
    assert sorted(u.split("_")[0] for u in visp["neuroid_id"].values) == ["715093703", "719161530"]
    assert (dataset.reliability("VISp") >= 0.8).all()
    repeats = dataset.repeats("VISp")
    assert repeats.sizes["repetition"] == 6
    second = list(repeats["neuroid_id"].values).index(visp["neuroid_id"].values[1])
    assert np.isnan(repeats.values[:, second, 5]).all()  # the 5-repeat session is padded
    np.testing.assert_allclose(visp.values, np.nanmean(repeats.values, axis=2))
    assert dataset.summary()["regions"]["VISp"]["n_recorded"] == 6
    everything = load(NAME, reliability_threshold=None)  # every brain_observatory_1.1 session
    assert everything.responses("VISam").sizes["neuroid"] == 6


def test_processed_sessions_are_cached_keyed_and_verified(monkeypatch, data_cache, caplog):
    cache = FakeProjectCache([SessionApi(n_repeats=3)])  # small: the cache is tested here
    monkeypatch.setattr(allen, "open_cache", lambda folder=None: cache)
    one = dict(session_ids=[715093703], reliability_threshold=None, reliability_splits=4)
    first = load(NAME, **one)
    assert len(cache.calls) == 1
    key = processed_key(715093703, areas=AREAS, window_s=0.25)
    path = processed_path(key)
    assert path.parent == data_cache / "allen_processed" / "session_715093703"
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["key"] == key and record["key"]["unit_filter"] == UNIT_FILTER
    assert not list((data_cache / "allen_processed").rglob("*.part"))

    # a second load reads the cache: no session is opened, the numbers are the same (the
    # reliability filter is applied after the cache, so another threshold reuses it too)
    second = load(NAME, **one)
    load(NAME, session_ids=[715093703], reliability_threshold=0.3, reliability_splits=4)
    assert len(cache.calls) == 1
    for area in AREAS:
        np.testing.assert_array_equal(second.repeats(area).values, first.repeats(area).values)
        assert list(second.responses(area)["neuroid_id"].values) == list(first.responses(area)["neuroid_id"].values)

    # another window is another key: processed again and stored beside the first
    narrow = load(NAME, **one, window_s=0.1)
    assert len(cache.calls) == 2
    wide, short = first.repeats("VISp").values, narrow.repeats("VISp").values
    assert (short <= wide).all() and short.sum() < wide.sum()
    assert len(list(path.parent.glob("*.npz"))) == 2
    strict = dict(UNIT_FILTER, amplitude_cutoff_maximum=0.05)
    other_keys = [processed_key(715093703, unit_filter=strict), processed_key(715093703, areas=AREAS[:2]),
                  processed_key(719161530)]
    assert len({processed_path(k) for k in [key, *other_keys]}) == 4

    # a corrupt entry is not used: a warning names it, the session is processed again
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="workbench.data.loaders.allen"):
        again = load(NAME, **one)
    assert len(cache.calls) == 3
    assert any(str(path) in r.getMessage() and "sha256" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(again.repeats("VISp").values, first.repeats("VISp").values)
    load(NAME, **one)  # rewritten and valid again
    assert len(cache.calls) == 3

    # an entry whose record was written for another key is not used either
    record = json.loads(path.with_suffix(".json").read_text())
    record["key"]["window_s"] = 0.3
    path.with_suffix(".json").write_text(json.dumps(record))
    load(NAME, **one)
    assert len(cache.calls) == 4


def test_cached_session_repeats_checks_the_session_it_gets(data_cache):
    session = make_session(session_id=719161530)
    with pytest.raises(DataError, match=r"Allen session 715093703: the session returned has "
                                        r"ecephys_session_id 719161530"):
        cached_session_repeats(715093703, lambda: session)
    with pytest.raises(DataError, match=r"Allen session id 'abc': expected an integer"):
        cached_session_repeats("abc", lambda: session)
    assert not (data_cache / "allen_processed").exists() or not list((data_cache / "allen_processed").rglob("*.npz"))


def test_a_failed_download_names_the_session_and_the_cache_folder(two_sessions, data_cache):
    def offline(session_id, **unit_filter):
        raise ConnectionError("Max retries exceeded with url: /api/v2/well_known_file_download")

    two_sessions.get_session_data = offline
    with pytest.raises(DataError, match=(
            rf"{NAME}: allensdk could not provide session 715093703 from its cache "
            rf"{data_cache / 'allen_ecephys'} \(ConnectionError: Max retries exceeded.*\).*"
            r"set WORKBENCH_ALLEN_CACHE=DIR or pass cache_folder=DIR")):
        load(NAME, session_ids=[715093703])
    assert not (data_cache / "allen_processed").exists()


def test_missing_scenes_and_columns_are_errors():
    api = SessionApi()
    api.table = api.table[api.table["frame"] != 3]
    with pytest.raises(DataError, match=r"Allen session 715093703: 1 of 118 natural scenes were never presented \(e.g. frame 3\)"):
        session_repeats(EcephysSession(api=api))
    api = SessionApi()
    api.table = api.table.drop(columns="frame")
    with pytest.raises(DataError, match=r"lacks column\(s\) \['frame'\]"):
        session_repeats(EcephysSession(api=api))


def test_missing_allensdk_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_allensdk(name, *args, **kwargs):
        if name.startswith("allensdk"):
            raise ImportError("No module named 'allensdk'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_allensdk)
    with pytest.raises(WorkbenchError, match=r"pip install --no-deps -r requirements-allensdk.txt` \(allensdk==2.16.2\)"):
        load(NAME, session_ids=[1])


def test_allensdk_cache_folder_is_the_option_then_the_environment(data_cache, tmp_path, monkeypatch):
    assert allen.allen_cache_folder() == data_cache / "allen_ecephys"
    monkeypatch.setenv("WORKBENCH_ALLEN_CACHE", str(tmp_path / "existing"))
    assert allen.allen_cache_folder() == tmp_path / "existing"
    assert allen.allen_cache_folder(tmp_path / "other") == tmp_path / "other"
    cache = allen.open_cache()  # allensdk's own cache object; constructing it downloads nothing
    assert type(cache).__name__ == "EcephysProjectCache"
    assert (tmp_path / "existing" / "manifest.json").is_file()


def test_fetch_says_what_it_would_download_offline(data_cache, tmp_path, monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise AssertionError("fetch must not open allensdk's cache")

    monkeypatch.setattr(allen, "open_cache", no_network)
    assert main(["data", "fetch", NAME]) == 0
    out = capsys.readouterr().out
    assert f"{NAME}: not downloaded by `workbench data fetch`" in out
    assert f"downloads into {data_cache / 'allen_ecephys'}, about 81 GB in all" in out
    # 32 brain_observatory_1.1 sessions at the published mean of 146.5 GB / 58 sessions
    assert f"about {32 * 146.5 / 58:.0f} GB" in out and "1.7-3.3 GB each" in out
    assert f"118 natural-scene images: {118 * 918 * 1174 / 1e6:.0f} MB" in out
    assert "WORKBENCH_ALLEN_CACHE=DIR" in out and "-o cache_folder=DIR" in out
    assert "-o session_ids=[715093703,719161530]" in out
    assert "No allensdk cache in" in out and "allensdk 2.16.2 is installed" in out

    existing = tmp_path / "allensdk_cache"
    (existing / "session_715093703").mkdir(parents=True)
    (existing / "manifest.json").write_text("{}")
    (existing / "session_715093703" / "session_715093703.nwb").write_bytes(b"\0" * 2_000_000)
    monkeypatch.setenv("WORKBENCH_ALLEN_CACHE", str(existing))
    assert main(["data", "fetch", NAME]) == 0
    out = capsys.readouterr().out
    assert f"downloads into {existing}," in out
    assert f"Found an allensdk cache in {existing}: 1 session NWB file(s), 0.0 GB." in out


def test_units_kept_per_area_are_counted_and_logged_beside_the_study(monkeypatch, caplog):
    """kept/total per area after the split-half selection, counted directly from the sessions."""
    apis = [SessionApi(units_per_area=4, n_repeats=4), SessionApi(session_id=719161530, n_repeats=5, seed=1)]
    monkeypatch.setattr(allen, "open_cache", lambda folder=None: FakeProjectCache(apis))
    with caplog.at_level(logging.INFO, logger="workbench.data.loaders.allen"):
        dataset = load(NAME, reliability_splits=10)
    expected = {}
    for area in AREAS:
        parts = [session_repeats(EcephysSession(api=api), areas=[area]) for api in apis]
        depth = max(part.sizes["repetition"] for part in parts)
        pooled = np.concatenate([np.pad(part.values, ((0, 0), (0, 0), (0, depth - part.sizes["repetition"])),
                                        constant_values=np.nan) for part in parts], axis=1)
        reliability = rel.split_half_reliability(pooled, n_splits=10)
        expected[area] = (int(np.sum(np.nan_to_num(reliability, nan=-1) >= 0.8)), pooled.shape[1])
    assert {area: total for area, (_, total) in expected.items()} == dict.fromkeys(AREAS, 7)
    assert all(kept >= 2 for kept, _ in expected.values())  # the scene-driven unit of each session
    assert allen.unit_counts(dataset) == expected
    for area, (kept, total) in expected.items():
        study_kept, study_total = allen.STUDY_UNIT_COUNTS[area]
        assert (f"{NAME} {area}: kept {kept} of {total} units (split-half reliability >= 0.8); "
                f"the study kept {study_kept} of {study_total}") in caplog.messages
