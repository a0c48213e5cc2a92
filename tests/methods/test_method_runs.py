"""What every registered method's micro run must do beyond its own tests: its report notebook
executes (``workbench train --report``), and it trains under torchrun with 2 gloo processes.

The methods come from :func:`workbench.methods.list_methods`, so a new method is tested here as
soon as it registers; each trains its ``presets/micro.yaml`` (``train_micro`` trains each once per
session and worker, and the method's own tests reuse that run).
"""

import pytest

from workbench.methods import list_methods

#: Methods whose torchrun test lives with their own tests because it also compares the curves
#: (``same_curves``) on a config of its own: MADA (tests/methods/test_mada_train.py) and the
#: supervised method (tests/training/test_training_ddp.py).
TORCHRUN_TESTED_ELSEWHERE = {"mada", "supervised"}


@pytest.mark.slow
@pytest.mark.parametrize("method", list_methods())
def test_report_executes_on_the_micro_run(method, train_micro, check_run_report):
    check_run_report(train_micro(method))


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(set(list_methods()) - TORCHRUN_TESTED_ELSEWHERE))
def test_trains_under_torchrun_with_two_processes(method, tmp_path, train_micro, train_under_torchrun):
    # BatchNorm networks: on CPU each process normalises with its own batch statistics, so the
    # curves differ from one process's by design; the run's phases, files and steps do not
    train_under_torchrun(method, [], tmp_path / "ddp", like=train_micro(method))
