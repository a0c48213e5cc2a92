"""Resumable sweeps: atomic unit commits, crash recovery, and the Dask executors."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import xarray as xr

import execution_toy as toy
from workbench.analysis.execution import (
    Unit,
    UnitsFailedError,
    fingerprint,
    load_unit,
    parse_executor,
    run_units,
    unit_path,
)
from workbench.errors import ValidationError

HERE = Path(__file__).parent


def read_log(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def must_not_compute(unit):
    raise AssertionError(f"{unit.unit_id} was recomputed")


def assert_same_results(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for unit_id, dataset in expected.items():
        xr.testing.assert_identical(got[unit_id], dataset)


# --- units ---------------------------------------------------------------------------------


def test_fingerprint_ignores_key_order_and_sees_every_value():
    a = fingerprint({"metrics": ["rsa", "cka"], "protocol": {"seed": 0, "n": 3}})
    b = fingerprint({"protocol": {"n": 3, "seed": 0}, "metrics": ["rsa", "cka"]})
    assert a == b and len(a) == 64
    assert fingerprint({"metrics": ["cka", "rsa"], "protocol": {"seed": 0, "n": 3}}) != a
    assert fingerprint({"metrics": ["rsa", "cka"], "protocol": {"seed": 1, "n": 3}}) != a
    assert fingerprint({"path": Path("/x")}) == fingerprint({"path": "/x"})


def test_fingerprint_rejects_values_without_stable_text():
    with pytest.raises(ValidationError, match="cannot fingerprint a value of type object"):
        fingerprint({"model": object()})


def test_unit_id_is_stable_safe_and_changes_with_every_field():
    settings = fingerprint({"weights": "random(seed=0)"})
    unit = Unit("sew_resnet18", "cowley2023_v4", settings)
    assert unit.unit_id == Unit("sew_resnet18", "cowley2023_v4", settings).unit_id
    assert unit.unit_id.startswith("sew_resnet18__cowley2023_v4__")
    others = [
        Unit("sew_resnet34", "cowley2023_v4", settings),
        Unit("sew_resnet18", "kriegeskorte2008_92", settings),
        Unit("sew_resnet18", "cowley2023_v4", fingerprint({"weights": "random(seed=1)"})),
    ]
    assert len({unit.unit_id} | {other.unit_id for other in others}) == 4
    # names that are not filesystem-safe still give safe, distinct ids
    odd = [Unit("../evil/net", "d", settings), Unit("..-evil-net", "d", settings)]
    for other in odd:
        assert "/" not in other.unit_id and not other.unit_id.startswith(".")
    assert odd[0].unit_id != odd[1].unit_id


def test_unit_rejects_empty_fields():
    with pytest.raises(ValidationError, match="Unit.model must be a non-empty str, found ''"):
        Unit("", "d", "h")


# --- executor strings --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind, n_workers, address",
    [
        ("serial", "serial", 0, ""),
        ("local:3", "local", 3, ""),
        ("tcp://10.0.0.5:8786", "address", 0, "tcp://10.0.0.5:8786"),
        ("tcp://node-12.cluster:8786", "address", 0, "tcp://node-12.cluster:8786"),
    ],
)
def test_parse_executor_accepts_the_documented_forms(text, kind, n_workers, address):
    spec = parse_executor(text)
    assert (spec.kind, spec.n_workers, spec.address) == (kind, n_workers, address)


@pytest.mark.parametrize(
    "text", ["local:0", "local", "local:two", "tcp://host", "tcp://host:0", "slurm", "Serial", ""]
)
def test_parse_executor_rejects_other_strings_listing_the_forms(text):
    with pytest.raises(ValidationError, match=r'expected "serial", "local:N" .* "tcp://HOST:PORT"'):
        parse_executor(text)


def test_bad_arguments_fail_before_anything_is_computed(tmp_path):
    units = toy.make_units(2)
    with pytest.raises(ValidationError, match="executor='local:0' is not valid"):
        run_units(units, must_not_compute, tmp_path, executor="local:0")
    with pytest.raises(ValidationError, match="retries must be an int >= 0, found -1"):
        run_units(units, must_not_compute, tmp_path, retries=-1)
    with pytest.raises(ValidationError, match=r"units\[2\] and units\[0\] share unit_id"):
        run_units(units + units[:1], must_not_compute, tmp_path)
    with pytest.raises(ValidationError, match=r"units\[0\]='toy' has unit_id None"):
        run_units(["toy"], must_not_compute, tmp_path)
    assert not list(tmp_path.rglob("*.nc"))


# --- serial runs, resuming, corruption ---------------------------------------------------


def test_serial_run_commits_every_unit_and_rerun_loads_instead_of_computing(tmp_path):
    units = toy.make_units(5)
    log = tmp_path / "log.txt"
    compute = functools.partial(toy.logged_compute, log_path=str(log))
    results = run_units(units, compute, tmp_path / "store", progress=False)

    assert list(results) == [unit.unit_id for unit in units]
    for unit in units:  # results are exactly what compute returned, after the netCDF round trip
        xr.testing.assert_identical(results[unit.unit_id], toy.toy_compute(unit))
        record = json.loads(unit_path(tmp_path / "store", unit).with_suffix(".commit.json").read_text())
        assert record["unit_id"] == unit.unit_id and record["unit"]["model"] == unit.model
    assert sorted(read_log(log)) == sorted(results)

    again = run_units(units, must_not_compute, tmp_path / "store", progress=False)
    assert_same_results(again, results)

    forced = run_units(units, compute, tmp_path / "store", force=True, progress=False)
    assert_same_results(forced, results)
    assert len(read_log(log)) == 2 * len(units)


def test_changed_settings_compute_new_units(tmp_path):
    log = tmp_path / "log.txt"
    compute = functools.partial(toy.logged_compute, log_path=str(log))
    run_units(toy.make_units(3), compute, tmp_path, progress=False)
    run_units(toy.make_units(3, {"metrics": ["rsa"]}), compute, tmp_path, progress=False)
    assert len(read_log(log)) == 6 and len(set(read_log(log))) == 6


def _truncate(nc: Path, record: Path) -> None:
    nc.write_bytes(nc.read_bytes()[: nc.stat().st_size // 2])


def _drop_record(nc: Path, record: Path) -> None:
    record.unlink()


def _garbage_with_matching_record(nc: Path, record: Path) -> None:
    import hashlib

    nc.write_bytes(b"not a netCDF file" * 10)
    content = json.loads(record.read_text())
    content["sha256"] = hashlib.sha256(nc.read_bytes()).hexdigest()
    record.write_text(json.dumps(content))


def _record_of_another_unit(nc: Path, record: Path) -> None:
    content = json.loads(record.read_text())
    content["unit_id"] = "someone_else"
    record.write_text(json.dumps(content))


@pytest.mark.parametrize(
    "damage, message",
    [
        (_truncate, "is truncated or was modified: its sha256 is"),
        (_drop_record, r"has no checksum record .*\.commit\.json: it was not completely written"),
        (_garbage_with_matching_record, "unreadable"),
        (_record_of_another_unit, "holds unit_id='someone_else', expected"),
    ],
)
def test_damaged_unit_file_is_recomputed_with_a_warning(tmp_path, damage, message):
    units = toy.make_units(3)
    log = tmp_path / "log.txt"
    compute = functools.partial(toy.logged_compute, log_path=str(log))
    expected = run_units(units, compute, tmp_path / "store", progress=False)
    nc = unit_path(tmp_path / "store", units[1])
    damage(nc, nc.with_suffix(".commit.json"))

    with pytest.warns(RuntimeWarning, match=message):
        assert load_unit(tmp_path / "store", units[1]) is None
    with pytest.warns(RuntimeWarning, match=message):
        rerun = run_units(units, compute, tmp_path / "store", progress=False)
    assert_same_results(rerun, expected)
    assert read_log(log)[len(units):] == [units[1].unit_id]


def test_failing_units_are_reported_and_the_others_committed(tmp_path):
    units = toy.make_units(4)
    with pytest.raises(UnitsFailedError, match=r"2 of 4 unit\(s\) failed .*RuntimeError: no weights") as info:
        run_units(units, toy.failing_compute, tmp_path, progress=False)
    failed = [u.unit_id for u in units if u.dataset == "toyset_1"]
    assert list(info.value.failures) == failed
    assert "in failing_compute" in info.value.failures[failed[0]]  # the traceback is kept
    assert list(info.value.results) == [u.unit_id for u in units if u.dataset == "toyset_0"]

    log = tmp_path / "log.txt"
    rerun = run_units(units, functools.partial(toy.logged_compute, log_path=str(log)), tmp_path, progress=False)
    assert read_log(log) == failed
    assert len(rerun) == 4


def test_compute_must_return_a_dataset_that_netcdf_can_hold(tmp_path):
    with pytest.raises(UnitsFailedError, match="returned DataArray; expected an xarray.Dataset"):
        run_units(toy.make_units(1), lambda unit: toy.toy_compute(unit)["score"], tmp_path, progress=False)

    def nested_attrs(unit):
        return toy.toy_compute(unit).assign_attrs(options={"alpha": 1.0})

    with pytest.raises(UnitsFailedError, match="1 of 1 unit.*Invalid value for attr 'options'"):
        run_units(toy.make_units(1), nested_attrs, tmp_path, progress=False)
    assert not list(tmp_path.rglob("*.nc")) and not list(tmp_path.rglob("*.part"))


# --- kill -9 and resume ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "n_units, sleep_s, kill_after",
    [(8, 0.3, 3), (16, 0.0, 4)],  # killed while a unit computes / most likely while committing
    ids=["kill-while-computing", "kill-while-committing"],
)
def test_sigkilled_sweep_resumes_to_identical_results_computing_only_unfinished_units(
    tmp_path, n_units, sleep_s, kill_after
):
    units = toy.make_units(n_units)
    store, log = tmp_path / "store", tmp_path / "log.txt"
    command = [  # Dask cannot be imported there: the serial executor must not need it
        sys.executable, str(HERE / "execution_kill_script.py"),
        str(store), str(log), str(n_units), str(sleep_s), "--no-dask",
    ]
    process = subprocess.Popen(command, cwd=HERE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while len(list((store / "units").glob("*.commit.json"))) < kill_after:
        assert process.poll() is None, f"the sweep ended (exit code {process.returncode}) before the kill"
        assert time.monotonic() < deadline, "the sweep committed too few units in 60 s"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL

    with warnings.catch_warnings():  # a unit killed between its two renames warns: expected
        warnings.simplefilter("ignore", RuntimeWarning)
        committed = {u.unit_id for u in units if load_unit(store, u) is not None}
    assert kill_after <= len(committed) < n_units
    started_before_kill = len(read_log(log))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        resumed = run_units(units, functools.partial(toy.logged_compute, log_path=str(log)), store, progress=False)
    recomputed = read_log(log)[started_before_kill:]
    assert sorted(recomputed) == sorted({u.unit_id for u in units} - committed)

    uninterrupted = run_units(units, toy.toy_compute, tmp_path / "uninterrupted", progress=False)
    assert_same_results(resumed, uninterrupted)
    assert_same_results(run_units(units, must_not_compute, store, progress=False), uninterrupted)


# --- Dask --------------------------------------------------------------------------------


@pytest.fixture
def toy_by_value():
    """Ship the toy module's code to Dask workers inside the pickles."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(toy)
    yield
    cloudpickle.unregister_pickle_by_value(toy)


