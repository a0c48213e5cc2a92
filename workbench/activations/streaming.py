"""Stream activations into per-layer Gram statistics, all layers in one pass.

Batches arrive over stimuli, but the Gram matrix ``X @ X.T`` pairs every stimulus with every
other, so it cannot be finished batch by batch without the earlier rows. Each layer's
flattened float32 batch is therefore appended to disk, split into blocks of columns sized so
that one block of all stimuli fits in ``block_bytes``; after the pass every block is read back
whole and fed to :meth:`GramStats.update`, then deleted. Peak memory is two batches of
activations + two feature blocks + the n x n Gram matrices. Layers smaller than
``memory_bytes`` stay in memory.

Overlap. The spill of batch k is written (and checkpointed) by a background thread while the
network computes batch k + 1, and the next feature block is read back on a helper thread
while the Gram product of the current one runs; file I/O, numpy copies, BLAS and torch all
release the GIL. A spiking network's spill is written as one-byte codes while its values are
spikes (per time step) or spike counts / T (the average over T), a quarter of the bytes;
values of another kind turn a file back into float32. The blocks read back are bit for bit
the values appended, so the statistics do not depend on any of this.

Per-step statistics. ``extract_stats(per_step=True)`` keeps both the average over T and every
time step from the same forward pass (one spill per layer and step), so a time-resolved
analysis costs no second pass.

Device statistics. With ``device="cuda"`` (or ``device_stats=True`` on any device), a
layer's activations stay on the device and its Gram matrix is extended there with every batch
(:mod:`workbench.activations.device_stats`): only the n x n statistics come back, nothing is
spilled, and the statistics equal the spilled path's up to float32 rounding. Layers that do not
fit the device budget (``device_bytes``, default half the free memory) take the spill path.
Such a pass is not checkpointed: interrupted, it starts again from its first batch.

Resuming. With a cache, the spill of one extraction lives in a folder named after everything
that determines it (``<cache>/spill/<model>_<key>``), and after every batch a checkpoint
``progress.json`` (written atomically) records how many stimuli every spill file holds. A run
that was killed (``kill -9``, out of memory, Ctrl-C) and started again with the same
arguments truncates each file to the checkpoint (dropping a half-written batch) and continues
from the next batch: only the batches after the last checkpoint are computed again, and the
statistics are those of an uninterrupted run. Layers kept in memory also append their rows
to a file, so they resume too. The folder is removed once every layer's statistics are in
the cache; ``workbench cache clear`` removes abandoned ones. A folder in use by another
process (an exclusive lock) is not shared: that run spills to a fresh folder instead. The
checkpoint trails the network by at most the one batch being written in the background.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from workbench.activations.cache import StatsCache, entry_key, spill_prefix
from workbench.activations.device_stats import DeviceGram, device_budget, device_layers
from workbench.activations.extractor import ByLayer, feature_shapes, forward_batches, resolve_settings
from workbench.activations.stimuli import check_stimuli, stimulus_fingerprint, stimulus_ids
from workbench.activations.store import LayerWriter, activation_path
from workbench.errors import DataError, ValidationError
from workbench.metrics.stats import GramStats
from workbench.storage import atomic_path

logger = logging.getLogger(__name__)

DEFAULT_BLOCK_BYTES = 256 * 2**20
DEFAULT_MEMORY_BYTES = 32 * 2**20
_ITEM = np.dtype(np.float32).itemsize
#: Checkpoint of a resumable spill folder: how many stimuli every spill file holds.
PROGRESS_FILE = "progress.json"
_LOCK_FILE = ".lock"
#: Bump when the spill layout changes, so that old folders are never resumed.
SPILL_FORMAT = 2


class FeatureSpill:
    """One layer's (n_stimuli, n_features) float32 matrix, written row batches at a time.

    Parameters
    ----------
    n_stimuli, n_features : int
    directory : path
        Where the column-block files go (ignored for a matrix kept in memory).
    memory_bytes : int
        Matrices up to this size stay in memory.
    block_bytes : int
        Size of one column block of all stimuli (the unit read back for the Gram update).
    name : str, default: "features"
        Used in error messages (e.g. ``"sew_resnet18 layer1.0"``).
    stem : str, optional
        A fixed file-name stem inside ``directory`` (default: a fresh unique one). With a
        stem, the spill can be continued by another process (:meth:`resume`): a matrix kept
        in memory then also appends its rows to ``<stem>_rows.f32``.
    codes : int, optional
        Try to write the column blocks as one byte per value: uint8 codes ``q`` with
        ``x == float32(q) / codes`` exactly (spikes with ``codes=1``; spike counts averaged
        over T steps with ``codes=T``), a quarter of the bytes to write and read back. Tried
        on the first batch; a later batch that has other values turns the files back into
        float32 (:attr:`scale` says which holds). The statistics are the same either way:
        the blocks read back are bit for bit the values appended.
    """

    def __init__(self, n_stimuli: int, n_features: int, directory: Path, *,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, block_bytes: int = DEFAULT_BLOCK_BYTES,
                 name: str = "features", stem: str | None = None, codes: int | None = None):
        self.n_stimuli, self.n_features = int(n_stimuli), int(n_features)
        self.name = name
        self.stem = stem
        self.rows = 0
        #: the files hold uint8 codes of ``x * scale`` (None: float32 values)
        self.scale: int | None = None
        self._codes = None if codes is None else int(codes)
        width = max(1, int(block_bytes) // (self.n_stimuli * _ITEM))
        self.edges = list(range(0, self.n_features, width)) + [self.n_features]
        self._array = None
        self._base: str | None = None  # the column-block files are <base>_<i>.f32 or .u8
        self._journal: Path | None = None
        if stem is None:
            base = None
        else:
            directory.mkdir(parents=True, exist_ok=True)
            base = str(directory / stem)
        if self.n_stimuli * self.n_features * _ITEM <= memory_bytes:
            self._array = np.empty((self.n_stimuli, self.n_features), np.float32)
            if base is not None:
                self._journal = Path(f"{base}_rows.f32")
        else:
            if base is None:
                directory.mkdir(parents=True, exist_ok=True)
                fd, base = tempfile.mkstemp(prefix="spill_", dir=directory)
                os.close(fd)
                os.unlink(base)
            self._base = base

    @property
    def _files(self) -> list[Path]:
        if self.in_memory:
            return []
        suffix = "f32" if self.scale is None else "u8"
        return [Path(f"{self._base}_{i}.{suffix}") for i in range(len(self.edges) - 1)]

    @property
    def _itemsize(self) -> int:
        return _ITEM if self.scale is None else 1

    @property
    def in_memory(self) -> bool:
        return self._array is not None

    def _encode(self, batch: np.ndarray, scale: int) -> np.ndarray | None:
        """uint8 codes that decode to exactly ``batch``, or None when it has other values."""
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = batch * np.float32(scale) if scale != 1 else batch
            codes = scaled.astype(np.uint8)
        return codes if np.array_equal(_decode(codes, scale), batch) else None

    def _widen(self) -> None:
        """Rewrite the uint8 files as float32 (a batch with other values arrived)."""
        coded, scale = self._files, self.scale
        self.scale = None
        if self.rows == 0:  # nothing written yet (the first batch has other values)
            return
        for source, target in zip(coded, self._files):
            with atomic_path(target) as tmp:
                _decode(np.fromfile(source, dtype=np.uint8), scale).tofile(tmp)
            source.unlink()
        logger.debug("%s: values other than %d-step codes; spill widened to float32", self.name, scale)

    def append(self, batch: np.ndarray) -> None:
        """Add the next ``b`` stimuli's rows, a (b, n_features) float32 array."""
        b = batch.shape[0]
        if batch.shape[1:] != (self.n_features,) or self.rows + b > self.n_stimuli:
            raise ValidationError(
                f"batch of shape {batch.shape} does not fit rows {self.rows}.. of a "
                f"({self.n_stimuli}, {self.n_features}) matrix"
            )
        if self.in_memory:
            self._array[self.rows:self.rows + b] = batch
            if self._journal is not None:
                with open(self._journal, "ab") as fh:
                    np.ascontiguousarray(batch, dtype=np.float32).tofile(fh)
        else:
            data = np.asarray(batch, dtype=np.float32)
            if self.rows == 0 and self._codes is not None:
                self.scale = self._codes  # try codes from the first batch on
            if self.scale is not None:
                codes = self._encode(data, self.scale)
                if codes is None:
                    self._widen()
                else:
                    data = codes
            for path, lo, hi in zip(self._files, self.edges[:-1], self.edges[1:]):
                with open(path, "ab") as fh:
                    np.ascontiguousarray(data[:, lo:hi]).tofile(fh)
        self.rows += b

    def blocks(self) -> Iterator[np.ndarray]:
        """Yield the complete matrix as (n_stimuli, block_width) column blocks, in order.

        A spilled matrix reads its next block from disk on a helper thread while the caller
        works on the current one (so two blocks are in memory at a time).
        """
        if self.rows != self.n_stimuli:
            raise ValidationError(f"only {self.rows} of {self.n_stimuli} rows were written")
        if self.in_memory:
            for lo, hi in zip(self.edges[:-1], self.edges[1:]):
                yield self._array[:, lo:hi]
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="workbench-read") as pool:
            pending = pool.submit(self._read_block, 0)
            for i in range(len(self._files)):
                block = pending.result()
                if i + 1 < len(self._files):
                    pending = pool.submit(self._read_block, i + 1)
                yield block
                del block

    def _read_block(self, i: int) -> np.ndarray:
        """Column block ``i`` from its spill file (the read releases the GIL)."""
        path, width = self._files[i], self.edges[i + 1] - self.edges[i]
        block = np.empty((self.n_stimuli, width), np.float32 if self.scale is None else np.uint8)
        view = memoryview(block).cast("B")
        with open(path, "rb", buffering=0) as fh:
            if os.fstat(fh.fileno()).st_size != block.nbytes:
                raise ValidationError(f"spill file {path} is incomplete")
            done = 0
            while done < block.nbytes:
                got = fh.readinto(view[done:])
                if not got:
                    raise ValidationError(f"spill file {path} is incomplete")
                done += got
        return block if self.scale is None else _decode(block, self.scale)

    def gram_stats(self) -> GramStats:
        """The matrix's GramStats, computed block by block (float32 products)."""
        stats = GramStats(self.n_stimuli, dtype="float32")
        for block in self.blocks():
            stats.update(block, name=self.name)
        return stats

    def _file_widths(self) -> list[tuple[Path, int]]:
        if self.in_memory:
            return [] if self._journal is None else [(self._journal, self.n_features)]
        return [(path, hi - lo) for path, lo, hi in zip(self._files, self.edges[:-1], self.edges[1:])]

    def resume(self, rows: int, scale: int | None = None) -> None:
        """Continue a spill whose files (same ``stem``) hold at least ``rows`` complete rows.

        Each file is truncated to exactly ``rows`` rows (a batch half-written when the earlier
        process stopped is dropped) and the next :meth:`append` adds row ``rows``. ``scale``:
        the files' :attr:`scale` as checkpointed with ``rows``.

        Raises
        ------
        DataError
            A file is missing or holds fewer than ``rows`` rows, or the spill has no stem.
        """
        rows = int(rows)
        if not 0 <= rows <= self.n_stimuli:
            raise ValidationError(f"rows={rows} is out of range for {self.n_stimuli} stimuli")
        if self.in_memory and self._journal is None and rows:
            raise DataError(f"{self.name}: an in-memory spill without a stem cannot be resumed")
        if not self.in_memory and rows:
            self.scale = None if scale is None else int(scale)
        for path, width in self._file_widths():
            item = _ITEM if path == self._journal else self._itemsize
            size = path.stat().st_size if path.is_file() else 0
            if size < rows * width * item:
                raise DataError(
                    f"spill file {path} holds {size // (width * item)} complete row(s) of "
                    f"{self.name}; the checkpoint says {rows}"
                )
        for path, width in self._file_widths():
            if path.is_file():
                os.truncate(path, rows * width * (_ITEM if path == self._journal else self._itemsize))
        if self.in_memory and rows:
            self._array[:rows] = np.fromfile(self._journal, dtype=np.float32,
                                             count=rows * self.n_features).reshape(rows, -1)
        self.rows = rows

    def discard(self) -> None:
        self._array = None
        for path in self._files:
            path.unlink(missing_ok=True)
        if self._journal is not None:
            self._journal.unlink(missing_ok=True)


