"""What every method's micro run must do beyond its own tests: its report notebook executes
(``workbench train --report``), and it trains under torchrun with 2 gloo processes.

The micro configs are those of each method's tests, so a run trained there is reused here
(``train_micro`` trains each once per session and worker). MADA's torchrun test, which also
compares the curves, is in its own module; the supervised method's report test is in
tests/training.
"""

import pytest

from tests.methods.test_dst_train import MICRO as DST
from tests.methods.test_lats_train import MICRO as LATS
from tests.methods.test_mada_train import MICRO as MADA
from tests.methods.test_part_train import MICRO as PART
from tests.methods.test_qsam_train import MICRO as QSAM
from tests.methods.test_savc_train import MICRO as SAVC
from tests.methods.test_unidet_train import MICRO as UNIDET

RUNS = {"dst": DST, "lats": [*LATS, "schedule=oneshot", "target_sparsity=0.8"], "mada": MADA, "part": PART,
        "qsam": QSAM, "savc": SAVC, "unidet": UNIDET}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(RUNS))
def test_report_executes_on_the_micro_run(method, train_micro, check_run_report):
    check_run_report(train_micro(method, RUNS[method]))


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(set(RUNS) - {"mada"}))
def test_trains_under_torchrun_with_two_processes(method, tmp_path, train_micro, train_under_torchrun):
    # BatchNorm networks: on CPU each process normalises with its own batch statistics, so the
    # curves differ from one process's by design; the run's phases, files and steps do not
    train_under_torchrun(method, RUNS[method], tmp_path / "ddp", like=train_micro(method, RUNS[method]))
