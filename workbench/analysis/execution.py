"""Run a sweep's units so that a crash never costs finished work, serially or on Dask.

A sweep is cut into *units* (one model on one dataset). :func:`run_units` computes each unit
with a user function, commits its result to ``store_dir/units/`` the moment it finishes, and
skips units already committed when the same sweep runs again.

Store layout
------------
``store_dir/units/<unit_id>.nc``
    The unit's :class:`xarray.Dataset` (netCDF, h5netcdf engine), written with
    :func:`workbench.storage.write_verified`.
``store_dir/units/<unit_id>.commit.json``
    The commit record (the payload's record of :func:`~workbench.storage.write_verified`),
    written atomically *after* the ``.nc`` file: the unit's fields, the sha256 of the ``.nc``
    file, the host and the compute time. A unit counts as finished only
    when its record exists, its checksum matches and the netCDF file opens; anything else
    (a kill -9 between the two renames, a truncated or corrupted file) is recomputed, with a
    warning when a file was there but unusable.

Executors
---------
``"serial"``
    One unit after another in this process; Dask is not imported.
``"local:N"``
    A :class:`distributed.LocalCluster` of ``N`` worker processes with one thread each,
    started and closed here.
``"tcp://HOST:PORT"``
    A client of an existing Dask scheduler (for example one started by dask-jobqueue).

With Dask, the *worker* writes the unit's files as soon as the unit is computed, so finished
work survives a dying client; this assumes ``store_dir`` is on a filesystem the workers and
the client share. The worker also returns the result, and the client commits that copy
itself when it cannot see the worker's file, so a cluster without a shared filesystem still
gives complete results on the client side.

A worker that dies while it computes a unit (out of memory, killed) is replaced by Dask and
the unit is rescheduled up to ``retries`` times (``distributed.scheduler.allowed-failures``;
for an existing scheduler its own setting applies). An exception raised by ``compute`` is not
retried: it is reported, the other units go on, and :class:`UnitsFailedError` is raised at
the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import socket
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from workbench import __version__
from workbench.errors import DataError, WorkbenchError, ValidationError
from workbench.storage import read_verified, write_verified

logger = logging.getLogger(__name__)

__all__ = [
    "Unit",
    "UnitsFailedError",
    "ExecutorSpec",
    "fingerprint",
    "parse_executor",
    "largest_first",
    "run_units",
    "load_unit",
    "unit_path",
]

UNITS_DIR = "units"
_NETCDF_ENGINE = "h5netcdf"
_UNIT_ID_ATTR = "workbench_unit_id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXECUTOR_FORMS = '"serial", "local:N" (N >= 1 worker processes) or "tcp://HOST:PORT"'


# ---------------------------------------------------------------------------------------------
# units


def fingerprint(settings) -> str:
    """Return the sha256 (hex) of a JSON-able description of everything that changes a result.

    Parameters
    ----------
    settings : mapping, sequence, str, number, bool, None, dataclass or pathlib.Path
        For example ``{"protocol": protocol, "metrics": ["rsa", "cka"], "weights":
        "random(seed=0)"}``. Keys are sorted, so dict order does not matter; dataclasses
        are converted with :func:`dataclasses.asdict`.

    Raises
    ------
    ValidationError
        A value that has no stable text form (an arbitrary object, whose ``repr`` may hold
        a memory address) is found.
    """
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=_json_value)
    return hashlib.sha256(text.encode()).hexdigest()


def _json_value(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise ValidationError(
        f"settings: cannot fingerprint a value of type {type(value).__name__} ({value!r:.80}); "
        "expected JSON-able values (dict, list, str, number, bool, None), dataclasses or paths"
    )


def _slug(text: str) -> str:
    return _SLUG_UNSAFE.sub("-", text).strip(".-")[:60] or "x"


@dataclasses.dataclass(frozen=True)
class Unit:
    """One piece of a sweep: a model on a dataset, under fixed settings.

    Parameters
    ----------
    model : str
        Model name, e.g. ``"sew_resnet18"``.
    dataset : str
        Dataset name, e.g. ``"cowley2023_v4"``.
    settings_hash : str
        :func:`fingerprint` of everything else that changes the unit's result (protocol,
        metric list, weights spec, ...). Units differing in it get different ids, so a
        changed setting never reuses a stale result.

    Examples
    --------
    >>> unit = Unit("alexnet", "kriegeskorte2008_92", fingerprint({"metrics": ["rsa"]}))
    >>> unit.unit_id  # doctest: +ELLIPSIS
    'alexnet__kriegeskorte2008_92__...'
    """

    model: str
    dataset: str
    settings_hash: str

    def __post_init__(self):
        for name in ("model", "dataset", "settings_hash"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValidationError(f"Unit.{name} must be a non-empty str, found {value!r}")

    @property
    def unit_id(self) -> str:
        """Stable, filesystem-safe id: readable model and dataset plus a 16-hex digest."""
        digest = fingerprint([self.model, self.dataset, self.settings_hash])[:16]
        return f"{_slug(self.model)}__{_slug(self.dataset)}__{digest}"


class UnitsFailedError(WorkbenchError):
    """Some units failed; the others finished and were committed.

    Attributes
    ----------
    results : dict[str, xarray.Dataset]
        The finished units' results, by unit id.
    failures : dict[str, str]
        The failed units' error text (a traceback, or the Dask error), by unit id.
    """

    def __init__(self, results: dict, failures: dict):
        self.results = results
        self.failures = failures
        first_id, first_error = next(iter(failures.items()))
        last_line = first_error.strip().splitlines()[-1] if first_error.strip() else "?"
        super().__init__(
            f"{len(failures)} of {len(results) + len(failures)} unit(s) failed "
            f"(first: {first_id}: {last_line}); the other units are committed and a rerun "
            "computes only the failed ones"
        )


# ---------------------------------------------------------------------------------------------
# the unit store


def unit_path(store_dir: str | os.PathLike, unit) -> Path:
    """Return the path of ``unit``'s netCDF file in ``store_dir`` (it may not exist)."""
    return Path(store_dir) / UNITS_DIR / f"{unit.unit_id}.nc"


