"""The notebooks: valid and committed without outputs; the report runs through papermill on
tiny inputs; a failing notebook is kept and named."""

import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from workbench.analysis import load_scores, save_scores
from workbench.errors import DataError
from workbench.reports import NotebookError, execute_notebook, notebook_path, run_report
from workbench.reports.notebook import NOTEBOOKS, notebooks_dir

TINY_PROTOCOL = {"svcca_n_components": 4, "tsvd_n_components": 4, "batch_size": 16}


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebooks_are_valid_without_outputs_and_have_a_parameters_cell(name):
    nb = nbformat.read(notebook_path(name), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: commit without outputs"


def test_every_notebook_in_the_folder_is_known():
    assert sorted(p.name for p in notebooks_dir().glob("*.ipynb")) == sorted(NOTEBOOKS.values())


def test_python3_kernel_runs_this_interpreter():
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    executable = spec.argv[0]
    # jupyter_client launches a spec's bare "python"/"python3" as sys.executable
    assert executable in ("python", "python3") or Path(executable).resolve() == Path(sys.executable).resolve(), (
        f"kernel python3 runs {executable}; run `{sys.executable} -m ipykernel install --sys-prefix --name python3`"
    )


def test_unknown_notebook_name_lists_the_known_ones():
    with pytest.raises(DataError, match=r"unknown notebook 'summary'; expected one of \['figures'"):
        notebook_path("summary")


def test_report_runs_on_tiny_inputs_and_writes_html_and_figures(tiny_dataset, isolated_caches, tmp_path):
    out = tmp_path / "run"
    html = run_report(["cornet_z", "sew_resnet8"], [str(tiny_dataset)], out,
                      protocol={**TINY_PROTOCOL, "time_resolved": True, "time_steps": 2})
    assert html == out.resolve() / "report.html"
    text = html.read_text()
    # the first lines: random weights said plainly, the protocol, the dataset's citation, versions
    assert "Weights: random initialisation (seed=0)" in text
    assert text.index("Weights: random initialisation") < text.index("<strong>Protocol</strong>")
    assert "Synthetic data written by the test suite." in text
    assert "spikingjelly" in text
    assert text.count("data:image/png;base64") >= 4  # figures embedded
    # a document: no code cells (nor the notebook's default parameters), a caption under every
    # figure, alt text on every image, the zero-variance policy stated
    assert "render_all_figures(" not in text and 'models = ["sew_resnet18"' not in text
    assert "No description has been provided" not in text
    assert text.count("<em>Figure ") == text.count("<img ")
    assert "Zero-variance stimuli" in text and "Unscored cells" in text
    figures = {p.name for p in (out / "figures").iterdir()}
    for stem in ("layer_curves_rsa", "best_layer_depth_cka", "family_comparison", "snn_per_step_cka",
                 "metric_rank_agreement", "rdm_cornet_z__tiny_v1-V1", "rdm_sew_resnet8__tiny_v1-V1"):
        assert {f"{stem}.png", f"{stem}.svg"} <= figures
    scores = load_scores(out)
    assert list(scores.model.values) == ["cornet_z", "sew_resnet8"] and list(scores.region.values) == ["tiny_v1/V1"]
    present = scores.layer_name.sel(model="cornet_z").values != ""
    assert present.sum() == 5 and np.isfinite(scores.score.sel(model="cornet_z", metric="rsa").values[present]).all()
    assert np.isfinite(scores.score_per_step.sel(model="sew_resnet8")).any()
    # the heatmap's brain RDM is the dataset's, the model RDM the best rsa layer's
    from workbench.data import load
    from workbench.reports import load_rdms

    pair = next(p for p in load_rdms(out / "rdms.nc").children.values() if str(p["model"].values) == "cornet_z")
    np.testing.assert_allclose(pair["brain_rdm"].values, load(tiny_dataset).rdm("V1").values, atol=1e-6)
    best = int(np.nanargmax(scores.score.sel(model="cornet_z", metric="rsa", region="tiny_v1/V1").values))
    layer = str(scores.layer_name.values[0, best])
    assert str(pair["layer_name"].values) == layer
    from workbench.activations import extract
    from workbench.metrics import rdm
    from workbench.models import create

    features = extract(create("cornet_z"), load(tiny_dataset).stimuli, [layer])[layer]
    np.testing.assert_allclose(pair["model_rdm"].values, rdm(features.values.astype(np.float64)), atol=1e-5)
    executed = nbformat.read(out / "report.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


def test_figures_notebook_regenerates_from_result_files_alone(scores, tmp_path):
    run = tmp_path / "run"
    save_scores(scores.sel(metric=["rsa", "cka"]), run)
    executed = execute_notebook(notebook_path("figures"), tmp_path / "figures.ipynb",
                                {"run_dir": str(run), "out_dir": str(tmp_path / "figs")})
    written = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert "family_comparison.png" in written and "layer_curves_rsa.svg" in written
    nb = nbformat.read(executed, as_version=4)
    shown = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(shown) == len(written) // 2


def test_failing_notebook_is_kept_and_the_error_names_the_cell(tmp_path, isolated_caches):
    out = tmp_path / "run"
    with pytest.raises(NotebookError, match=r"notebook cell \d+ \(In \[\d+\]: .*\) raised DataError: unknown dataset 'no_such_dataset'") as info:
        run_report(["cornet_z"], ["no_such_dataset"], out)
    error = info.value
    assert error.notebook == out.resolve() / "report.ipynb" and error.notebook.is_file()
    assert error.ename == "DataError"
    executed = nbformat.read(error.notebook, as_version=4)
    failing = executed.cells[error.cell_index]
    assert "report_header" in failing.source
    assert any(o.get("output_type") == "error" for o in failing.outputs)
    assert (out / "report.html").is_file()


def test_quickstart_scores_one_layer_and_plots_its_rdm(tiny_dataset, isolated_caches, tmp_path):
    protocol = {"svcca_n_components": 4, "tsvd_n_components": 4}
    executed = execute_notebook(notebook_path("quickstart"), tmp_path / "quickstart.ipynb",
                                {"dataset": str(tiny_dataset), "model": "cornet_z", "layer": "V2", "protocol": protocol})
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    # the notebook's scores are the sweep's for the same cell (issue 19, point 3)
    from workbench.analysis import Protocol, sweep

    scores = sweep(["cornet_z"], [str(tiny_dataset)], protocol=Protocol().replace(**protocol), layers=["V2"],
                   progress=False)
    shown = next(o["data"]["text/plain"] for c in nb.cells if c.source.rstrip().endswith("scores")
                 for o in c.outputs if "text/plain" in o.get("data", {}))
    values = dict(re.findall(r"'(\w+)': (?:np\.float64\()?([-\d.e]+)", shown))
    cell = scores["score"].sel(model="cornet_z", layer=0, region="tiny_v1/V1")
    assert set(values) == {"svcca", "tsvd_regression", "rsa", "cka"}, shown
    for metric, value in values.items():
        assert float(value) == pytest.approx(float(cell.sel(metric=metric)), rel=1e-6), metric
    # and its chance level, a table of score, null_mean, null_p95 and p_value by metric, the sweep's
    chance = next(o["data"]["text/plain"] for c in nb.cells if "scores.p_value" in c.source
                  for o in c.outputs if "text/plain" in o.get("data", {}))
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in chance.splitlines()[1:]}
    assert set(rows) == set(values), chance
    for metric, (_, null_mean, _, p_value) in rows.items():
        expected = scores.sel(model="cornet_z", layer=0, region="tiny_v1/V1", metric=metric)
        assert p_value == pytest.approx(float(expected["p_value"]), abs=1e-6), metric
        assert null_mean == pytest.approx(float(expected["null_mean"]), abs=1e-6), metric
