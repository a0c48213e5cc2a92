"""``workbench train mada --preset paper --smoke``: every phase of the paper preset for 2 steps on generated
GTA5 / Cityscapes folders, with the paper's network (DeepLab-v3/ResNet-101, 19 classes, random weights).

The suite runs it at 32 x 64 px (1/256 of the preset's pixels): at 512 x 1024 the run takes 8 minutes and
17 GB on 2 CPU cores (README.md, "Smoke run", has the measured times and memory). At that size a class
covers a few pixels of the 4 x 8 feature map, so ``min_pixels=1`` keeps classes present in the
descriptors (the preset's 10 would leave every score infinite).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from workbench.training import read_card, train
from workbench.training.checkpoint import load_verified
from workbench.training.smoke import SMOKE_BATCH, SMOKE_STEPS

SMALL = ["image_size=[32,64]", "min_pixels=1"]


def _smoke(tmp_path: Path, overrides: list[str], preset: str = "paper") -> Path:
    with torch.random.fork_rng(devices=[]):
        return train("mada", out=tmp_path / "run", preset=preset, overrides=overrides, smoke=True)


def _check_phases(out: Path, strategy: str,
                  stage2: frozenset = frozenset({"ce_source", "ce_active", "ce_pseudo", "anchor"})) -> None:
    """Source, stage 1 and stage 2 each ran 2 steps with their losses (stage 2: ``stage2``), and each evaluated."""
    expected = {"source": {"loss", "acc"}, f"{strategy}_stage1": {"ce_source", "ce_active"},
                f"{strategy}_stage2": set(stage2)}
    assert sorted(p.name for p in (out / "phases").iterdir()) == sorted(expected)
    for phase, losses in expected.items():
        folder = out / "phases" / phase
        assert load_verified(folder / "checkpoints" / "last.pt")["step"] == SMOKE_STEPS
        metrics = pd.read_csv(folder / "metrics.csv")
        assert losses <= set(metrics.metric) and "miou" in set(metrics.metric)
        assert (folder / "model.pt").is_file() and (folder / "evaluation.json").is_file()


def test_smoke_settings_fit_mada_on_a_cpu_and_set_overrides_still_win(tmp_path):
    from workbench.methods import get_method
    from workbench.training import resolve_config

    config = resolve_config(get_method("mada"), "paper", smoke_data=tmp_path / "a")
    assert (config.batch_size, config.adapt_batch_size, config.baselines, config.max_steps) == (
        SMOKE_BATCH, 1, False, SMOKE_STEPS)
    assert (config.arch, tuple(config.image_size), config.arch_kwargs) == (
        "deeplabv3_resnet101_seg", (512, 1024), {"pretrained_backbone": False})
    assert len(list((tmp_path / "a" / "gta5" / "images").iterdir())) == SMOKE_BATCH
    assert len(list((tmp_path / "a" / "cityscapes" / "gtFine" / "val" / "smoke").iterdir())) == 1
    kept = resolve_config(get_method("mada"), "paper", ["baselines=true", "adapt_batch_size=2"],
                          smoke_data=tmp_path / "b")
    assert (kept.baselines, kept.adapt_batch_size) == (True, 2)


@pytest.mark.slow
@pytest.mark.parametrize("preset, strategy", [("paper", "mada"), ("paper_v2", "madav2")])
def test_paper_preset_smoke_runs_every_phase_for_two_steps(tmp_path, preset, strategy):
    out = _smoke(tmp_path, SMALL, preset)
    card = read_card(out)
    assert card["smoke"] is True and card["architecture"] == "deeplabv3_resnet101_seg"
    assert card["architecture_kwargs"] == {"pretrained_backbone": False, "num_classes": 19}  # nothing downloaded
    assert (card["mada"]["pool"], card["mada"]["selected"]) == (2, 1)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["device"], config["max_steps"], config["batch_size"], config["adapt_batch_size"]) == (
        "cpu", SMOKE_STEPS, SMOKE_BATCH, 1)
    assert config["baselines"] is False and config["selection"] == strategy
    # the reference's options of the paper preset stay on
    assert (config["source_descriptors"], config["anchor_gradient_scaling"]) == ("label_and_prediction", True)
    # the generated 48 x 64 test labels kept at their size; stage 2 pseudo-labels every target image
    assert (config["pseudo_labels"], config["eval_labels"]) == ("reference", "full_resolution")
    if preset == "paper_v2":  # MADAv2's stage 2 as the reference runs it: no source stream, AEL's sampled CE
        assert (config["active_loss"], config["pseudo_entropy_drop"], config["anchor_start_epoch"]) == (
            "ohem", "lowest", 51)
        assert (config["stage2_source"], config["pseudo_loss"], config["pseudo_loss_gamma"], config["cutmix_bank"]) == (
            False, "class_sampled", 2.0, True)
        assert (config["mean_teacher"], config["teacher_batchnorm"]) == (True, "reference")
        stage2 = pd.read_csv(out / "phases" / f"{strategy}_stage2" / "metrics.csv")
        assert "ce_source" not in set(stage2.metric)
        _check_phases(out, strategy, frozenset({"ce_active", "ce_consistency", "ce_pseudo", "anchor"}))
    else:
        _check_phases(out, strategy)
    selection = pd.read_csv(out / "selection.csv")
    assert selection.strategy.tolist() == [strategy] and selection["index"].between(0, 1).all()
    assert np.isfinite(selection.score).all()  # the selected image shares classes with a source anchor
    assert pd.read_csv(out / "miou_summary.csv").model.tolist() == ["source_only", strategy]
    assert not Path(config["source_root"]).exists()  # the generated data went with the run's end


@pytest.mark.slow
@pytest.mark.paper_scale
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("preset, strategy, stage2", [
    ("paper", "mada", {"ce_source", "ce_active", "ce_pseudo", "anchor"}),
    ("paper_v2", "madav2", {"ce_active", "ce_consistency", "ce_pseudo", "anchor"}),  # no source, CutMix
], ids=["paper", "paper_v2"])
def test_paper_preset_smoke_runs_every_phase_at_the_papers_resolution(tmp_path, preset, strategy, stage2):
    """The same smoke at 512 x 1024 (``make test-paper-scale``, in CI after the demo; about 7-8 minutes and
    17.5 GB on 2 cores for each preset)."""
    out = _smoke(tmp_path, [], preset)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert tuple(config["image_size"]) == (512, 1024) and config["min_pixels"] == 10  # the preset's own
    _check_phases(out, strategy, frozenset(stage2))
    assert np.isfinite(pd.read_csv(out / "selection.csv").score).all()
