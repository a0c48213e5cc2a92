"""QSAM end to end on a micro config: the run directory, re-evaluation from files, snapshots, resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch


@pytest.fixture(scope="module")
def qsam_run(train_micro):
    return train_micro("qsam")


@pytest.mark.slow
def test_run_directory_holds_qsam_its_baselines_and_the_tables(qsam_run):
    from workbench.methods.qsam import evaluate
    from workbench.training import list_snapshots, read_card

    card = read_card(qsam_run)
    assert card["method"] == "qsam" and card["architecture"] == "qsam_cnn"
    assert card["architecture_kwargs"]["branches"] == 4
    assert set(card["evaluation"]) == {"test_acc", "test_acc_q90", "test_acc_q50", "test_acc_q10"}
    assert card["evaluation"]["test_acc"] == pytest.approx(np.mean([card["evaluation"][f"test_acc_q{q}"]
                                                                   for q in (90, 50, 10)]))
    # re-evaluated from the files alone: the same numbers
    assert evaluate(qsam_run) == pytest.approx(card["evaluation"], abs=1e-12)
    snapshots = {p.name: p for p in list_snapshots(qsam_run)}
    assert set(snapshots) == {"qsam_noqac", "single_bn", "uncompressed"}
    for name, path in snapshots.items():
        snap = read_card(path)
        assert evaluate(path) == pytest.approx(snap["evaluation"], abs=1e-12)
        assert snap["architecture_kwargs"]["branches"] == (4 if name == "qsam_noqac" else 1)
    accuracy = pd.read_csv(qsam_run / "accuracy_by_quality.csv")
    assert len(accuracy) == 4 * 3 and set(accuracy.model) == {"qsam", *snapshots}
    weights = pd.read_csv(qsam_run / "mixing_weights.csv")
    cols = [c for c in weights.columns if c.startswith("w_q")]
    assert cols == ["w_q90", "w_q60", "w_q30", "w_q10"]
    np.testing.assert_allclose(weights[cols].sum(1), 1.0, rtol=1e-5)
    roles = dict(zip(weights[weights.model == "qsam"].quality, weights[weights.model == "qsam"].role))
    assert roles[90] == "base" and roles[80] == "held_out" and roles[0] == "unseen"
    metrics = pd.read_csv(qsam_run / "metrics.csv")
    assert {"loss", "acc", "qf_acc"} <= set(metrics.metric)
    # the run's training time is its phases' own, each kept beside the phase's evaluation
    phases = sorted((qsam_run / "phases").iterdir())
    walls = [json.loads((p / "wall_time.json").read_text())["wall_time_s"] for p in phases]
    assert [p.name for p in phases] == sorted(["qsam_stage1", "qsam_stage2", "noqac_stage1", "noqac_stage2",
                                               "single_bn", "uncompressed"]) and min(walls) > 0
    assert card["wall_time_s"] == pytest.approx(sum(walls), abs=1e-3)  # the card keeps milliseconds
    # stage 2 is evaluated at the evaluation qualities (the reference's best-epoch criterion is their mean)
    stage2 = json.loads((qsam_run / "phases" / "qsam_stage2" / "evaluation.json").read_text())
    assert set(stage2) == {"test_acc", "test_acc_q90", "test_acc_q50", "test_acc_q10"}


@pytest.mark.slow
def test_paper_wiring_on_the_micro_scale_keeps_stage2_best_epoch_labelled(train_micro):
    from workbench.training import read_card

    run = train_micro("qsam", ["best_metric=acc", "meta_images=separate", "augment=true", "baselines=false",
                               "meta_epochs=2"])
    card = read_card(run)
    stage2 = pd.read_csv(run / "phases" / "qsam_stage2" / "metrics.csv")
    per_epoch = stage2[(stage2.split == "test") & (stage2.metric == "acc")].value.tolist()
    assert len(per_epoch) == 2
    assert card["evaluation"]["best_test_acc"] == pytest.approx(max(per_epoch), abs=1e-12)   # csv round trip
    best = max(range(2), key=lambda e: (round(per_epoch[e], 12), -e))                   # a tie keeps the first
    assert card["evaluation"]["best_epoch"] == 1 + best
    assert card["evaluation_labels"]["best_test_acc"].startswith("best epoch")
    assert card["evaluation_labels"]["test_acc"].startswith("final epoch")
    assert (run / "phases" / "qsam_stage2" / "checkpoints" / "best.pt").is_file()
    assert not (run / "phases" / "qsam_stage1" / "checkpoints" / "best.pt").exists()   # stage 1 keeps none


@pytest.mark.slow
def test_run_is_a_zoo_model_and_classifies_files_with_their_tables(qsam_run, tmp_path):
    from PIL import Image

    import workbench.models
    from workbench.methods.qsam import predict_files
    from workbench.methods.qsam.jpeg import read_quantization
    from workbench.training.evaluation import load_run_network

    model = workbench.models.create(str(qsam_run))
    assert model is not None
    _, network = load_run_network(qsam_run)
    rng = np.random.default_rng(0)
    files = []
    for i, quality in enumerate((85, 15)):
        path = tmp_path / f"img{i}.jpg"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path, quality=quality)
        files.append(path)
    png = tmp_path / "img.png"
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(png)
    files.append(png)
    frame = predict_files(qsam_run, files)
    assert list(frame.kind) == ["jpeg", "jpeg", "uncompressed"]
    assert frame.qac.iloc[2] == 1.0 and frame.qac.iloc[0] > frame.qac.iloc[1]
    tables = torch.stack([torch.from_numpy(read_quantization(f).vector) for f in files])
    w = network.module.mixing_weights(tables).detach()
    np.testing.assert_allclose(frame[[f"w_{k}" for k in range(4)]].to_numpy(), w.numpy(), rtol=1e-6)


@pytest.mark.slow
def test_resume_skips_finished_phases_and_reproduces_the_weights(qsam_run, tmp_path):
    import shutil

    from workbench.training import train
    from workbench.training.checkpoint import verify

    copy = tmp_path / "copy"
    shutil.copytree(qsam_run, copy)
    (copy / "model_card.json").unlink()
    shutil.rmtree(copy / "phases" / "uncompressed")        # one phase to train again
    before = json.loads((qsam_run / "model_card.json").read_text())
    with torch.random.fork_rng(devices=[]):
        train("qsam", out=copy, preset="micro", resume=True)
    after = json.loads((copy / "model_card.json").read_text())
    assert after["weights_sha256"] == before["weights_sha256"] == verify(copy / "model.pt", what="weights")
    assert after["evaluation"] == before["evaluation"]
    assert after["qsam"]["baselines"] == before["qsam"]["baselines"]   # the retrained phase is bit-identical
