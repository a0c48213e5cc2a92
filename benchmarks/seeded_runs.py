"""What the methods' claim benchmarks share: their seed options, tiny-preset runs in parallel
processes (one thread each), and the mean ± sd they print; and, for every benchmark that
reads neural data, the offline mirror beside the clone (:func:`use_data_mirror`).

Used by ``bench_dst.py``, ``bench_mada.py``, ``bench_part.py``, ``bench_qsam.py``,
``bench_savc.py`` and ``bench_unidet.py``, and for the mirror by ``bench_null.py`` and
``bench_sweep.py`` (run as scripts from ``benchmarks/``, or through ``bench_methods.py``,
which puts this folder on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

#: The shared data beside the clone, the offline mirror of the reports' neural datasets.
MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"


def use_data_mirror(env=os.environ):
    """Point ``$WORKBENCH_DATA_MIRROR`` of ``env`` (default: this process) at :data:`MIRROR`
    when it holds the data and the variable is not set already; returns ``env``."""
    if (MIRROR / "SHA256SUMS").is_file():
        env.setdefault("WORKBENCH_DATA_MIRROR", str(MIRROR))
    return env


def add_seed_options(parser: argparse.ArgumentParser, *, no_report_help: str) -> None:
    """``--seeds``, ``--out``, ``--jobs``, ``--set KEY=VALUE`` (repeatable) and ``--no-report``."""
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=3, help="training processes at once (1 thread each)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run (a sensitivity check, not the claims' preset)")
    parser.add_argument("--no-report", action="store_true", help=no_report_help)


def output_folder(out: Path | None, prefix: str) -> Path:
    """``out`` (created), or a new temporary folder named after ``prefix``."""
    out = out or Path(tempfile.mkdtemp(prefix=prefix))
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_tiny(method: str, seed: int, out: Path, *, report: bool, extra: list[str] = (),
             overrides: list[str] = (), report_may_fail: bool = False, threads: int | None = 1) -> dict:
    """Timing record of ``workbench train METHOD --preset tiny --seed SEED`` into ``out/seedSEED``.

    ``report`` adds ``--report``; ``extra`` are more arguments, ``overrides`` ``--set`` pairs.
    The record ``{"seed", "report", "wall_s", "cpu_s", "load_at_start"}`` (CPU seconds of this
    child alone, ``os.wait4``) and the run's ``arguments`` (``extra`` then ``overrides``) are kept in
    ``out/seedSEED.timing.json``. A finished run (its card, and its report when ``report``) is reused
    only when that record names the same arguments; otherwise it is trained again. The run gets
    ``threads`` threads (``OMP_NUM_THREADS``, unless set already; None: the environment as it
    is), reads the neural data of its report from
    ``$WORKBENCH_DATA_MIRROR`` (default :data:`MIRROR` when it exists) and writes its output
    to ``out/seedSEED.log``. A failing run raises with the command and the log's tail; with
    ``report_may_fail``, a run that failed after writing its card only prints a warning.
    """
    run_dir, timing_file = out / f"seed{seed}", out / f"seed{seed}.timing.json"
    arguments = [*extra, *overrides]
    if (run_dir / "model_card.json").is_file() and (not report or (run_dir / "report.html").is_file()):
        kept = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
        if kept.get("arguments") == arguments:
            return kept
        print(f"{run_dir}: trained with arguments {kept.get('arguments', 'unknown')}, not {arguments}; "
              "training it again", file=sys.stderr)
    cmd = [sys.executable, "-m", "workbench", "train", method, "--preset", "tiny", "--seed", str(seed),
           "--out", str(run_dir), "--force", *extra] + (["--report"] if report else [])
    cmd += [arg for pair in overrides for arg in ("--set", pair)]
    env = use_data_mirror(dict(os.environ))
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, str(threads))
    log = out / f"seed{seed}.log"
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here: the rusage of this child alone
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        message = f"{' '.join(cmd)} exited {code}:\n{log.read_text()[-3000:]}"
        if not (report_may_fail and (run_dir / "model_card.json").is_file()):
            raise RuntimeError(message)
        print(f"warning (after training; the report?): {message}", file=sys.stderr)
    record = {"seed": seed, "report": report, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
              "load_at_start": load, "arguments": arguments}
    timing_file.write_text(json.dumps(record))
    return record


def map_seeds(run_one, seeds: list[int], jobs: int) -> dict:
    """``{seed: run_one(seed)}``, ``jobs`` seeds at once."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return dict(zip(seeds, pool.map(run_one, seeds)))


def mean_sd(values) -> str:
    """``"mean ± sd"`` (sample sd; NaN for one value), three decimals."""
    values = np.asarray(values, dtype=float)
    sd = values.std(ddof=1) if len(values) > 1 else float("nan")
    return f"{values.mean():.3f} ± {sd:.3f}"
