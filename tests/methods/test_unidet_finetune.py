"""Large-UniDet's per-dataset fine-tuning (the reference's configs/rvc/finetune): its config, and a micro run
that fine-tunes the joint detector on each of the three synthetic datasets."""

from __future__ import annotations

import importlib

import pytest
import torch

from workbench.errors import ValidationError
from workbench.methods import get_method
from workbench.methods.unidet.finetune import finetune_config, finetune_datasets
from workbench.methods.unidet.train import UniDetConfig
from workbench.training import read_card, resolve_config, train


def test_the_paper_preset_finetunes_each_dataset_on_the_reference_schedule():
    config = resolve_config(get_method("unidet"), "paper")
    assert (config.warmup_steps, config.warmup_start_factor, config.warmup_epochs) == (4000, 5e-5, 0)
    assert finetune_datasets(config) == ["coco", "openimages", "vistas"]
    datasets = ("coco", "openimages", "vistas")
    for dataset, epochs, cycles in (("coco", 24, 6), ("openimages", 6, 2), ("vistas", 24, 6)):  # 2x, 0.5x, 2x
        tuned = finetune_config(config, dataset, datasets)
        assert (tuned.epochs, tuned.scheduler, tuned.cycles, tuned.warmup_steps) == (epochs, "cyclic", cycles, 0)
        assert tuned.cyclic_momentum == pytest.approx(0.85 / 0.95, rel=1e-15)  # momentum_config target_ratio
        assert (tuned.lr, tuned.momentum, tuned.weight_decay, tuned.grad_clip) == (0.01, 0.9, 1e-4, 35.0)
        assert tuned.sampler == "repeat" and tuned.dataset_factors == {d: float(d == dataset) for d in datasets}
        assert tuned.finetune == {} and not tuned.baselines and tuned.image_size == config.image_size
    assert finetune_datasets(config.replace(finetune_only=("vistas",))) == ["vistas"]


def test_a_finetuning_entry_may_change_only_the_schedule_and_sampling():
    with pytest.raises(ValidationError, match=r"^UniDetConfig\.finetune\['A'\] sets \['image_size'\]: a fine-tuning "
                                              r"keeps the joint run's detector, data and execution; it may set only "
                                              r"epochs, optimizer, lr"):
        UniDetConfig(finetune={"A": {"epochs": 2, "image_size": 32}})
    with pytest.raises(ValidationError, match=r"^UniDetConfig\.finetune\['A'\]: UniDetConfig\.scheduler='step' is "
                                              r"not valid"):
        UniDetConfig(finetune={"A": {"scheduler": "step"}})
    with pytest.raises(ValidationError, match=r"^UniDetConfig\.finetune\['A'\] must be a mapping of training "
                                              r"fields, found 3$"):
        UniDetConfig(finetune={"A": 3})
    with pytest.raises(ValidationError, match=r"^UniDetConfig\.finetune_only names \['B'\], which have no entry in "
                                              r"UniDetConfig\.finetune \(\['A'\]\)$"):
        UniDetConfig(finetune={"A": {}}, finetune_only=("B",))
    unidet_train = importlib.import_module("workbench.methods.unidet.train")
    with pytest.raises(ValidationError, match=r"UniDetConfig\.finetune names \['D'\], which are not datasets of the "
                                              r"run \(\['A', 'B', 'C'\]\)"):
        unidet_train.load_data(UniDetConfig(synthetic_train=2, synthetic_test=2, finetune={"D": {}}))


#: The micro preset, then one fine-tuning step on each dataset (6 images, batch 6) at a negligible lr.
#: (A nested mapping on the command line ends with ", }" for the --set parser.)
FINETUNE = ["baselines=false",
            "finetune={A: {lr: 1.0e-9, scheduler: cyclic}, B: {lr: 1.0e-9}, C: {lr: 1.0e-9, sampler: weighted}, }"]


@pytest.mark.slow
def test_the_joint_detector_is_finetuned_on_each_dataset_alone(tmp_path, monkeypatch):
    unidet_train = importlib.import_module("workbench.methods.unidet.train")  # the module, not the function
    real_step, seen = unidet_train.detection_step, []

    def recording_step(network, module, images, targets, config):
        seen.append(sorted({int(t["dataset"]) for t in targets}))
        return real_step(network, module, images, targets, config)

    monkeypatch.setattr(unidet_train, "detection_step", recording_step)
    with torch.random.fork_rng(devices=[]):
        out = train("unidet", out=tmp_path / "run", preset="micro", overrides=FINETUNE)
    assert seen[-3:] == [[0], [1], [2]]  # after the joint steps over A, B and C: one step on each alone
    assert len(seen) == 6 and set().union(*seen[:3]) == {0, 1, 2}
    config, data, _, _, _ = unidet_train.load_run(out)
    fresh = unidet_train.make_detector(config, data.space, seed=config.seed + 1)[1]
    weights = [name for name, _ in fresh.named_parameters()]  # not BatchNorm's statistics, which data move
    joint = torch.load(out / "detector.pt", weights_only=True)["state_dict"]
    assert max(float((fresh.state_dict()[k] - joint[k]).abs().max()) for k in weights) > 0.05
    card = read_card(out)
    for dataset in ("A", "B", "C"):
        folder = out / "snapshots" / f"finetune_{dataset}"
        saved = torch.load(folder / "detector.pt", weights_only=True)
        assert saved["finetuned_on"] == dataset and saved["variant"] == "hierarchy"
        moved = max(float((saved["state_dict"][k] - joint[k]).abs().max()) for k in weights)
        assert moved < 1e-6  # started from the joint detector (lr 1e-9), not from a fresh one
        evaluation = card["unidet"]["variants"][f"finetune_{dataset}"]["evaluation"]
        others = {"A", "B", "C"} - {dataset}  # evaluated on its own dataset's test images only
        assert f"mAP_{dataset}" in evaluation and not any(k.endswith(f"_{o}") for o in others for k in evaluation)
        assert unidet_train.evaluate(folder) == pytest.approx(evaluation, nan_ok=True)  # the reloaded detector