def _decode(codes: np.ndarray, scale: int) -> np.ndarray:
    """float32 values of uint8 codes: ``float32(q) / scale``."""
    values = codes.astype(np.float32)
    if scale != 1:
        values /= np.float32(scale)
    return values


def _resolve_cache(cache) -> StatsCache | None:
    if cache is True:
        return StatsCache()
    if cache is False or cache is None:
        return None
    if isinstance(cache, StatsCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return StatsCache(cache)
    raise ValidationError(f"cache={cache!r} is not valid; expected True, False or a folder path")


def extract_stats(model, stimuli, layers=None, *, batch_size: int = 32,
                  time_steps: int | None = None, time_reduce: str | None = "mean", device="cpu",
                  cache=True, save_activations=None, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                  block_bytes: int = DEFAULT_BLOCK_BYTES, resume: bool = True,
                  per_step: bool = False, device_stats: bool | None = None,
                  device_bytes: int | None = None):
    """Per-layer :class:`~workbench.metrics.GramStats` of the flattened activations, streamed.

    All requested layers are computed in a single forward pass over the stimuli, without
    holding any layer's full stimulus x feature matrix in memory, and cached: a rerun with the
    same model, weights, layers, stimuli, preprocessing and T does no forward pass, and a rerun
    after an interrupted pass continues from its last completed batch (see the module notes).

    Parameters
    ----------
    model, stimuli, layers, batch_size, time_steps, time_reduce, device
        As for :func:`workbench.activations.extract`.
    cache : bool or path, default: True
        True: the default cache folder (:func:`workbench.activations.cache.default_cache_dir`);
        a path: that folder; False: no caching. Spill files go to ``<cache>/spill`` (a
        temporary folder when False).
    save_activations : path, optional
        A folder to write each layer's full activations to (chunked netCDF, one file per
        layer, see :mod:`workbench.activations.store`) during the same pass.
    memory_bytes : int, default: 32 MiB
        Layers whose (n_stimuli x n_features) float32 matrix is at most this stay in memory.
    block_bytes : int, default: 256 MiB
        Size of the column blocks spilled to disk and read back one at a time.
    resume : bool, default: True
        Checkpoint the spill after every batch and continue an interrupted pass with the same
        arguments (model, weights, layers, stimuli, preprocessing, T, batch size, device,
        ``memory_bytes``, ``block_bytes``) from its last completed batch. Needs ``cache``;
        not done with ``save_activations`` (those files are written in one go).
    per_step : bool, default: False
        With ``time_reduce="mean"``: also compute every time step's statistics, in the same
        forward pass, and return both. They are cached under the keys of the separate calls
        (``time_reduce="mean"`` and ``time_reduce=None``), so either call afterwards is a
        cache hit; layers whose statistics are all cached are not run again. For a
        non-spiking model (T = 1) the one step's statistics equal the averaged ones.
    device_stats : bool, optional
        Accumulate the Gram statistics on ``device`` with torch during the pass (module
        notes); default: True on a CUDA device, False elsewhere. ``True`` on the CPU runs the
        same torch path there. Not resumable (``resume`` is ignored then).
    device_bytes : int, optional
        Device memory the device statistics may take (default: half the free memory of a
        CUDA device; no limit elsewhere); layers beyond it are spilled as without them.

    Returns
    -------
    dict of str to GramStats, or dict of str to list of GramStats, or a tuple of both
        With ``time_reduce="mean"``: one GramStats per layer. With ``time_reduce=None``: per
        layer, a list of ``time_steps`` GramStats, one per time step. With ``per_step``:
        ``(averaged, steps)``, the first as for ``"mean"``, the second as for None.
    """
    settings = resolve_settings(model, layers, batch_size, time_steps, time_reduce, device)
    if per_step and settings.time_reduce != "mean":
        raise ValidationError("per_step=True needs time_reduce='mean' (time_reduce=None alone "
                              "already gives every time step)")
    n = check_stimuli(stimuli)
    store = _resolve_cache(cache)
    # None: the average over time steps; t: time step t
    steps = ([None] if settings.time_reduce == "mean" else []) + (
        list(range(settings.time_steps)) if per_step or settings.time_reduce is None else [])
    results, keys, metas = _cached(model, stimuli, n, settings, steps, store)
    todo = [layer for layer in settings.layers
            if save_activations is not None or any((layer, s) not in results for s in steps)]
    if not todo:
        return _arrange(results, settings, steps)
    logger.info("%s: extracting %d layer(s) (%d cached)", model.name, len(todo),
                len(settings.layers) - len(todo))
    on_device = settings.device.type == "cuda" if device_stats is None else bool(device_stats)
    _run_pass(model, stimuli, settings, todo, steps, store, keys, metas, results, save_activations=save_activations,
              memory_bytes=memory_bytes, block_bytes=block_bytes, resume=resume and not on_device,
              device_limit=device_budget(settings.device, device_bytes) if on_device else False)
    return _arrange(results, settings, steps)


def _run_pass(model, stimuli, settings, todo: list, steps: list, store: StatsCache | None, keys: dict, metas: dict,
              results: dict, *, save_activations, memory_bytes: int, block_bytes: int, resume: bool,
              device_limit: int | None | bool = False) -> None:
    """One forward pass over ``todo``'s layers: their statistics into ``results`` (and the cache),
    through a spill folder that is kept, on an interruption, to resume from (see ``resume``).
    ``device_limit``: False for host statistics, else the device bytes of
    :func:`_stream`'s device statistics (None: no limit)."""
    spill_root = Path(tempfile.gettempdir()) if store is None else store.root / "spill"
    spill_root.mkdir(parents=True, exist_ok=True)

    def keep(key, stats):
        results[key] = stats
        if store is not None:
            store.save(keys[key], stats, metas[key])

    with contextlib.ExitStack() as stack:
        run_key = None
        if resume and store is not None and save_activations is None:
            run_key = entry_key({
                "spill_format": SPILL_FORMAT, "entries": [keys[layer, s] for layer in settings.layers
                                                          for s in steps],
                "batch_size": settings.batch_size, "device": settings.device.type,
                "memory_bytes": int(memory_bytes), "block_bytes": int(block_bytes)})
        spill_dir, run_key = _spill_folder(model, spill_root, run_key, stack)
        try:
            _stream(model, stimuli, settings, todo, steps, spill_dir, save_activations,
                    memory_bytes, block_bytes, run_key=run_key, results=results, keep=keep,
                    device_limit=device_limit)
        except BaseException as exc:
            # an error would recur: drop the spill; an interruption (Ctrl-C) keeps it to resume
            if isinstance(exc, Exception) or run_key is None:
                shutil.rmtree(spill_dir, ignore_errors=True)
            raise
        shutil.rmtree(spill_dir, ignore_errors=True)


def _cached(model, stimuli, n: int, settings, steps: list, store: StatsCache | None) -> tuple[dict, dict, dict]:
    """The statistics the cache holds, by ``(layer, step)``, with every entry's cache key and
    metadata (all empty without a cache)."""
    results: dict[tuple[str, int | None], GramStats] = {}
    keys: dict[tuple[str, int | None], str] = {}
    metas: dict[tuple[str, int | None], dict] = {}
    if store is None:
        return results, keys, metas
    fingerprint = stimulus_fingerprint(stimuli)
    for layer in settings.layers:
        for step in steps:
            fields = {
                "model": model.name, "weights_id": model.weights_id, "layer": layer,
                "stimuli": fingerprint, "n_stimuli": n,
                "preprocessing": model.preprocessing.to_dict(),
                "time_steps": settings.time_steps, "time_reduce": "mean" if step is None else None,
                "time_step": step, "dtype": "float32",
            }
            keys[layer, step] = entry_key(fields)
            metas[layer, step] = {k: fields[k] for k in ("model", "layer", "time_step", "n_stimuli", "stimuli")}
            metas[layer, step]["weights"] = model.weights
            hit = store.load(keys[layer, step])
            if hit is not None:
                results[layer, step] = hit
    logger.info("%s: %d of %d statistics found in the cache %s", model.name, len(results), len(keys), store.root)
    return results, keys, metas


def _spill_folder(model, spill_root: Path, run_key: str | None, stack: contextlib.ExitStack):
    """The folder a pass spills to, and the key it resumes under (None: it cannot be resumed).

    With a ``run_key``: the folder named after it, locked for this process; a fresh temporary
    folder when another process holds that lock, or without a key.
    """
    if run_key is not None:
        spill_dir = spill_root / f"{spill_prefix(model.name)}_{run_key[:16]}"
        if _lock(spill_dir, stack):
            return spill_dir, run_key
        logger.info("%s: spill folder %s is in use by another process; this run "
                    "spills to a fresh folder and cannot be resumed", model.name, spill_dir)
    return Path(tempfile.mkdtemp(prefix=f"{spill_prefix(model.name)}_", dir=spill_root)), None


def _arrange(results: dict, settings, steps: list):
    per_step = [s for s in steps if s is not None]
    by_step = ByLayer({layer: [results[layer, s] for s in per_step] for layer in settings.layers})
    if settings.time_reduce is None:
        return by_step
    averaged = ByLayer({layer: results[layer, None] for layer in settings.layers})
    return (averaged, by_step) if per_step else averaged


def _lock(folder: Path, stack: contextlib.ExitStack) -> bool:
    """Take an exclusive lock on ``folder`` for the life of ``stack``; False if another holds it."""
    try:
        import fcntl
    except ImportError:  # no advisory locks (Windows): resume without one
        folder.mkdir(parents=True, exist_ok=True)
        return True
    folder.mkdir(parents=True, exist_ok=True)
    handle = stack.enter_context(open(folder / _LOCK_FILE, "a"))
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    stack.callback(fcntl.flock, handle.fileno(), fcntl.LOCK_UN)
    return True


def _spill_label(model, layer: str, step) -> str:
    return f"{model.name} {layer}" + ("" if step is None else f" t={step}")


def _read_progress(spill_dir: Path, run_key: str) -> dict | None:
    """The folder's checkpoint, or None when there is none or it belongs to another run."""
    path = spill_dir / PROGRESS_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("run_key") != run_key:
        return None
    return state


def _write_progress(spill_dir: Path, state: dict) -> None:
    with atomic_path(spill_dir / PROGRESS_FILE) as tmp:
        tmp.write_text(json.dumps(state))


def _clear_folder(folder: Path) -> None:
    for path in folder.iterdir():
        if path.name != _LOCK_FILE:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def _new_spills(model, layers, steps, shapes: dict, n: int, spill_dir: Path, memory_bytes,
                block_bytes, persistent: bool, time_steps: int = 1) -> dict:
    """One FeatureSpill per (layer, step); a spiking model's spill tries one-byte codes
    (spikes per step; spike counts / T for the average over ``time_steps``)."""
    spills = {}
    for i, layer in enumerate(layers):
        d = int(np.prod(shapes[layer]))
        for j, step in enumerate(steps):
            codes = None if not model.is_spiking else (time_steps if step is None else 1)
            spills[layer, step] = FeatureSpill(
                n, d, spill_dir, memory_bytes=memory_bytes, block_bytes=block_bytes,
                name=_spill_label(model, layer, step),
                stem=f"layer{i:03d}_step{j:03d}" if persistent else None, codes=codes)
    return spills


def _resume_spills(model, stimuli, settings, layers, steps, spill_dir, memory_bytes, block_bytes,
                   run_key: str, results: dict):
    """Layers, spills, feature shapes and the first stimulus to compute, from the checkpoint.

    Returns None (and empties the folder) when nothing can be resumed.
    """
    state = _read_progress(spill_dir, run_key)
    n = check_stimuli(stimuli)
    if state is None:
        _clear_folder(spill_dir)
        return None
    try:
        rows = int(state["rows"])
        at_batch_edge = rows % settings.batch_size == 0 or rows == n
        # the checkpoint's layers may be more than those left to do (some reached the cache)
        if not set(layers) <= set(state["layers"]) or state["n_stimuli"] != n or not at_batch_edge:
            raise DataError(f"checkpoint {spill_dir / PROGRESS_FILE} does not match this run")
        layers = [str(layer) for layer in state["layers"]]
        shapes = {layer: tuple(shape) for layer, shape in state["shapes"].items()}
        spills = _new_spills(model, layers, steps, shapes, n, spill_dir, memory_bytes, block_bytes,
                             persistent=True, time_steps=settings.time_steps)
        scales = state.get("scales", {})
        for key, spill in spills.items():
            if key not in results:  # a layer already in the cache needs no rows
                spill.resume(rows, scales.get(spill.stem))
    except (DataError, KeyError, TypeError, ValueError) as exc:
        logger.warning("%s: cannot resume from %s (%s); extracting from the first batch",
                       model.name, spill_dir, exc)
        _clear_folder(spill_dir)
        return None
    logger.info("%s: resuming extraction at stimulus %d of %d (%d of %d batches done) from %s",
                model.name, rows, n, -(-rows // settings.batch_size), -(-n // settings.batch_size),
                spill_dir)
    return layers, spills, shapes, rows


def _on_device(model, spills: dict, shapes: dict, n: int, device, budget: int | None) -> dict:
    """``spills`` with those (layer, step) entries that fit ``budget`` replaced by a
    :class:`DeviceGram` on ``device``."""
    sizes = {key: int(np.prod(shapes[key[0]])) for key in spills}
    chosen = device_layers(sizes, n, budget)
    logger.info("%s: Gram statistics of %d of %d layer(s) accumulate on %s", model.name,
                len(chosen), len(spills), device)
    return {key: DeviceGram(n, sizes[key], device, name=spill.name) if key in chosen else spill
            for key, spill in spills.items()}


def _activation_writers(model, stimuli, layers, shapes: dict, folder, time_steps) -> dict:
    """One :class:`LayerWriter` per layer, writing its full activations into ``folder``."""
    return {layer: LayerWriter(activation_path(folder, model.name, layer), layer=layer,
                               model=model.name, stimulus_ids=stimulus_ids(stimuli),
                               feature_shape=shapes[layer], time_steps=time_steps,
                               channels_last=layer in model.channels_last, weights=model.weights)
            for layer in layers}


def _host(values) -> np.ndarray:
    """A batch as a host numpy array (torch tensors are copied off their device)."""
    return values if isinstance(values, np.ndarray) else values.cpu().numpy()


def _stream(model, stimuli, settings, layers, steps, spill_dir, save_activations,
            memory_bytes, block_bytes, *, run_key: str | None, results: dict, keep,
            device_limit: int | None | bool = False) -> None:
    """One forward pass over ``layers``; ``keep((layer, step), GramStats)`` for each new result.

    With ``run_key``, the spill is checkpointed in ``spill_dir`` after every batch and an
    earlier checkpoint of the same run is continued. Unless ``device_limit`` is False, the
    layers that fit it (None: all) accumulate on the device (:class:`DeviceGram`).
    """
    n = check_stimuli(stimuli)
    spills: dict[tuple[str, int | None], FeatureSpill] = {}
    shapes: dict[str, tuple] = {}
    first = 0
    if run_key is not None:
        resumed = _resume_spills(model, stimuli, settings, layers, steps, spill_dir, memory_bytes,
                                 block_bytes, run_key, results)
        if resumed is not None:
            layers, spills, shapes, first = resumed
    pass_settings = dataclasses.replace(settings, layers=tuple(layers))
    live = [key for key in spills if key not in results]
    writers: dict[str, LayerWriter] = {}
    # the averaged statistics and every step's, from the same pass (extract_stats(per_step=True))
    both = None in steps and len(steps) > 1

    def store(start: int, outputs: dict, step_outputs: dict) -> None:
        """Append one batch to every spill and activation file, then checkpoint it."""
        for layer in layers:
            out = outputs[layer]
            b = out.shape[0]
            flat = out.reshape(b, -1) if None in steps else out.reshape(b, out.shape[1], -1)
            per_t = step_outputs[layer].reshape(b, -1, flat.shape[1]) if both else flat
            for step in steps:
                if (layer, step) in live:
                    rows, target = (flat if step is None else per_t[:, step]), spills[layer, step]
                    target.append(rows if isinstance(target, DeviceGram) else _host(rows))
            if layer in writers:
                writers[layer].append(_host(flat))
        if run_key is not None:
            _write_progress(spill_dir, {
                "run_key": run_key, "rows": start + b, "n_stimuli": n, "layers": list(layers),
                "shapes": {layer: list(shape) for layer, shape in shapes.items()},
                "scales": {spill.stem: spill.scale for spill in spills.values() if spill.scale is not None}})

    ok = False
    # the spill is written (and checkpointed) by a background thread while the network runs
    # the next batch: file writes and copies release the GIL, as does torch
    writer = _Background(store)
    batches = (forward_batches(model, stimuli, pass_settings, first, per_step=both,
                               on_device=device_limit is not False) if first < n else iter(()))
    try:
        for start, outputs, *step_outputs in batches:
            if not spills:
                shapes = feature_shapes(outputs, pass_settings)
                spills = _new_spills(model, layers, steps, shapes, n, spill_dir, memory_bytes,
                                     block_bytes, persistent=run_key is not None,
                                     time_steps=settings.time_steps)
                if device_limit is not False:
                    spills = _on_device(model, spills, shapes, n, settings.device, device_limit)
                live = list(spills)
                if save_activations is not None:
                    writers = _activation_writers(model, stimuli, layers, shapes, save_activations,
                                                  None if None in steps else settings.time_steps)
            elif feature_shapes(outputs, pass_settings) != shapes:
                raise ValidationError(
                    f"{model.name}: layer output shapes {feature_shapes(outputs, pass_settings)} "
                    f"differ from the earlier batches' {shapes}")
            writer.put(start, outputs, step_outputs[0] if both else {})
            del outputs, step_outputs
        writer.close()
        ok = True
    finally:
        if hasattr(batches, "close"):  # leave inference mode and remove the hooks now, not at GC
            batches.close()
        writer.close(raise_error=False)  # an interruption: the batches already queued are kept
        for activation_writer in writers.values():
            activation_writer.close(success=ok)
    for key in tqdm(live, desc=f"{model.name}: layers", unit="layer", disable=None):
        keep(key, spills[key].gram_stats())
        spills[key].discard()


class _Background:
    """Run ``work(*item)`` for each :meth:`put` item, in order, on one background thread.

    :meth:`put` waits while ``depth`` items are unfinished, so that with ``depth=1`` memory
    holds two batches: the one being written and the next one, being computed. An exception
    in the thread is raised by the next :meth:`put` or by :meth:`close`; the items after it
    are dropped.
    """

    def __init__(self, work: Callable, depth: int = 1):
        self._work = work
        self._queue: queue.Queue = queue.Queue()
        self._slots = threading.Semaphore(depth)
        self._error: BaseException | None = None
        self._failed = False  # once set, the remaining items are dropped
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="workbench-spill", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if not self._failed:
                try:
                    self._work(*item)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    self._error, self._failed = exc, True
            del item
            self._slots.release()

    def put(self, *item) -> None:
        self._raise()
        self._slots.acquire()
        self._raise()
        self._queue.put(item)

    def close(self, *, raise_error: bool = True) -> None:
        """Wait until every item put so far is done; raise the thread's error, if any."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        if raise_error:
            self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
