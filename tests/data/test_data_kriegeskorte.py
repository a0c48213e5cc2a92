import numpy as np
import pytest
import scipy.io
import scipy.stats
from scipy.spatial.distance import squareform

from workbench.data import load, read_manifest
from workbench.data.loaders.kriegeskorte import load_kriegeskorte2008
from workbench.errors import DataError, ValidationError

SUPP = "kriegeskorte92/Kriegeskorte_Neuron2008_supplementalData.mat"
BRAIN = "kriegeskorte92/92_brainRDMs.mat"


@pytest.fixture
def raw(mirror):
    return scipy.io.loadmat(mirror / SUPP), scipy.io.loadmat(mirror / BRAIN)


@pytest.fixture
def dataset(mirror):
    return load("kriegeskorte2008_92", mirror=mirror)


def test_regions_kinds_and_stimuli(dataset, raw):
    assert dataset.regions == ["IT (monkey)", "IT (human)"]
    assert [dataset.kind(r) for r in dataset.regions] == ["rdm", "rdm"]
    assert len(dataset.stimuli) == 92 and dataset.stimuli.ids[0] == "obj01"
    structs = raw[0]["stimuli_92objs"].ravel()
    for i in (0, 45, 91):
        image = dataset.stimuli[i]
        assert image.mode == "RGB" and image.size == (175, 175)
        np.testing.assert_array_equal(np.asarray(image), structs[i]["image"])


def test_rdms_are_the_published_ones_in_stimulus_order(dataset, raw):
    published = {str(e["name"][0]): squareform(e["RDM"].ravel())
                 for e in raw[0]["RDMs_mIT_hIT_fig1"].ravel()}
    monkey, human = dataset.rdm("IT (monkey)"), dataset.rdm("IT (human)")
    assert monkey.dims == ("stimulus", "stimulus_2") and monkey.shape == (92, 92)
    np.testing.assert_array_equal(monkey.values, published["mIT_674neurons"])
    np.testing.assert_array_equal(human.values, published["hITvisStim_316vx"])
    assert str(monkey["species"].values) == "macaque" and str(human["species"].values) == "human"
    assert list(monkey["stimulus_id"].values) == dataset.stimuli.ids
    assert monkey["category"].values[0] == "human bodypart"
    vectors = raw[0]["categoryVectors"]
    np.testing.assert_array_equal(monkey["category_animate"].values, vectors[:, 0].astype(bool))
    np.testing.assert_array_equal(human["category_face"].values, vectors[:, 5].astype(bool))
    assert int(monkey["category_animate"].sum()) == 48


def test_monkey_human_spearman_equals_a_direct_computation(dataset, raw):
    from workbench.metrics import compare_rdms

    vectors = {str(e["name"][0]): e["RDM"].ravel() for e in raw[0]["RDMs_mIT_hIT_fig1"].ravel()}
    direct = scipy.stats.spearmanr(vectors["mIT_674neurons"], vectors["hITvisStim_316vx"])[0]
    got = compare_rdms(dataset.rdm("IT (monkey)").values, dataset.rdm("IT (human)").values)
    assert got == pytest.approx(direct, abs=1e-12)
    assert 0.2 < got < 0.6


def test_human_ceiling_is_leave_one_subject_out(dataset, raw):
    from workbench.metrics.ceiling import rsa_subject_ceiling

    entries = raw[1]["RDMs"]
    subjects = np.stack([(entries[0, s, 0]["RDM"] + entries[0, s, 1]["RDM"]) / 2.0
                         for s in range(4)]).astype(np.float64)
    lower, upper = rsa_subject_ceiling(subjects)
    assert dataset.ceiling("IT (human)", "rsa") == pytest.approx(upper)
    assert 0 < lower < upper < 1
    assert dataset.ceiling("IT (monkey)", "rsa") is None
    assert dataset.ceiling("IT (human)", "regression") is None
    assert dataset.ceiling("IT (human)", "cka") is None


def test_region_and_metric_errors(dataset):
    with pytest.raises(ValidationError, match=r"region 'V4' is not in dataset kriegeskorte2008_92; expected one of \['IT \(monkey\)'"):
        dataset.rdm("V4")
    with pytest.raises(ValidationError, match="has only a published RDM"):
        dataset.responses("IT (monkey)")
    with pytest.raises(ValidationError, match="metric='pls' is not valid"):
        dataset.ceiling("IT (human)", "pls")


def test_corrupt_and_incomplete_files(tmp_path, mirror):
    manifest = read_manifest("kriegeskorte2008_92")
    bad = tmp_path / "supp.mat"
    bad.write_bytes((mirror / SUPP).read_bytes()[:1000])
    with pytest.raises(DataError, match="supp.mat: not a readable MATLAB file"):
        load_kriegeskorte2008(manifest, {SUPP: bad, BRAIN: mirror / BRAIN})
    partial = tmp_path / "partial.mat"
    scipy.io.savemat(partial, {"stimuli_92objs": np.zeros(3)})
    with pytest.raises(DataError, match=r"partial.mat: variable\(s\) \['RDMs_mIT_hIT_fig1', 'categoryLabels', 'categoryVectors'\] missing"):
        load_kriegeskorte2008(manifest, {SUPP: partial, BRAIN: mirror / BRAIN})
    with pytest.raises(DataError, match="unknown option"):
        load_kriegeskorte2008(manifest, {SUPP: mirror / SUPP, BRAIN: mirror / BRAIN}, session=1)
