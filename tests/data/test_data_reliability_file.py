"""A manifest's per-neuroid reliability file and its threshold: applied to pre-averaged
responses (the study's face-patch AM format), and refused where a threshold cannot be applied."""

import numpy as np
import pytest
import yaml

from workbench.cli import main
from workbench.data import load
from workbench.data.reliability import split_half_reliability
from workbench.errors import DataError, ValidationError

N_IMAGES, N_NEURONS, N_RELIABLE = 2100, 159, 148  # the study's AM data: >= 0.1 keeps 148


def _study_am_files(folder, seed=0):
    """``AM.npy`` (images x neurons, averaged) and ``noise_ceiling.npy`` (one per neuron), as
    the study's released face-patch data are shaped (similarity/dataset.py, macaque_face)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    responses = rng.gamma(2.0, size=(N_IMAGES, N_NEURONS))
    ceiling = np.concatenate([rng.uniform(0.1, 0.9, N_RELIABLE),
                              rng.uniform(-0.2, 0.0999, N_NEURONS - N_RELIABLE)])
    ceiling[0] = 0.1  # the threshold itself passes
    ceiling = rng.permutation(ceiling)
    np.save(folder / "AM.npy", responses)
    np.save(folder / "noise_ceiling.npy", ceiling)
    return responses, ceiling


def _manifest(tmp_path, files, **options):
    raw = {"name": "face_am", "description": "AM, pre-averaged", "species": "macaque",
           "regions": ["AM"], "stimuli": {"count": N_IMAGES}, "license": "on request",
           "citation": "Chang et al. 2021", "loader": "local", "root": "face_am",
           "files": [{"path": p} for p in files],
           "options": {"responses": "AM.npy", "dims": ["stimulus", "neuroid"], "images": None,
                       **options}}
    path = tmp_path / "face_am.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_reliability_file_filters_pre_averaged_responses(tmp_path, capsys):
    responses, ceiling = _study_am_files(tmp_path / "face_am")
    path = _manifest(tmp_path, ["AM.npy", "noise_ceiling.npy"],
                     reliability_file="noise_ceiling.npy", reliability_threshold=0.1)
    dataset = load(path)
    keep = ceiling >= 0.1
    assert keep.sum() == N_RELIABLE
    am = dataset.responses("AM")
    assert am.shape == (N_IMAGES, N_RELIABLE)
    np.testing.assert_array_equal(am.values, responses[:, keep])
    np.testing.assert_array_equal(dataset.reliability("AM"), ceiling[keep])
    np.testing.assert_array_equal(am["reliability"].values, ceiling[keep])
    assert dataset.repeats("AM") is None
    assert dataset.summary()["regions"]["AM"]["n_recorded"] == N_NEURONS
    assert main(["data", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"region AM (macaque): {N_RELIABLE} neuroids kept of {N_NEURONS} recorded" in out
    median = np.median(ceiling[keep])
    assert f"median reliability (the manifest's reliability_file) {median:.3f}" in out and "split-half" not in out
    # without a threshold the file's values are kept beside every neuron
    everything = load(path, reliability_threshold=None)
    np.testing.assert_array_equal(everything.reliability("AM"), ceiling)


def test_a_threshold_without_repeats_or_reliability_file_is_refused(tmp_path):
    _study_am_files(tmp_path / "face_am")
    path = _manifest(tmp_path, ["AM.npy"], reliability_threshold=0.99)
    with pytest.raises(ValidationError, match=rf"manifest {path}: field "
                       r"'options.reliability_threshold' is 0.99 but it cannot be applied: .*"
                       r"pre-averaged .*no 'options.reliability_file'"):
        load(path)
    assert load(path, reliability_threshold=None).responses("AM").shape == (N_IMAGES, N_NEURONS)


def test_a_reliability_file_of_the_wrong_length_names_the_field(tmp_path):
    _study_am_files(tmp_path / "face_am")
    np.save(tmp_path / "face_am" / "short.npy", np.ones(N_NEURONS - 1))
    path = _manifest(tmp_path, ["AM.npy", "short.npy"], reliability_file="short.npy",
                     reliability_threshold=0.1)
    with pytest.raises(DataError, match=rf"field 'options.reliability_file': .*short.npy holds "
                       rf"{N_NEURONS - 1} values; expected one per neuroid of the responses "
                       rf"\({N_NEURONS}\)"):
        load(path)


def test_the_reliability_file_replaces_split_half_for_data_with_repeats(tmp_path):
    rng = np.random.default_rng(3)
    repeats = rng.gamma(2.0, size=(30, 5, 1)) + 0.5 * rng.normal(size=(30, 5, 4))
    given = np.array([0.5, 0.05, 0.3, 0.2, 0.01])
    folder = tmp_path / "face_am"
    folder.mkdir()
    np.save(folder / "r.npy", repeats)
    np.save(folder / "ceil.npy", given)
    path = _manifest(tmp_path, ["r.npy", "ceil.npy"], responses="r.npy",
                     dims=["stimulus", "neuroid", "repetition"], reliability_file="ceil.npy",
                     reliability_threshold=0.2)
    dataset = load(path)
    np.testing.assert_array_equal(dataset.reliability("AM"), [0.5, 0.3, 0.2])
    np.testing.assert_allclose(dataset.responses("AM").values, repeats[:, [0, 2, 3]].mean(axis=2))
    # the data's own split-half estimate is not what selected them
    assert not np.allclose(split_half_reliability(repeats)[[0, 2, 3]], [0.5, 0.3, 0.2])


def test_cowley_averaged_session_refuses_a_threshold(mirror):
    with pytest.raises(ValidationError, match=r"cowley2023_v4.yaml: field "
                       r"'options.reliability_threshold' is 0.5 but session 201025 has "
                       "repeat-averaged responses only"):
        load("cowley2023_v4", mirror=mirror, session="201025", reliability_threshold=0.5)
