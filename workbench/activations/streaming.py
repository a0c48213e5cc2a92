"""Stream activations into per-layer Gram statistics, all layers in one pass.

Batches arrive over stimuli, but the Gram matrix ``X @ X.T`` pairs every stimulus with every
other, so it cannot be finished batch by batch without the earlier rows. Each layer's
flattened float32 batch is therefore appended to disk, split into blocks of columns sized so
that one block of all stimuli fits in ``block_bytes``; after the pass every block is read back
whole and fed to :meth:`GramStats.update`, then deleted. Peak memory is one batch of
activations + one feature block + the n x n Gram matrices. Layers smaller than
``memory_bytes`` stay in memory.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from workbench.activations.cache import StatsCache, entry_key
from workbench.activations.extractor import feature_shapes, forward_batches, resolve_settings
from workbench.activations.stimuli import check_stimuli, stimulus_fingerprint, stimulus_ids
from workbench.activations.store import LayerWriter, activation_path
from workbench.errors import ValidationError
from workbench.metrics.stats import GramStats

logger = logging.getLogger(__name__)

DEFAULT_BLOCK_BYTES = 256 * 2**20
DEFAULT_MEMORY_BYTES = 32 * 2**20
_ITEM = np.dtype(np.float32).itemsize


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
    """

    def __init__(self, n_stimuli: int, n_features: int, directory: Path, *,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, block_bytes: int = DEFAULT_BLOCK_BYTES,
                 name: str = "features"):
        self.n_stimuli, self.n_features = int(n_stimuli), int(n_features)
        self.name = name
        self.rows = 0
        width = max(1, int(block_bytes) // (self.n_stimuli * _ITEM))
        self.edges = list(range(0, self.n_features, width)) + [self.n_features]
        self._array = None
        self._files: list[Path] = []
        if self.n_stimuli * self.n_features * _ITEM <= memory_bytes:
            self._array = np.empty((self.n_stimuli, self.n_features), np.float32)
        else:
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

    def discard(self) -> None:
        self._array = None
        for path in self._files:
            path.unlink(missing_ok=True)


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
                  block_bytes: int = DEFAULT_BLOCK_BYTES):
    """Per-layer :class:`~workbench.metrics.GramStats` of the flattened activations, streamed.

    All requested layers are computed in a single forward pass over the stimuli, without
    holding any layer's full stimulus x feature matrix in memory, and cached: a rerun with the
    same model, weights, layers, stimuli, preprocessing and T does no forward pass.

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
    if todo:
        logger.info("%s: extracting %d layer(s) (%d cached)", model.name, len(todo),
                    len(settings.layers) - len(todo))
        spill_root = Path(tempfile.gettempdir()) if store is None else store.root / "spill"
        spill_root.mkdir(parents=True, exist_ok=True)
        spill_dir = Path(tempfile.mkdtemp(prefix=f"{model.name}_", dir=spill_root))
        try:
            computed = _stream(model, stimuli, settings, todo, steps, spill_dir, save_activations,
                               memory_bytes, block_bytes)
        finally:
            shutil.rmtree(spill_dir, ignore_errors=True)
        for key, stats in computed.items():
            results[key] = stats
            if store is not None:
                store.save(keys[key], stats, metas[key])
    if settings.time_reduce == "mean":
        return {layer: results[layer, None] for layer in settings.layers}
    return {layer: [results[layer, s] for s in steps] for layer in settings.layers}


def _stream(model, stimuli, settings, layers, steps, spill_dir, save_activations,
            memory_bytes, block_bytes) -> dict:
    """One forward pass over ``layers``; returns {(layer, step): GramStats}."""
    n = check_stimuli(stimuli)
    pass_settings = type(settings)(tuple(layers), settings.time_steps, settings.time_reduce,
                                   settings.batch_size, settings.device)
    spills: dict[tuple[str, int | None], FeatureSpill] = {}
    writers: dict[str, LayerWriter] = {}
    ok = False
    try:
        for _, outputs in forward_batches(model, stimuli, pass_settings):
            if not spills:
                shapes = feature_shapes(outputs, pass_settings)
                for layer in layers:
                    d = int(np.prod(shapes[layer]))
                    for step in steps:
                        label = f"{model.name} {layer}" + ("" if step is None else f" t={step}")
                        spills[layer, step] = FeatureSpill(
                            n, d, spill_dir, memory_bytes=memory_bytes, block_bytes=block_bytes,
                            name=label)
                    if save_activations is not None:
                        writers[layer] = LayerWriter(
                            activation_path(save_activations, model.name, layer), layer=layer,
                            model=model.name, stimulus_ids=stimulus_ids(stimuli),
                            feature_shape=shapes[layer],
                            time_steps=None if steps == [None] else settings.time_steps,
                            channels_last=layer in model.channels_last, weights=model.weights)
            for layer in layers:
                out = outputs[layer]
                b = out.shape[0]
                if steps == [None]:
                    flat = out.reshape(b, -1)
                    spills[layer, None].append(flat)
                else:
                    flat = out.reshape(b, out.shape[1], -1)
                    for step in steps:
                        spills[layer, step].append(flat[:, step])
                if layer in writers:
                    writers[layer].append(flat)
            del outputs
        ok = True
    finally:
        for writer in writers.values():
            writer.close(success=ok)
    results = {}
    for key, spill in tqdm(spills.items(), desc=f"{model.name}: layers", unit="layer", disable=None):
        results[key] = spill.gram_stats()
        spill.discard()
    return results