def _record_path(nc_path: Path) -> Path:
    return nc_path.with_name(nc_path.name[: -len(".nc")] + ".commit.json")


def _unit_fields(unit) -> dict:
    if dataclasses.is_dataclass(unit):
        return {k: str(v) for k, v in dataclasses.asdict(unit).items()}
    return {"repr": repr(unit)}


def _commit(store_dir: Path, unit, result: xr.Dataset, elapsed_s: float | None) -> Path:
    """Write ``result`` and then its commit record, each atomically (``elapsed_s``: compute time)."""
    if not isinstance(result, xr.Dataset):
        raise ValidationError(
            f"compute({unit.unit_id}) returned {type(result).__name__}; expected an xarray.Dataset"
        )
    path = unit_path(store_dir, unit)
    tagged = result.copy(deep=False)
    tagged.attrs = {**result.attrs, _UNIT_ID_ATTR: unit.unit_id}
    record = {
        "unit_id": unit.unit_id,
        "unit": _unit_fields(unit),
        "elapsed_s": None if elapsed_s is None else round(elapsed_s, 6),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "committed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "workbench_version": __version__,
    }
    write_verified(path, lambda tmp: tagged.to_netcdf(tmp, engine=_NETCDF_ENGINE), fields=record,
                   record=_record_path(path))
    return path


def load_unit(store_dir: str | os.PathLike, unit) -> xr.Dataset | None:
    """Return ``unit``'s committed result, or None if it is not (validly) finished.

    A unit is finished when its commit record exists, names the unit, matches the netCDF
    file's sha256, and the file opens. A file that is there but fails any of these checks
    (partial, truncated, corrupted, mismatched) gives a :class:`RuntimeWarning` and None,
    so the caller recomputes it.

    Returns
    -------
    xarray.Dataset or None
        The dataset exactly as ``compute`` returned it (after a netCDF round trip), loaded
        into memory.
    """
    path = unit_path(store_dir, unit)
    if not path.exists():
        return None
    problem = None
    try:
        read_verified(path, expect={"unit_id": unit.unit_id}, record=_record_path(path), what="unit file")
        dataset = xr.load_dataset(path, engine=_NETCDF_ENGINE)
        if dataset.attrs.get(_UNIT_ID_ATTR) != unit.unit_id:
            problem = (f"unit file {path}: attribute {_UNIT_ID_ATTR}={dataset.attrs.get(_UNIT_ID_ATTR)!r}, "
                       f"expected {unit.unit_id!r}")
    except DataError as exc:  # no record (interrupted while committing), another unit's, changed
        problem = str(exc)
    except Exception as exc:  # any unreadable file means "not finished"
        problem = f"unit file {path} is unreadable ({type(exc).__name__}: {exc})"
    if problem is not None:
        warnings.warn(f"{problem}; recomputing the unit", RuntimeWarning, stacklevel=2)
        return None
    del dataset.attrs[_UNIT_ID_ATTR]
    return dataset


