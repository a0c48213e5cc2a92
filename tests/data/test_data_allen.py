"""The Allen Neuropixels loader, driven through a stand-in at the allensdk session boundary."""

import numpy as np
import pandas as pd
import pytest

import workbench.data.loaders.allen as allen
from workbench.data import load
from workbench.data.loaders.allen import N_SCENES, session_repeats
from workbench.errors import DataError, WorkbenchError

AREAS = ["VISp", "VISl", "VISrl", "VISal", "VISpm", "VISam"]


class FakeSession:
    """Tables with the real EcephysSession columns; units with per-scene firing rates."""

    def __init__(self, session_id=715093703, n_repeats=6, units_per_area=3, seed=0):
        rng = np.random.default_rng(seed)
        self.ecephys_session_id = session_id
        frames = np.concatenate([rng.permutation(np.arange(-1, N_SCENES)) for _ in range(n_repeats)])
        starts = 100.0 + 0.25 * np.arange(frames.size)
        other = pd.DataFrame({"stimulus_name": "static_gratings", "frame": np.nan,
                              "start_time": starts[:5] - 10.0, "stop_time": starts[:5] - 9.75})
        scenes = pd.DataFrame({"stimulus_name": "natural_scenes", "frame": frames.astype(float),
                               "start_time": starts, "stop_time": starts + 0.25})
        self.stimulus_presentations = pd.concat([other, scenes], ignore_index=True)
        self.stimulus_presentations.index.name = "stimulus_presentation_id"
        areas = [a for a in AREAS for _ in range(units_per_area)] + ["CA1"]
        unit_ids = 950_000_000 + np.arange(len(areas)) * 7
        self.units = pd.DataFrame({"ecephys_structure_acronym": areas}, index=pd.Index(unit_ids, name="unit_id"))
        self.spike_times = {}
        for k, unit in enumerate(unit_ids):
            # reliable units (first of each area) fire by scene; the others at random
            rate = rng.gamma(2.0, 10.0, N_SCENES) if k % units_per_area == 0 else np.full(N_SCENES, 8.0)
            spikes = []
            for frame, start in zip(frames, starts):
                lam = 2.0 if frame < 0 else rate[frame] * 0.25
                spikes.append(start + np.sort(rng.uniform(0, 0.25, rng.poisson(lam))))
            self.spike_times[unit] = np.concatenate(spikes)


class FakeCache:
    def __init__(self, sessions):
        self.sessions = {s.ecephys_session_id: s for s in sessions}

    def get_session_table(self):
        return pd.DataFrame({"session_type": ["brain_observatory_1.1"] * len(self.sessions)},
                            index=list(self.sessions))

    def get_session_data(self, session_id):
        return self.sessions[session_id]

    def get_natural_scene_template(self, number):
        return np.full((9, 12), number, dtype=np.uint8)


def test_spike_counts_match_a_direct_count():
    session = FakeSession()
    repeats = session_repeats(session)
    assert repeats.dims == ("stimulus", "neuroid", "repetition")
    assert repeats.shape == (N_SCENES, 18, 6)  # the CA1 unit is not in a visual area
    table = session.stimulus_presentations
    unit = session.units.index[4]
    scene = table[(table["stimulus_name"] == "natural_scenes") & (table["frame"] == 17)]
    direct = [np.sum((session.spike_times[unit] >= t) & (session.spike_times[unit] < t + 0.25))
              for t in scene.sort_values("start_time")["start_time"]]
    np.testing.assert_array_equal(repeats.values[17, 4], direct)
    assert repeats["neuroid_id"].values[4] == f"715093703_{unit}"
    assert repeats["region"].values[4] == "VISl"


def test_loader_pools_sessions_and_keeps_reliable_units(monkeypatch):
    sessions = [FakeSession(), FakeSession(session_id=719161530, n_repeats=5, seed=1)]
    monkeypatch.setattr(allen, "open_cache", lambda folder=None: FakeCache(sessions))
    dataset = load("allen2019_neuropixels_natural_scenes", session_ids=[715093703, 719161530])
    assert dataset.regions == AREAS
    assert len(dataset.stimuli) == N_SCENES and dataset.stimuli.ids[5] == "scene005"
    assert dataset.stimuli[5].mode == "L" and np.asarray(dataset.stimuli[5]).max() == 5
    visp = dataset.responses("VISp")
    # the scene-driven unit of each session passes 0.8, the random ones do not
    assert sorted(u.split("_")[0] for u in visp["neuroid_id"].values) == ["715093703", "719161530"]
    assert (dataset.reliability("VISp") >= 0.8).all()
    repeats = dataset.repeats("VISp")
    assert repeats.sizes["repetition"] == 6
    assert np.isnan(repeats.values[:, 1, 5]).all()  # the 5-repeat session is padded
    np.testing.assert_allclose(visp.values, np.nanmean(repeats.values, axis=2))
    assert dataset.summary()["regions"]["VISp"]["n_recorded"] == 6
    everything = load("allen2019_neuropixels_natural_scenes", reliability_threshold=None)
    assert everything.responses("VISam").sizes["neuroid"] == 6


def test_missing_scenes_and_columns_are_errors():
    session = FakeSession()
    table = session.stimulus_presentations
    session.stimulus_presentations = table[table["frame"] != 3]
    with pytest.raises(DataError, match=r"Allen session 715093703: 1 of 118 natural scenes were never presented \(e.g. frame 3\)"):
        session_repeats(session)
    session.stimulus_presentations = table.drop(columns="frame")
    with pytest.raises(DataError, match=r"lacks column\(s\) \['frame'\]"):
        session_repeats(session)


def test_missing_allensdk_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_allensdk(name, *args, **kwargs):
        if name.startswith("allensdk"):
            raise ImportError("No module named 'allensdk'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_allensdk)
    with pytest.raises(WorkbenchError, match=r"pip install --no-deps allensdk==2.16.2"):
        load("allen2019_neuropixels_natural_scenes", session_ids=[1])
