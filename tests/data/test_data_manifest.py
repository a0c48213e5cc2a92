import hashlib

import pytest
import yaml

from workbench.data import list_datasets, read_manifest
from workbench.data.manifest import BUILTIN_MANIFESTS
from workbench.errors import DataError

SHIPPED = sorted(p.stem for p in BUILTIN_MANIFESTS.glob("*.yaml"))


def _valid(name="mine"):
    return {
        "name": name, "description": "d", "species": "mouse", "regions": ["V1"],
        "stimuli": {"count": 3}, "license": "CC0", "citation": "me", "loader": "local",
        "files": [{"path": "a/b.npy", "url": "https://example.org/b.npy",
                   "sha256": hashlib.sha256(b"x").hexdigest(), "size": 1}],
    }


def _write(tmp_path, raw, name="mine"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw) if isinstance(raw, dict) else raw)
    return path


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_manifest_is_valid(name):
    manifest = read_manifest(name)
    assert manifest.name == name
    assert manifest.regions and manifest.citation and manifest.license
    for entry in manifest.files:
        assert not entry.path.startswith("/")


def test_list_names_the_shipped_datasets():
    assert {"kriegeskorte2008_92", "cowley2023_v4", "allen2019_neuropixels_natural_scenes",
            "majajhong2015", "chang2021_face_am"} <= set(list_datasets())


def test_shipped_checksums_match_the_shared_sums(mirror):
    sums = dict(line.split()[::-1] for line in (mirror / "SHA256SUMS").read_text().splitlines())
    for name in ("kriegeskorte2008_92", "cowley2023_v4"):
        for entry in read_manifest(name).files:
            assert sums[f"./{entry.path}"] == entry.sha256
            assert (mirror / entry.path).stat().st_size == entry.size


def test_a_valid_manifest_is_read_from_a_path(tmp_path):
    manifest = read_manifest(_write(tmp_path, _valid()))
    assert manifest.files[0].path == "a/b.npy" and manifest.files[0].size == 1
    assert manifest.options == {}


def test_extra_manifest_folders_are_searched_first(tmp_path, monkeypatch):
    _write(tmp_path, _valid())
    monkeypatch.setenv("WORKBENCH_MANIFESTS", str(tmp_path))
    assert "mine" in list_datasets()
    assert read_manifest("mine").source == tmp_path / "mine.yaml"


@pytest.mark.parametrize("change, field", [
    (lambda r: r.pop("citation"), "citation"),
    (lambda r: r.update(name="other"), "name"),
    (lambda r: r.update(regions=[]), "regions"),
    (lambda r: r.update(regions=["V1", "V1"]), "regions"),
    (lambda r: r["files"][0].update(sha256="abc"), r"files\[0\].sha256"),
    (lambda r: r["files"][0].pop("sha256"), r"files\[0\].sha256"),
    (lambda r: r["files"][0].update(sha1="ABC"), r"files\[0\].sha1"),
    (lambda r: r["files"][0].pop("url"), r"files\[0\].url"),
    (lambda r: r["files"][0].update(path="/etc/passwd"), r"files\[0\].path"),
    (lambda r: r["files"][0].update(path="../x.npy"), r"files\[0\].path"),
    (lambda r: r["files"][0].update(size=-3), r"files\[0\].size"),
    (lambda r: r.update(options=[1]), "options"),
])
def test_bad_fields_name_the_file_and_the_field(tmp_path, change, field):
    raw = _valid()
    change(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(DataError, match=rf"mine\.yaml: field '{field}'"):
        read_manifest(path)


def test_local_root_makes_checksums_optional(tmp_path):
    raw = _valid()
    raw["root"] = "recordings"
    del raw["files"][0]["sha256"], raw["files"][0]["url"]
    manifest = read_manifest(_write(tmp_path, raw))
    assert manifest.root == (tmp_path / "recordings").resolve()
    assert manifest.files[0].sha256 is None


def test_not_yaml_and_unknown_names_are_clear(tmp_path):
    with pytest.raises(DataError, match="mine.yaml: not valid YAML"):
        read_manifest(_write(tmp_path, "name: [unclosed"))
    with pytest.raises(DataError, match=r"unknown dataset 'cowley2023'.*did you mean 'cowley2023_v4'\?"):
        read_manifest("cowley2023")
    with pytest.raises(DataError, match="does not exist"):
        read_manifest(tmp_path / "absent.yaml")


def test_a_fetched_file_may_give_the_sha1_its_upstream_publishes(tmp_path):
    raw = _valid()
    del raw["files"][0]["sha256"]
    raw["files"][0]["sha1"] = hashlib.sha1(b"x").hexdigest()
    entry = read_manifest(_write(tmp_path, raw)).files[0]
    assert entry.sha256 is None and entry.sha1 == hashlib.sha1(b"x").hexdigest()