@pytest.fixture(scope="module")
def scheduler_address():
    """An 'existing' scheduler: a LocalCluster of 2 worker processes, reached by its address."""
    import dask
    from distributed import LocalCluster

    environ = dict(os.environ)  # the Nanny writes its workers' settings into os.environ
    with dask.config.set({"distributed.scheduler.allowed-failures": 2}):
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster:
            yield cluster.scheduler_address
    os.environ.clear()
    os.environ.update(environ)


@pytest.mark.slow
def test_cluster_of_two_workers_gives_the_serial_scores_and_skips_committed_units(tmp_path, scheduler_address, toy_by_value):
    units = toy.make_units(6)
    serial = run_units(units, toy.toy_compute, tmp_path / "serial", progress=False)

    log = tmp_path / "log.txt"
    compute = functools.partial(toy.logged_compute, log_path=str(log))
    run_units(units[:2], compute, tmp_path / "dask", progress=False)
    on_dask = run_units(units, compute, tmp_path / "dask", executor=scheduler_address, progress=False)

    assert_same_results(on_dask, serial)
    assert sorted(read_log(log)[2:]) == sorted(u.unit_id for u in units[2:])
    assert_same_results(run_units(units, must_not_compute, tmp_path / "dask", progress=False), serial)


@pytest.mark.slow
def test_unit_whose_worker_dies_is_retried_on_an_existing_scheduler(tmp_path, scheduler_address, toy_by_value):
    units = toy.make_units(2)
    compute = functools.partial(toy.kill_worker_once, marker_dir=str(tmp_path))
    results = run_units(units, compute, tmp_path / "store", executor=scheduler_address, progress=False)

    assert all((tmp_path / f"{u.unit_id}.died").exists() for u in units)  # each unit killed its worker once
    assert_same_results(results, run_units(units, toy.toy_compute, tmp_path / "serial", progress=False))


@pytest.mark.slow
def test_unit_whose_worker_keeps_dying_is_reported_after_retries(tmp_path, toy_by_value, monkeypatch):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    environ = dict(os.environ)
    units = toy.make_units(1)
    compute = functools.partial(toy.kill_worker_always, marker_dir=str(tmp_path))
    with pytest.raises(UnitsFailedError, match="1 of 1 unit.*KilledWorker"):
        run_units(units, compute, tmp_path / "store", executor="local:2", retries=1, progress=False)
    deaths = (tmp_path / f"{units[0].unit_id}.deaths").read_text().splitlines()
    assert len(deaths) == 2  # retries=1: the first death is retried, the second is final
    assert load_unit(tmp_path / "store", units[0]) is None
    # the local cluster's worker settings (one thread each) do not leak into this process
    assert dict(os.environ) == environ