@dataclasses.dataclass
class _Outcome:
    """What a unit's run sends back to the client (small, picklable)."""

    unit_id: str
    result: xr.Dataset | None = None
    error: str = ""


def compute_and_commit(compute: Callable, unit, store_dir: str) -> _Outcome:
    """Compute one unit and commit it to ``store_dir``; runs on a Dask worker or in-process.

    An exception from ``compute`` is returned as text, not raised, so that Dask does not
    retry a deterministic failure. A failed commit (e.g. the store is not visible from this
    worker) is logged; the client then commits the returned result itself.
    """
    start = time.perf_counter()
    try:
        result = compute(unit)
    except Exception:
        return _Outcome(unit.unit_id, error=traceback.format_exc())
    elapsed = time.perf_counter() - start
    try:
        _commit(Path(store_dir), unit, result, elapsed)
    except ValidationError as exc:
        return _Outcome(unit.unit_id, error=f"{type(exc).__name__}: {exc}")
    except OSError as exc:  # e.g. no shared filesystem: the client commits the returned copy
        logger.warning("unit %s: could not commit on %s (%s)", unit.unit_id, socket.gethostname(), exc)
    except Exception:  # the result cannot be written as netCDF
        return _Outcome(unit.unit_id, error=traceback.format_exc())
    return _Outcome(unit.unit_id, result=result)


# ---------------------------------------------------------------------------------------------
# executors


@dataclasses.dataclass(frozen=True)
class ExecutorSpec:
    """A parsed executor string: ``kind`` is "serial", "local" or "address"."""

    kind: str
    n_workers: int = 0
    address: str = ""


def parse_executor(executor: str) -> ExecutorSpec:
    """Parse ``"serial"``, ``"local:N"`` or ``"tcp://HOST:PORT"``.

    Raises
    ------
    ValidationError
        Any other string, with the accepted forms.
    """
    if not isinstance(executor, str):
        raise ValidationError(
            f"executor must be a str, found {type(executor).__name__}; expected {_EXECUTOR_FORMS}"
        )
    if executor == "serial":
        return ExecutorSpec("serial")
    match = re.fullmatch(r"local:(\d+)", executor)
    if match and int(match.group(1)) >= 1:
        return ExecutorSpec("local", n_workers=int(match.group(1)))
    match = re.fullmatch(r"tcp://([^\s:/]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})", executor)
    if match and 0 < int(match.group(2)) < 65536:
        return ExecutorSpec("address", address=executor)
    raise ValidationError(f"executor={executor!r} is not valid; expected {_EXECUTOR_FORMS}")


