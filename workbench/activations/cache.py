"""On-disk cache of per-layer feature statistics (:class:`~workbench.metrics.GramStats`).

An entry is keyed by the sha256 of a canonical JSON of everything that determines it: model
name, weights hash (the sha256 of the state dict the network holds when it is extracted,
:attr:`workbench.models.ModelWrapper.weights_id`, so weights changed in place or reloaded are
never served their former statistics), layer, stimulus-set fingerprint, preprocessing, T, time reduction (and
time step), dtype and the extraction format version. Entries are written atomically, each
with a record holding its sha256 (:func:`workbench.storage.write_verified`), so a corrupt or
partial entry is detected, removed and recomputed.

The cache lives in ``$WORKBENCH_CACHE/activations`` when that variable is set, else in
``platformdirs.user_cache_dir("workbench")/activations``. Its ``spill/`` folder holds the
column blocks of extractions in progress (or interrupted, to be resumed); they can be as
large as a layer's full activations, so point ``WORKBENCH_CACHE`` at a large disk.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

import platformdirs

from workbench.errors import DataError
from workbench.metrics.stats import GramStats
from workbench.storage import read_verified, write_verified

logger = logging.getLogger(__name__)

#: Bump when extraction changes in a way that alters the statistics of existing keys.
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$WORKBENCH_CACHE/activations`` or the platform's user cache dir + ``/activations``."""
    root = os.environ.get("WORKBENCH_CACHE")
    base = Path(root) if root else Path(platformdirs.user_cache_dir("workbench"))
    return base / "activations"


def spill_prefix(model: str) -> str:
    """The model's part of its spill folders' names (``<prefix>_<key>``), safe as a file name."""
    return re.sub(r"[^\w.-]", "_", str(model))


def entry_key(fields: dict) -> str:
    """sha256 of the canonical JSON (sorted keys) of ``fields`` and the format version."""
    text = json.dumps({**fields, "format_version": FORMAT_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class StatsCache:
    """GramStats entries (``<key>.npz``) with a JSON record beside each (``<key>.json``): its
    description and sha256.

    Parameters
    ----------
    root : path, optional
        The cache folder; default: :func:`default_cache_dir`.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def _stats_path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def _meta_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def load(self, key: str) -> GramStats | None:
        """The entry's statistics, or None when absent; a corrupt entry is removed (warning)."""
        path = self._stats_path(key)
        if not path.is_file():
            return None
        try:
            read_verified(path, expect={"key": key}, record=self._meta_path(key), what="cache entry")
            return GramStats.load(path)
        except DataError as exc:
            logger.warning("corrupt cache entry %s removed; it will be recomputed (%s)", path, exc)
            self.remove(key)
            return None

    def save(self, key: str, stats: GramStats, meta: dict) -> None:
        """Write an entry atomically: statistics first, then its record (description, sha256)."""
        record = {**meta, "key": key, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(
            timespec="seconds")}
        write_verified(self._stats_path(key), stats.write_npz, fields=record, record=self._meta_path(key))

    def remove(self, key: str) -> None:
        for path in (self._stats_path(key), self._meta_path(key)):
            path.unlink(missing_ok=True)

    def entries(self) -> list[dict]:
        """One dict per entry: key, model, layer, time_step, n_stimuli, size (bytes), created."""
        if not self.root.is_dir():
            return []
        rows = []
        for path in sorted(self.root.glob("*.npz")):
            key = path.stem
            try:
                meta = json.loads(self._meta_path(key).read_text())
            except (OSError, ValueError):
                meta = {}
            size = path.stat().st_size
            created = meta.get("created") or _dt.datetime.fromtimestamp(
                path.stat().st_mtime, _dt.timezone.utc).isoformat(timespec="seconds")
            rows.append({"key": key, "model": meta.get("model", "?"), "layer": meta.get("layer", "?"),
                         "time_step": meta.get("time_step"), "n_stimuli": meta.get("n_stimuli"),
                         "size": size, "created": created})
        return rows

    def clear(self, model: str | None = None) -> int:
        """Remove every entry (or those of one model); return how many were removed."""
        removed = 0
        for row in self.entries():
            if model is None or row["model"] == model:
                self.remove(row["key"])
                removed += 1
        if model is None and self.root.is_dir():
            for orphan in self.root.glob("*.json"):
                orphan.unlink(missing_ok=True)
        self.clear_spills(model)
        return removed

    def clear_spills(self, model: str | None = None) -> int:
        """Remove the spill folders of interrupted extractions (``<root>/spill/<model>_*``).

        A folder that a running extraction holds (its lock) is left alone. Returns how many
        folders were removed.
        """
        spill = self.root / "spill"
        if not spill.is_dir():
            return 0
        removed = 0
        for folder in sorted(spill.iterdir()):
            if not folder.is_dir() or (model is not None and not _spill_of(folder.name, model)):
                continue
            if _in_use(folder):
                logger.info("spill folder %s is in use by a running extraction; kept", folder)
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
        return removed


def _spill_of(name: str, model: str) -> bool:
    """Whether a spill folder name is ``<prefix>_<16 hex>`` (resumable) or ``<prefix>_<8 chars>``
    (``tempfile.mkdtemp``) for this model."""
    prefix = spill_prefix(model) + "_"
    return name.startswith(prefix) and len(name) - len(prefix) in (8, 16)


def _in_use(folder: Path) -> bool:
    """Whether another process holds the folder's lock (see workbench.activations.streaming)."""
    try:
        import fcntl
    except ImportError:
        return False
    lock = folder / ".lock"
    if not lock.is_file():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False
