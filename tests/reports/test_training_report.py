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


def _method_notebook(path):
    """A method notebook whose code imports tqdm.auto in a fresh kernel, as the reports do."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python"}
    parameters = nbformat.v4.new_code_cell('run_dir = ""')
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(
        "from tqdm.auto import tqdm\nprint('steps:', sum(1 for _ in tqdm(range(3), disable=None)))")]
    nbformat.write(nb, path)
    return path


def test_a_training_report_shows_outputs_only_and_no_tqdm_warning(tmp_path, monkeypatch):
    import nbformat

    from workbench.training import model_card

    training_report = importlib.import_module("workbench.reports.training_report")
    notebook = _method_notebook(tmp_path / "method.ipynb")
    monkeypatch.setattr(training_report, "method_notebook", lambda method: notebook)
    monkeypatch.setattr(model_card, "read_card", lambda run, verify_weights=True: {"method": "tiny"})
    run = tmp_path / "run"
    run.mkdir()
    html = training_report.report_run(run).read_text()
    assert "steps: 3" in html
    assert "from tqdm.auto import" not in html  # code cells hidden
    executed = nbformat.read(run / "report.ipynb", 4)
    outputs = [o for c in executed.cells for o in c.get("outputs", [])]
    assert [o.get("name") for o in outputs] == ["stdout"]  # nothing on stderr: no TqdmWarning
    assert "TqdmWarning" not in html and "IProgress" not in html
