"""A local Dask cluster keeps distributed's INFO lines off the terminal unless INFO logging is
on (``workbench -v``) (issue 19, point 5)."""

import logging

import pytest
from execution_toy import make_units, toy_compute

from workbench.analysis.execution import run_units


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.mark.slow
@pytest.mark.parametrize("root_level, shown", [(logging.WARNING, False), (logging.INFO, True)])
def test_local_cluster_logs_info_only_when_asked(root_level, shown, tmp_path):
    import distributed  # noqa: F401  (sets its logger's level on import)

    root = logging.getLogger()
    handler, saved = _Records(), root.level
    before = logging.getLogger("distributed").level
    root.addHandler(handler)
    root.setLevel(root_level)  # what `workbench` sets without and with -v
    try:
        run_units(make_units(2), toy_compute, tmp_path, executor="local:2", progress=False)
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
    chatter = [r for r in handler.records if r.name.startswith("distributed") and r.levelno == logging.INFO]
    assert bool(chatter) == shown, [r.getMessage() for r in chatter][:5]
    assert logging.getLogger("distributed").level == before  # restored afterwards
