"""Dataset manifests: one YAML file per dataset, parsed and checked into a :class:`Manifest`.

A manifest names the dataset, its species and regions, the files it needs (path, upstream
URL, sha256, size), its license and citation, and the loader that turns the files into a
:class:`~workbench.data.dataset.NeuralDataset`. See ``data_manifests/README.md``.

Manifests are looked up, in order, in the folders listed in ``$WORKBENCH_MANIFESTS``
(separated by ``os.pathsep``) and in the repository's ``data_manifests/`` folder. A path to a
``.yaml`` file can be used wherever a dataset name is expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from workbench.errors import DataError
from workbench.validation import did_you_mean

BUILTIN_MANIFESTS = Path(__file__).resolve().parents[2] / "data_manifests"
MANIFESTS_ENV = "WORKBENCH_MANIFESTS"

#: The checksums a file entry may give, with their length in hex digits.
DIGEST_LENGTHS = {"sha256": 64, "sha1": 40}
_REQUIRED = ("name", "description", "species", "regions", "stimuli", "files", "license",
             "citation", "loader")


@dataclass(frozen=True)
class FileEntry:
    """One file of a dataset.

    Attributes
    ----------
    path : str
        Path relative to the data root (the cache, a mirror, or the manifest's ``root``),
        e.g. ``"kriegeskorte92/92_brainRDMs.mat"``.
    url : str or None
        Upstream URL; None for files that exist only locally or that the user provides.
    sha256 : str or None
        Hex sha256 of the file; a fetched file (no local ``root``, not ``user_provided``)
        needs it or ``sha1`` (checked whenever given).
    size : int or None
        Size in bytes, checked before hashing when given.
    sha1 : str or None
        Hex sha1 of the file, for upstreams that publish only sha1 (Brain-Score's data
        registry); checked whenever given.
    """

    path: str
    url: str | None
    sha256: str | None
    size: int | None
    sha1: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A parsed, checked dataset manifest (see the module docstring for the fields)."""

    name: str
    description: str
    species: str
    regions: tuple[str, ...]
    stimuli: dict
    files: tuple[FileEntry, ...]
    license: str
    citation: str
    loader: str
    options: dict = field(default_factory=dict)
    root: Path | None = None
    user_provided: bool = False
    source: Path | None = None

    def file(self, suffix: str) -> FileEntry:
        """Return the single file entry whose path ends with ``suffix``."""
        hits = [f for f in self.files if f.path.endswith(suffix)]
        if len(hits) != 1:
            raise DataError(
                f"manifest {self.source}: expected exactly one file ending in {suffix!r} in "
                f"'files', found {len(hits)} ({[f.path for f in self.files]})"
            )
        return hits[0]


def manifest_dirs() -> list[Path]:
    """Folders searched for ``<name>.yaml``, highest priority first."""
    extra = [Path(p) for p in os.environ.get(MANIFESTS_ENV, "").split(os.pathsep) if p]
    return [*extra, BUILTIN_MANIFESTS]


def available_manifests() -> dict[str, Path]:
    """Map each dataset name to its manifest file (earlier folders win)."""
    found: dict[str, Path] = {}
    for folder in reversed(manifest_dirs()):
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.yaml"))})
    return dict(sorted(found.items()))


def find_manifest(name: str | os.PathLike) -> Path:
    """Return the manifest file for a dataset name or a path to a ``.yaml`` file."""
    text = str(name)
    if text.endswith((".yaml", ".yml")):
        path = Path(text)
        if not path.is_file():
            raise DataError(f"manifest file {path} does not exist")
        return path
    known = available_manifests()
    if text not in known:
        raise DataError(
            f"unknown dataset {text!r}: no {text}.yaml in {[str(d) for d in manifest_dirs()]}; "
            f"known datasets are {sorted(known)}{did_you_mean(text, known)}"
        )
    return known[text]


def _file_entries(raw_files, pinned: bool, fail: Callable[[str, str], None]) -> list[FileEntry]:
    """Check a manifest's ``files`` list and turn each entry into a :class:`FileEntry`.

    ``pinned`` (no local ``root``, not ``user_provided``): the files are fetched, so each
    needs a ``url`` and a checksum. ``fail(field, problem)`` raises the manifest's DataError.
    """
    if not isinstance(raw_files, list):
        fail("files", f"must be a list, found {raw_files!r}")
    files = []
    for i, entry in enumerate(raw_files):
        where = f"files[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            fail(where, f"must be a mapping with a 'path' string, found {entry!r}")
        rel = entry["path"]
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            fail(f"{where}.path", f"must be relative and stay inside the data root, found {rel!r}")
        digests = {name: entry.get(name) for name in DIGEST_LENGTHS}
        if pinned and all(d is None for d in digests.values()):
            fail(f"{where}.sha256", "is required for files that are fetched (no local 'root' "
                 "and not 'user_provided'); give 'sha1' instead where the upstream publishes "
                 "only that")
        for name, digest in digests.items():
            length = DIGEST_LENGTHS[name]
            if digest is not None and not (isinstance(digest, str)
                                           and re.fullmatch(f"[0-9a-f]{{{length}}}", digest)):
                fail(f"{where}.{name}", f"must be {length} lowercase hex digits, found {digest!r}")
        size = entry.get("size")
        if size is not None and (not isinstance(size, int) or size < 0):
            fail(f"{where}.size", f"must be a non-negative integer (bytes), found {size!r}")
        url = entry.get("url")
        if url is None and pinned:
            fail(f"{where}.url", "is required for files that are fetched (no local 'root' and "
                 "not 'user_provided')")
        files.append(FileEntry(path=rel, url=url, sha256=digests["sha256"], size=size,
                               sha1=digests["sha1"]))
    return files


def read_manifest(name: str | os.PathLike) -> Manifest:
    """Read and check a manifest, given a dataset name or a path to its YAML file.

    Raises
    ------
    DataError
        The file is missing, is not YAML, or a field is missing or of the wrong type; the
        message names the file and the field.
    """
    path = find_manifest(name)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DataError(f"manifest {path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise DataError(
            f"manifest {path}: expected a mapping of fields, found {type(raw).__name__}"
        )

    def fail(field_name: str, problem: str):
        raise DataError(f"manifest {path}: field '{field_name}' {problem}")

    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        fail(missing[0], f"is missing (required fields: {list(_REQUIRED)})")
    for key in ("name", "description", "species", "license", "citation", "loader"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            fail(key, f"must be a non-empty string, found {raw[key]!r}")
    if raw["name"] != path.stem:
        fail("name", f"is {raw['name']!r} but the file is named {path.name}; they must match")
    regions = raw["regions"]
    if not isinstance(regions, list) or not regions or not all(isinstance(r, str) for r in regions):
        fail("regions", f"must be a non-empty list of strings, found {regions!r}")
    if len(set(regions)) != len(regions):
        fail("regions", f"has duplicate names: {regions}")
    if not isinstance(raw["stimuli"], dict):
        fail("stimuli", f"must be a mapping (e.g. count, description), found {raw['stimuli']!r}")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        fail("options", f"must be a mapping, found {options!r}")
    root = raw.get("root")
    if root is not None:
        root = (path.parent / os.path.expanduser(str(root))).resolve()
    user_provided = raw.get("user_provided", False)
    if not isinstance(user_provided, bool):
        fail("user_provided", f"must be true or false, found {user_provided!r}")
    pinned = root is None and not user_provided
    files = _file_entries(raw["files"], pinned, fail)
    return Manifest(
        name=raw["name"],
        description=raw["description"].strip(),
        species=raw["species"],
        regions=tuple(regions),
        stimuli=dict(raw["stimuli"]),
        files=tuple(files),
        license=raw["license"],
        citation=raw["citation"].strip(),
        loader=raw["loader"],
        options=dict(options),
        root=root,
        user_provided=user_provided,
        source=path,
    )
