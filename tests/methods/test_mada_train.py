"""MADA end to end on a micro config: run directory, baselines as snapshots, re-evaluation, scoring as a model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch


@pytest.fixture(scope="module")
def micro_run(train_micro):
    return train_micro("mada")


@pytest.mark.slow
def test_micro_run_trains_every_strategy_from_one_warmup_and_reevaluates(micro_run):
    from workbench.methods.mada import evaluate
    from workbench.training import list_snapshots, read_card

    out = micro_run
    card = read_card(out)
    assert card["method"] == "mada" and card["architecture"] == "seg_cnn" and card["family"] == "cnn"
    assert card["mada"]["selection"] == "madav2" and card["mada"]["selected"] == 2 and card["mada"]["pool"] == 20
    assert set(card["evaluation"]) == {"test_miou", "test_pixel_acc"}
    # recomputed from the files alone: the same numbers, for the run and each snapshot
    assert evaluate(out) == pytest.approx(card["evaluation"], abs=1e-12)
    snapshots = {p.name: p for p in list_snapshots(out)}
    assert set(snapshots) == {"source_only", "mada", "centroid", "random", "self_training"}
    summary = pd.read_csv(out / "miou_summary.csv").set_index("model")
    for name, path in snapshots.items():
        assert evaluate(path)["test_miou"] == pytest.approx(summary.loc[name, "miou"], abs=1e-12)
    assert summary.loc["madav2", "miou"] == pytest.approx(card["evaluation"]["test_miou"])
    per_class = pd.read_csv(out / "miou.csv")
    for name, rows in per_class.groupby("model"):
        assert np.nanmean(rows.iou) == pytest.approx(summary.loc[name, "miou"])
    selection = pd.read_csv(out / "selection.csv")
    assert selection.groupby("strategy").size().to_dict() == {s: 2 for s in ("madav2", "mada", "centroid", "random")}
    # stage 2 ran with the anchor loss and the mean teacher; the teacher is in the checkpoint
    metrics = pd.read_csv(out / "phases" / "madav2_stage2" / "metrics.csv")
    assert {"anchor", "ce_pseudo", "ce_active"} <= set(metrics.metric)
    state = torch.load(out / "phases" / "madav2_stage2" / "checkpoints" / "last.pt", weights_only=False)
    assert state["callbacks"][0]["teacher"] is not None and state["callbacks"][0]["bank"]["centers"].shape[0] == 3
    # the run directory is a zoo model whose analysis layers are the encoder and decoder
    import workbench.models

    model = workbench.models.create(str(out))
    assert list(model.layers) == ["layer1", "layer2", "layer3", "layer4", "decoder"]
    assert json.loads((out / "model_card.json").read_text())["preprocessing"]["input_size"] == 16


#: GroupNorm and no flips: each sample's output and each rank's batches do not depend on how
#: the global batch is split, so torchrun's processes can follow one process exactly.
DDP = ["augment=false", "arch_kwargs={widths: [8, 8, 8], feature_dim: 8, norm: group}"]


@pytest.mark.slow
def test_two_processes_follow_the_one_process_curves_in_every_phase(tmp_path, train_micro, train_under_torchrun):
    # stage 2 too: its features go through DDP, its anchors see the whole global batch
    single = train_micro("mada", DDP)
    double = train_under_torchrun("mada", DDP, tmp_path / "ddp", like=single, same_curves=True)
    assert "madav2_stage2" in {p.name for p in (single / "phases").iterdir()}
    picked = [pd.read_csv(run / "selection.csv")[["strategy", "index"]] for run in (single, double)]
    assert picked[0].equals(picked[1])


def test_an_architecture_that_is_not_a_segmenter_is_refused_by_name(tmp_path):
    from workbench.errors import ValidationError
    from workbench.training import train

    with pytest.raises(ValidationError, match=r"'arch' is 'small_cnn', not a segmentation network; MADA trains"):
        train("mada", out=tmp_path / "run", preset="micro", overrides=["arch=small_cnn", "arch_kwargs={}"])


@pytest.mark.slow
def test_scores_by_condition_recomputes_the_runs_selection_per_target_condition(micro_run):
    from workbench.methods.mada.analysis import scores_by_condition
    from workbench.methods.mada.data import generate_scenes
    from workbench.training import read_card
    from workbench.training.evaluation import load_run_config

    config = load_run_config(micro_run, read_card(micro_run))
    table = scores_by_condition(micro_run)
    _, _, conditions = generate_scenes(config.scene_seed, "target_train", config.target_images, config.image_size[0])
    counts = np.bincount(conditions, minlength=3)
    assert table.condition.tolist() == ["day", "dusk", "fog"] and table.images.tolist() == counts.tolist()
    assert table.pool_share.tolist() == pytest.approx((counts / counts.sum()).tolist())
    selection = pd.read_csv(micro_run / "selection.csv")
    for strategy in ("mada", "madav2", "centroid", "random"):
        picked = np.bincount(selection[selection.strategy == strategy].condition, minlength=3)
        assert table[f"selected_{strategy}"].tolist() == picked.tolist()
    # the recomputed top-budget scores are the run's own MADA picks (2 of 20 images), which score
    # at least the median of every condition they were drawn from
    assert (table.top_share * 2).tolist() == pytest.approx(table.selected_mada.tolist())
    mada = selection[selection.strategy == "mada"]
    medians = table.set_index(np.arange(3)).median_score
    assert all(row.score >= medians[row.condition] for row in mada.itertuples())
