"""Stream activations into per-layer Gram statistics, all layers in one pass.

Batches arrive over stimuli, but the Gram matrix ``X @ X.T`` pairs every stimulus with every
other, so it cannot be finished batch by batch without the earlier rows. Each layer's
flattened float32 batch is therefore appended to disk, split into blocks of columns sized so
that one block of all stimuli fits in ``block_bytes``; after the pass every block is read back
whole and fed to :meth:`GramStats.update`, then deleted. Peak memory is one batch of
activations + one feature block + the n x n Gram matrices. Layers smaller than
``memory_bytes`` stay in memory.

Resuming. With a cache, the spill of one extraction lives in a folder named after everything
that determines it (``<cache>/spill/<model>_<key>``), and after every batch a checkpoint
``progress.json`` (written atomically) records how many stimuli every spill file holds. A run
that was killed (``kill -9``, out of memory, Ctrl-C) and started again with the same
arguments truncates each file to the checkpoint (dropping a half-written batch) and continues
from the next batch: only the batches after the last checkpoint are computed again, and the
statistics are those of an uninterrupted run. Layers kept in memory also append their rows
to a file, so they resume too. The folder is removed once every layer's statistics are in
the cache; ``workbench cache clear`` removes abandoned ones. A folder in use by another
process (an exclusive lock) is not shared: that run spills to a fresh folder instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from workbench.activations.cache import StatsCache, entry_key, spill_prefix
from workbench.activations.extractor import feature_shapes, forward_batches, resolve_settings
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
SPILL_FORMAT = 1


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
    """

    def __init__(self, n_stimuli: int, n_features: int, directory: Path, *,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, block_bytes: int = DEFAULT_BLOCK_BYTES,
                 name: str = "features", stem: str | None = None):
        self.n_stimuli, self.n_features = int(n_stimuli), int(n_features)
        self.name = name
        self.rows = 0
        width = max(1, int(block_bytes) // (self.n_stimuli * _ITEM))
        self.edges = list(range(0, self.n_features, width)) + [self.n_features]
        self._array = None
        self._files: list[Path] = []
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
            self._files = [Path(f"{base}_{i}.f32") for i in range(len(self.edges) - 1)]

    @property
    def in_memory(self) -> bool:
        return self._array is not None

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
            for path, lo, hi in zip(self._files, self.edges[:-1], self.edges[1:]):
                with open(path, "ab") as fh:
                    np.ascontiguousarray(batch[:, lo:hi], dtype=np.float32).tofile(fh)
        self.rows += b

    def blocks(self) -> Iterator[np.ndarray]:
        """Yield the complete matrix as (n_stimuli, block_width) column blocks, in order."""
        if self.rows != self.n_stimuli:
            raise ValidationError(f"only {self.rows} of {self.n_stimuli} rows were written")
        for i, (lo, hi) in enumerate(zip(self.edges[:-1], self.edges[1:])):
            if self.in_memory:
                yield self._array[:, lo:hi]
            else:
                block = np.fromfile(self._files[i], dtype=np.float32)
                if block.size != self.n_stimuli * (hi - lo):
                    raise ValidationError(f"spill file {self._files[i]} is incomplete")
                yield block.reshape(self.n_stimuli, hi - lo)

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

    def resume(self, rows: int) -> None:
        """Continue a spill whose files (same ``stem``) hold at least ``rows`` complete rows.

        Each file is truncated to exactly ``rows`` rows (a batch half-written when the earlier
        process stopped is dropped) and the next :meth:`append` adds row ``rows``.

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
        for path, width in self._file_widths():
            size = path.stat().st_size if path.is_file() else 0
            if size < rows * width * _ITEM:
                raise DataError(
                    f"spill file {path} holds {size // (width * _ITEM)} complete row(s) of "
                    f"{self.name}; the checkpoint says {rows}"
                )
        for path, width in self._file_widths():
            if path.is_file():
                os.truncate(path, rows * width * _ITEM)
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
                  block_bytes: int = DEFAULT_BLOCK_BYTES, resume: bool = True):
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

    Returns
    -------
    dict of str to GramStats, or dict of str to list of GramStats
        With ``time_reduce="mean"``: one GramStats per layer. With ``time_reduce=None``: per
        layer, a list of ``time_steps`` GramStats, one per time step.
    """
    settings = resolve_settings(model, layers, batch_size, time_steps, time_reduce, device)
    n = check_stimuli(stimuli)
    store = _resolve_cache(cache)
    steps = [None] if settings.time_reduce == "mean" else list(range(settings.time_steps))
    results: dict[tuple[str, int | None], GramStats] = {}
    keys: dict[tuple[str, int | None], str] = {}
    metas: dict[tuple[str, int | None], dict] = {}
    if store is not None:
        fingerprint = stimulus_fingerprint(stimuli)
        for layer in settings.layers:
            for step in steps:
                fields = {
                    "model": model.name, "weights_id": model.weights_id, "layer": layer,
                    "stimuli": fingerprint, "n_stimuli": n,
                    "preprocessing": model.preprocessing.to_dict(),
                    "time_steps": settings.time_steps, "time_reduce": settings.time_reduce,
                    "time_step": step, "dtype": "float32",
                }
                keys[layer, step] = entry_key(fields)
                metas[layer, step] = {k: fields[k] for k in
                                      ("model", "layer", "time_step", "n_stimuli", "stimuli")}
                metas[layer, step]["weights"] = model.weights
                hit = store.load(keys[layer, step])
                if hit is not None:
                    results[layer, step] = hit
        logger.info("%s: %d of %d statistics found in the cache %s", model.name, len(results),
                    len(keys), store.root)
    todo = [layer for layer in settings.layers
            if save_activations is not None or any((layer, s) not in results for s in steps)]
    if not todo:
        return _arrange(results, settings, steps)
    logger.info("%s: extracting %d layer(s) (%d cached)", model.name, len(todo),
                len(settings.layers) - len(todo))
    spill_root = Path(tempfile.gettempdir()) if store is None else store.root / "spill"
    spill_root.mkdir(parents=True, exist_ok=True)

    def keep(key, stats):
        results[key] = stats
        if store is not None:
            store.save(keys[key], stats, metas[key])

    with contextlib.ExitStack() as stack:
        resumable = resume and store is not None and save_activations is None
        spill_dir = None
        if resumable:
            run_key = entry_key({
                "spill_format": SPILL_FORMAT, "entries": [keys[layer, s] for layer in settings.layers
                                                          for s in steps],
                "batch_size": settings.batch_size, "device": settings.device.type,
                "memory_bytes": int(memory_bytes), "block_bytes": int(block_bytes)})
            spill_dir = spill_root / f"{spill_prefix(model.name)}_{run_key[:16]}"
            if not _lock(spill_dir, stack):
                logger.info("%s: spill folder %s is in use by another process; this run "
                            "spills to a fresh folder and cannot be resumed", model.name, spill_dir)
                spill_dir = None
        if spill_dir is None:
            run_key = None
            spill_dir = Path(tempfile.mkdtemp(prefix=f"{spill_prefix(model.name)}_", dir=spill_root))
        try:
            _stream(model, stimuli, settings, todo, steps, spill_dir, save_activations,
                    memory_bytes, block_bytes, run_key=run_key, results=results, keep=keep)
        except BaseException as exc:
            # an error would recur: drop the spill; an interruption (Ctrl-C) keeps it to resume
            if isinstance(exc, Exception) or run_key is None:
                shutil.rmtree(spill_dir, ignore_errors=True)
            raise
        shutil.rmtree(spill_dir, ignore_errors=True)
    return _arrange(results, settings, steps)


def _arrange(results: dict, settings, steps: list) -> dict:
    if settings.time_reduce == "mean":
        return {layer: results[layer, None] for layer in settings.layers}
    return {layer: [results[layer, s] for s in steps] for layer in settings.layers}


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
                block_bytes, persistent: bool) -> dict:
    spills = {}
    for i, layer in enumerate(layers):
        d = int(np.prod(shapes[layer]))
        for j, step in enumerate(steps):
            spills[layer, step] = FeatureSpill(
                n, d, spill_dir, memory_bytes=memory_bytes, block_bytes=block_bytes,
                name=_spill_label(model, layer, step),
                stem=f"layer{i:03d}_step{j:03d}" if persistent else None)
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
                             persistent=True)
        for key, spill in spills.items():
            if key not in results:  # a layer already in the cache needs no rows
                spill.resume(rows)
    except (DataError, KeyError, TypeError, ValueError) as exc:
        logger.warning("%s: cannot resume from %s (%s); extracting from the first batch",
                       model.name, spill_dir, exc)
        _clear_folder(spill_dir)
        return None
    logger.info("%s: resuming extraction at stimulus %d of %d (%d of %d batches done) from %s",
                model.name, rows, n, -(-rows // settings.batch_size), -(-n // settings.batch_size),
                spill_dir)
    return layers, spills, shapes, rows


def _stream(model, stimuli, settings, layers, steps, spill_dir, save_activations,
            memory_bytes, block_bytes, *, run_key: str | None, results: dict, keep) -> None:
    """One forward pass over ``layers``; ``keep((layer, step), GramStats)`` for each new result.

    With ``run_key``, the spill is checkpointed in ``spill_dir`` after every batch and an
    earlier checkpoint of the same run is continued.
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
    pass_settings = type(settings)(tuple(layers), settings.time_steps, settings.time_reduce,
                                   settings.batch_size, settings.device)
    live = [key for key in spills if key not in results]
    writers: dict[str, LayerWriter] = {}
    ok = False
    try:
        batches = forward_batches(model, stimuli, pass_settings, first) if first < n else iter(())
        for start, outputs in batches:
            if not spills:
                shapes = feature_shapes(outputs, pass_settings)
                spills = _new_spills(model, layers, steps, shapes, n, spill_dir, memory_bytes,
                                     block_bytes, persistent=run_key is not None)
                live = list(spills)
                if save_activations is not None:
                    for layer in layers:
                        writers[layer] = LayerWriter(
                            activation_path(save_activations, model.name, layer), layer=layer,
                            model=model.name, stimulus_ids=stimulus_ids(stimuli),
                            feature_shape=shapes[layer],
                            time_steps=None if steps == [None] else settings.time_steps,
                            channels_last=layer in model.channels_last, weights=model.weights)
            elif feature_shapes(outputs, pass_settings) != shapes:
                raise ValidationError(
                    f"{model.name}: layer output shapes {feature_shapes(outputs, pass_settings)} "
                    f"differ from the earlier batches' {shapes}")
            for layer in layers:
                out = outputs[layer]
                b = out.shape[0]
                flat = out.reshape(b, -1) if steps == [None] else out.reshape(b, out.shape[1], -1)
                for step in steps:
                    if (layer, step) in live:
                        spills[layer, step].append(flat if step is None else flat[:, step])
                if layer in writers:
                    writers[layer].append(flat)
            del outputs
            if run_key is not None:
                _write_progress(spill_dir, {
                    "run_key": run_key, "rows": start + b, "n_stimuli": n, "layers": list(layers),
                    "shapes": {layer: list(shape) for layer, shape in shapes.items()}})
        ok = True
    finally:
        for writer in writers.values():
            writer.close(success=ok)
    for key in tqdm(live, desc=f"{model.name}: layers", unit="layer", disable=None):
        keep(key, spills[key].gram_stats())
        spills[key].discard()
