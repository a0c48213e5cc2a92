"""``workbench methods list``, ``train`` and ``report-run`` from the command line."""

import pytest

from tests.training.conftest import workbench_cli
from workbench.cli import main


def test_methods_list_names_each_method_with_presets_and_paper(capsys):
    assert main(["methods", "list"]) == 0
    out = capsys.readouterr().out
    assert "supervised" in out and "presets: micro, paper, tiny" in out


@pytest.mark.parametrize("args, message", [
    (["train", "supervized", "--out", "x"], "unknown method 'supervized'; did you mean 'supervised'?"),
    (["train", "supervised", "--preset", "huge", "--out", "x"], "unknown preset 'huge' of method 'supervised'"),
    (["train", "supervised", "--out", "x", "--set", "epochs=abc"], "--set 'epochs=abc': epochs expects an integer, found 'abc'"),
    (["train", "supervised", "--out", "x", "--set", "nosuch=1"], "--set 'nosuch=1': SupervisedConfig has no field 'nosuch'"),
])
def test_bad_arguments_exit_1_with_one_line(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_report_run_of_a_folder_without_card_names_the_file(tmp_path, capsys):
    assert main(["report-run", str(tmp_path)]) == 1
    assert f"{tmp_path}/model_card.json does not exist" in capsys.readouterr().err


@pytest.mark.gpu
def test_cuda_training_uses_bf16_autocast(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    workbench_cli("train", "supervised", "--device", "cuda", "--out", str(tmp_path / "run"),
                  "--set", "limit_train=64", "--set", "limit_test=64", "--set", "batch_size=16", "--set", "epochs=1")
    from workbench.training import read_card

    assert read_card(tmp_path / "run")["device"].startswith("cuda")


def test_a_failing_report_cell_is_kept_and_named(micro_run, tmp_path, monkeypatch, capsys):
    import shutil

    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    run = tmp_path / "run"
    shutil.copytree(micro_run, run)
    (tmp_path / "notebooks" / "methods").mkdir(parents=True)
    notebook = new_notebook(cells=[new_code_cell('run_dir = ""', metadata={"tags": ["parameters"]}),
                                   new_code_cell("assert run_dir, 'no run'"),
                                   new_code_cell("raise RuntimeError('broken figure')")],
                            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(notebook, tmp_path / "notebooks" / "methods" / "supervised.ipynb")
    monkeypatch.setenv("WORKBENCH_NOTEBOOKS", str(tmp_path / "notebooks"))
    assert main(["report-run", str(run)]) == 1
    err = capsys.readouterr().err
    assert "raise RuntimeError('broken figure')" in err and "RuntimeError: broken figure" in err
    assert str(run / "report.ipynb") in err
    executed = nbformat.read(run / "report.ipynb", as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in executed.cells for o in c.get("outputs", []))
    assert not (run / "report.html").exists()


def test_ctrl_c_during_train_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("workbench.training.train", interrupted)
    assert main(["train", "supervised", "--out", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err == "workbench train: interrupted; run the same command again to resume\n"


def test_set_takes_several_values_and_can_be_repeated():
    from workbench.cli import build_parser

    argv = ["train", "supervised", "--out", "run", "--set", "epochs=1", "batch_size=8", "--set", "lr=0.1",
            "--seed", "3"]
    args = build_parser().parse_args(argv)
    assert args.overrides == ["epochs=1", "batch_size=8", "lr=0.1"] and args.seed == 3
    assert build_parser().parse_args(argv[:4]).overrides == []