@contextlib.contextmanager
def _restored_environ():
    """Give ``os.environ`` back its current content when the block ends."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _dask_client(spec: ExecutorSpec, retries: int):
    """Yield a ``distributed.Client`` for ``spec``, closing what was started here."""
    with _quiet_distributed_logs(), _open_client(spec, retries) as client:
        yield client


@contextlib.contextmanager
def _quiet_distributed_logs():
    """Keep distributed's INFO lines (scheduler, nanny, connections) off the terminal.

    distributed sets its ``distributed`` logger to INFO when imported, so its start-up and
    shut-down chatter (about 45 lines per local cluster) reaches whatever handler the
    application installed. Unless the root logger is enabled for INFO (``workbench -v``), the
    ``distributed`` logger is raised to WARNING for the life of the client and restored after.
    """
    import distributed  # noqa: F401  (its import sets the logger's level: import it first)

    log = logging.getLogger("distributed")
    saved = log.level
    if not logging.getLogger().isEnabledFor(logging.INFO):
        log.setLevel(max(logging.WARNING, saved))
    try:
        yield
    finally:
        log.setLevel(saved)


@contextlib.contextmanager
def _open_client(spec: ExecutorSpec, retries: int):
    import dask
    from distributed import Client, LocalCluster

    if spec.kind == "local":
        # distributed's Nanny writes its workers' settings (OMP_NUM_THREADS=1, ...) into this
        # process's os.environ before spawning them and never restores it: without the
        # restore, every later subprocess of this process (a papermill kernel, say) would
        # run its numerical libraries on one thread.
        with dask.config.set({"distributed.scheduler.allowed-failures": retries}), _restored_environ():
            with LocalCluster(
                n_workers=spec.n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # a free port: never clash with another cluster
                silence_logs=logging.ERROR,
            ) as cluster, Client(cluster) as client:
                yield client
        return
    try:
        client = Client(spec.address, timeout="20s")
    except OSError as exc:
        raise WorkbenchError(
            f"executor={spec.address!r}: cannot reach a Dask scheduler there ({exc}); start one "
            "with `dask scheduler` (or dask-jobqueue) and pass the address it prints"
        ) from exc
    with client:
        yield client


# ---------------------------------------------------------------------------------------------
# the runner


def _check_units(units: Iterable) -> list:
    units = list(units)
    seen = {}
    for position, unit in enumerate(units):
        unit_id = getattr(unit, "unit_id", None)
        if not isinstance(unit_id, str) or not _SAFE_ID.match(unit_id):
            raise ValidationError(
                f"units[{position}]={unit!r} has unit_id {unit_id!r}; expected an object with a "
                "filesystem-safe str unit_id (letters, digits, '.', '_', '-'), such as a Unit"
            )
        if unit_id in seen:
            raise ValidationError(
                f"units[{position}] and units[{seen[unit_id]}] share unit_id {unit_id!r}; "
                "each unit must appear once"
            )
        seen[unit_id] = position
    return units


def largest_first(units: Iterable, cost: Callable) -> list:
    """``units`` in the order to compute them: the costliest first (ties keep their order).

    Starting the longest units first keeps the end of a grid from waiting on one large unit
    (and lets Dask fill its workers with the small ones meanwhile).

    Parameters
    ----------
    units : iterable of Unit
    cost : callable
        ``cost(unit) -> float``, an estimate in any unit (e.g. parameters x stimuli).
    """
    units = list(units)
    costs = [float(cost(unit)) for unit in units]
    order = sorted(range(len(units)), key=lambda i: -costs[i])
    return [units[i] for i in order]


def run_units(
    units: Iterable,
    compute: Callable,
    store_dir: str | os.PathLike,
    *,
    executor: str = "serial",
    force: bool = False,
    retries: int = 2,
    progress: bool = True,
) -> dict[str, xr.Dataset]:
    """Compute every unit once, committing each result as soon as it is ready.

    Parameters
    ----------
    units : iterable of Unit
        The units (any frozen, picklable objects with a filesystem-safe ``unit_id``).
    compute : callable
        ``compute(unit) -> xarray.Dataset``; a top-level function (or ``functools.partial``
        of one) so that Dask workers can unpickle it. Its result must be writable as netCDF.
    store_dir : path
        Where the results are committed (``store_dir/units/``); with Dask, a directory that
        the workers and this process share.
    executor : str, default: "serial"
        ``"serial"``, ``"local:N"`` or ``"tcp://HOST:PORT"`` (see the module docstring).
    force : bool, default: False
        Recompute and overwrite units that are already committed.
    retries : int, default: 2
        How often Dask reschedules a unit whose worker died (and resubmits one whose task
        failed outside ``compute``). Ignored by "serial".
    progress : bool, default: True
        Show a tqdm progress bar over units.

    Returns
    -------
    dict[str, xarray.Dataset]
        Every unit's result, keyed by unit id in the order of ``units``, always as read back
        from the store, so a resumed sweep returns exactly what an uninterrupted one does.

    Raises
    ------
    ValidationError
        Bad ``units``, ``compute``, ``executor`` or ``retries`` (before anything runs).
    UnitsFailedError
        After every other unit finished, if some units' ``compute`` raised (or returned what
        netCDF cannot hold) or their worker died more than ``retries`` times; it carries
        ``.results`` and ``.failures``.
    """
    units = _check_units(units)
    spec = parse_executor(executor)
    _check_run_arguments(compute, retries)
    store_dir = Path(store_dir).resolve()
    (store_dir / UNITS_DIR).mkdir(parents=True, exist_ok=True)
    results, pending = _committed_units(units, store_dir, force)
    logger.info(
        "%d unit(s): %d already committed in %s, %d to compute (%s)",
        len(units), len(results), store_dir, len(pending), executor,
    )
    collected = _Collector(store_dir, pending, results, total=len(units), progress=progress)
    try:
        if spec.kind == "serial" or not pending:
            for unit in pending:
                collected.finish(compute_and_commit(compute, unit, str(store_dir)))
        else:
            _run_on_dask(spec, pending, compute, store_dir, retries, collected.finish)
    finally:
        collected.bar.close()

    ordered = {unit.unit_id: results[unit.unit_id] for unit in units if unit.unit_id in results}
    failures = collected.failures
    if failures:
        raise UnitsFailedError(ordered, {u.unit_id: failures[u.unit_id] for u in units if u.unit_id in failures})
    return ordered


def _check_run_arguments(compute, retries) -> None:
    """Raise unless ``compute`` is callable and ``retries`` an int >= 0."""
    if not callable(compute):
        raise ValidationError(f"compute must be callable, found {type(compute).__name__}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValidationError(f"retries must be an int >= 0, found {retries!r}")


def _committed_units(units: list, store_dir: Path, force: bool) -> tuple[dict, list]:
    """``({unit_id: result}, pending)``: the units already committed in ``store_dir`` (none
    with ``force``), read back, and the units still to compute, in order."""
    results: dict[str, xr.Dataset] = {}
    pending = []
    for unit in units:
        finished = None if force else load_unit(store_dir, unit)
        if finished is None:
            pending.append(unit)
        else:
            results[unit.unit_id] = finished
    return results, pending


class _Collector:
    """Receives each pending unit's outcome: its result read back from the store (committed
    here when the worker's file is not visible) into ``results``, or its error into
    ``failures``; advances the progress bar over all units."""

    def __init__(self, store_dir: Path, pending: list, results: dict, *, total: int, progress: bool):
        self.store_dir, self.results = store_dir, results
        self.by_id = {unit.unit_id: unit for unit in pending}
        self.failures: dict[str, str] = {}
        self.bar = tqdm(total=total, initial=len(results), desc="units", unit="unit", disable=not progress)

    def finish(self, outcome: _Outcome) -> None:
        unit = self.by_id[outcome.unit_id]
        if outcome.error:
            self.failures[unit.unit_id] = outcome.error
            # the traceback for -v; the sweep reports the failure once, on one line
            logger.info("unit %s failed:\n%s", unit.unit_id, outcome.error)
        else:
            loaded = load_unit(self.store_dir, unit)
            if loaded is None:  # the worker's file is not visible here: commit the returned copy
                _commit(self.store_dir, unit, outcome.result, None)
                loaded = load_unit(self.store_dir, unit)
            self.results[unit.unit_id] = loaded
        self.bar.update()


def _run_on_dask(spec, pending, compute, store_dir, retries, finish) -> None:
    from distributed import as_completed

    with _dask_client(spec, retries) as client:
        logger.info("%d unit(s) to compute on %s (dashboard: %s)", len(pending), client, client.dashboard_link)
        futures = {  # one task group ("compute_and_commit"), so Dask queues units on its side
            client.submit(compute_and_commit, compute, unit, str(store_dir), retries=retries, pure=False): unit
            for unit in pending
        }
        for future in as_completed(futures):
            unit = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # KilledWorker, or a failure outside compute
                outcome = _Outcome(unit.unit_id, error=f"{type(exc).__name__}: {exc}")
            future.release()
            finish(outcome)
