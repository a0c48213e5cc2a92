"""The training-run report module has its own name: ``workbench.reports.run_report`` stays the study report."""

import importlib

import workbench.reports
from workbench.reports.demo import run_report


def test_run_report_stays_the_study_report_function_after_the_training_report_is_imported():
    training_report = importlib.import_module("workbench.reports.training_report")
    assert workbench.reports.run_report is run_report
    assert callable(workbench.reports.run_report)
    assert workbench.reports.training_report is training_report
    assert training_report.report_run.__module__ == "workbench.reports.training_report"
