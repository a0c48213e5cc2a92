"""Fetching dataset files into the cache, verified by checksum (sha256, or sha1 where the
upstream publishes only that) and written atomically.

Files come from a local mirror (``mirror=`` or ``$WORKBENCH_DATA_MIRROR``: a folder laid out
like ``../shared/data``) or are downloaded from their upstream URL with pooch's HTTP
downloader (with a progress bar). Either way the bytes land in a temporary file beside the
target (:func:`workbench.storage.atomic_path`), are checked against the manifest's sha256 and
only then renamed into place: an interrupted or corrupt transfer never leaves a file that
could be used, and the next fetch simply starts again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import platformdirs
from tqdm.auto import tqdm

from workbench.data.manifest import FileEntry, Manifest
from workbench.errors import ChecksumError, DataError
from workbench.storage import atomic_path, sha256_file

log = logging.getLogger(__name__)

CACHE_ENV = "WORKBENCH_DATA"
MIRROR_ENV = "WORKBENCH_DATA_MIRROR"


def cache_dir() -> Path:
    """The data cache: ``$WORKBENCH_DATA`` or the per-user cache folder of ``workbench``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(platformdirs.user_cache_dir("workbench")) / "data"


def default_mirror() -> Path | None:
    """The mirror named by ``$WORKBENCH_DATA_MIRROR``, or None."""
    env = os.environ.get(MIRROR_ENV)
    return Path(env) if env else None


def _sha1_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha1").hexdigest()


def verify_file(path: Path, entry: FileEntry, *, origin: str) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the entry's size, sha256 and sha1
    (those the manifest gives).

    ``origin`` says where the bytes came from (a URL or mirror path) for the message.
    """
    if entry.size is not None and path.stat().st_size != entry.size:
        raise ChecksumError(
            f"{entry.path} (from {origin}): size {path.stat().st_size} bytes, expected "
            f"{entry.size} bytes per the manifest; the file was not used"
        )
    for name, expected, digest in (("sha256", entry.sha256, sha256_file),
                                   ("sha1", entry.sha1, _sha1_file)):
        if expected is not None:
            found = digest(path)
            if found != expected:
                raise ChecksumError(
                    f"{entry.path} (from {origin}): {name} {found}, expected {expected} per "
                    "the manifest; the file was not used"
                )


def _is_valid(path: Path, entry: FileEntry) -> bool:
    try:
        verify_file(path, entry, origin=str(path))
    except ChecksumError as exc:
        log.warning("cached file is corrupt and will be fetched again: %s", exc)
        return False
    return True


def _copy_from_mirror(entry: FileEntry, mirror: Path, target: Path) -> None:
    source = mirror / entry.path
    if not source.is_file():
        raise DataError(f"{entry.path}: not found in the mirror {mirror} (looked for {source})")
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
        verify_file(tmp, entry, origin=str(source))


#: What to do when a file cannot be downloaded (e.g. offline): use a local copy.
MIRROR_HINT = (f"to use a local copy instead, point `workbench data fetch --mirror DIR` (or "
               f"`load(..., mirror=DIR)`, or the environment variable {MIRROR_ENV}) at a folder "
               "laid out like the data root, e.g. ../shared/data")


def _download(entry: FileEntry, target: Path, progress: bool) -> None:
    import pooch

    if not entry.url:
        raise DataError(f"{entry.path}: no upstream 'url' in the manifest and no mirror given; "
                        f"{MIRROR_HINT}")
    with atomic_path(target) as tmp:
        try:
            pooch.HTTPDownloader(progressbar=progress)(entry.url, str(tmp), None)
        except Exception as exc:  # requests raises many kinds; the message names the file
            raise DataError(f"{entry.path}: download from {entry.url} failed ({exc}); "
                            f"{MIRROR_HINT}") from exc
        verify_file(tmp, entry, origin=entry.url)


def fetch(
    manifest: Manifest,
    *,
    mirror: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Make every file of ``manifest`` available locally and verified.

    Parameters
    ----------
    manifest : Manifest
        The dataset's manifest.
    mirror : path-like, optional
        A folder laid out like ``../shared/data`` to copy files from instead of downloading;
        defaults to ``$WORKBENCH_DATA_MIRROR`` when set.
    progress : bool, default: True
        Show tqdm progress bars.

    Returns
    -------
    dict of str to Path
        Each manifest path (e.g. ``"kriegeskorte92/92_brainRDMs.mat"``) mapped to the verified
        local file. Manifests with a local ``root`` are verified in place, not copied.

    Raises
    ------
    ChecksumError
        A fetched file's size or sha256 differs from the manifest (the bad file is deleted).
    DataError
        A file is missing from the mirror or the local root, or its download failed.
    """
    if manifest.root is not None:
        paths = {}
        for entry in manifest.files:
            local = manifest.root / entry.path
            if not local.is_file():
                raise DataError(f"manifest {manifest.source}: file {local} does not exist")
            verify_file(local, entry, origin=str(local))
            paths[entry.path] = local
        return paths

    mirror = Path(mirror) if mirror is not None else default_mirror()
    root = cache_dir()
    paths = {}
    for entry in tqdm(manifest.files, desc=f"fetch {manifest.name}", unit="file",
                      disable=not progress):
        target = root / entry.path
        if not (target.is_file() and _is_valid(target, entry)):
            if manifest.user_provided and not (mirror is not None
                                               and (mirror / entry.path).is_file()):
                source = f" (obtain it from {entry.url})" if entry.url else ""
                raise DataError(
                    f"{entry.path}: dataset {manifest.name} is provided by the user, not "
                    f"downloaded{source}; place the file at {target} or under a mirror folder. "
                    f"See {manifest.source}"
                )
            if mirror is not None:
                log.info("copying %s from mirror %s", entry.path, mirror)
                _copy_from_mirror(entry, mirror, target)
            else:
                log.info("downloading %s from %s", entry.path, entry.url)
                _download(entry, target, progress)
        paths[entry.path] = target
    return paths
