"""``workbench train M --preset paper --smoke``: the generated files in each dataset's format, the smoke
settings, and a smoke run of every paper preset (every fit 2 steps, the paper's architecture and input size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from workbench.data.training import load_training_data
from workbench.data.training.smoke import write_cifar, write_cub200, write_fscil_split, write_imagenet
from workbench.errors import ValidationError
from workbench.methods import get_method
from workbench.training import TrainConfig, read_card, resolve_config, train
from workbench.training.checkpoint import load_verified
from workbench.training.smoke import SMOKE_BATCH, SMOKE_STEPS, smoke_values, write_smoke_data


def test_generated_cifar_pickles_load_with_every_class(tmp_path):
    c100 = load_training_data("cifar100", root=write_cifar(tmp_path, "cifar100", train_per_class=2), augment=False)
    assert c100.num_classes == 100 and len(c100.train) == 200 and len(c100.test) == 100
    assert np.bincount(c100.train.targets).tolist() == [2] * 100 and c100.test.targets == list(range(100))
    c10 = load_training_data("cifar10", root=write_cifar(tmp_path, "cifar10", train_per_class=3), augment=False)
    assert c10.num_classes == 10 and np.bincount(c10.train.targets).tolist() == [3] * 10
    assert c10.train[0][0].shape == (3, 32, 32)
    with pytest.raises(ValidationError, match="name is 'cifar5'; expected 'cifar10' or 'cifar100'"):
        write_cifar(tmp_path, "cifar5")


def test_generated_imagenet_tree_and_cub_files_load_at_224_px(tmp_path):
    imagenet = load_training_data("imagenet", root=write_imagenet(tmp_path, classes=3), augment=False)
    assert imagenet.classes == ("n00000000", "n00000001", "n00000002") and len(imagenet.test) == 3
    assert imagenet.train[0][0].shape == (3, 224, 224)
    cub = load_training_data("cub200", root=write_cub200(tmp_path, classes=20, test_every=10), augment=False)
    assert cub.num_classes == 20 and len(cub.train) == 20 and cub.test.targets == [0, 10]
    assert cub.train[0][0].shape == (3, 224, 224) and Path(cub.train.paths[3]).parent.name == "004.Class_004"


def test_generated_gta5_and_cityscapes_folders_load_as_mada_domains(tmp_path):
    config = resolve_config(get_method("mada"), "paper", smoke_data=tmp_path)
    assert (config.source_root, config.target_root) == (str(tmp_path / "gta5"), str(tmp_path / "cityscapes"))
    from workbench.methods.mada.data import load_domains

    domains = load_domains(config)
    assert (len(domains.train), len(domains.test), domains.num_classes) == (2, 1, 19)
    image, label = domains.train[0]
    assert image.shape == (3, 512, 1024) and label.shape == (512, 1024)  # the paper's resolution
    assert set(label.unique().tolist()) <= set(range(19)) | {255} and 255 in label.unique().tolist()


def test_generated_detection_files_load_as_unidet_sources_with_every_class(tmp_path):
    from workbench.methods.unidet.train import build_sources, build_space

    config = resolve_config(get_method("unidet"), "paper", smoke_data=tmp_path)
    assert config.limit_test == 0 and Path(config.label_map).is_file()
    train_sources, test_sources = build_sources(config)
    assert [(s.name, len(s.labels), len(s), len(t)) for s, t in zip(train_sources, test_sources)] == [
        ("coco", 80, 2, 1), ("openimages", 601, 2, 1), ("vistas", 37, 2, 1)]
    assert build_space(config, train_sources).num_classes == 80 + 601 + 37


def test_generated_fscil_split_has_the_reference_session_layout(tmp_path):
    from workbench.methods.savc.fscil import read_split

    cifar = load_training_data("cifar100", root=write_cifar(tmp_path, "cifar100", train_per_class=2), augment=False)
    split = read_split(write_fscil_split(tmp_path / "c", "cifar100", cifar.train.targets), cifar.train.targets)
    assert split.num_sessions == 9 and split.num_base == 60 and len(split.sessions[0]) == 120
    assert [len(c) for c in split.classes[1:]] == [5] * 8 and split.order == tuple(range(100))
    cub = load_training_data("cub200", root=write_cub200(tmp_path), augment=False)
    folder = write_fscil_split(tmp_path / "u", "cub200", cub.train.targets, cub.train.paths)
    first = (folder / "session_2.txt").read_text().splitlines()[0]
    assert first == "CUB_200_2011/images/101.Class_101/Class_101_201.jpg"
    split = read_split(folder, cub.train.targets, cub.train.paths)
    assert split.num_sessions == 11 and split.num_base == 100 and [len(c) for c in split.classes[1:]] == [10] * 10


def test_smoke_values_change_how_long_and_where_not_what():
    lats = get_method("lats").config_cls
    preset = {"arch": "resnet50", "batch_size": 256, "D": None, "device": "cuda", "num_workers": 16, "epochs": 100}
    values = smoke_values(lats, preset)
    assert values["arch"] == "resnet50" and values["epochs"] == 100
    assert (values["batch_size"], values["device"], values["num_workers"], values["max_steps"]) == (2, "cpu", 0, 2)
    assert values["D"] == lats().D  # left unset by the preset: the class default
    part = smoke_values(get_method("part").config_cls,
                        {"arch_kwargs": {"backbone": "resnet50", "pretrained_backbone": True}})
    assert part["arch_kwargs"] == {"backbone": "resnet50", "pretrained_backbone": False}  # nothing downloaded
    savc = smoke_values(get_method("savc").config_cls, {"backbone_weights": "imagenet"})
    assert savc["backbone_weights"] is None  # nothing downloaded
    assert smoke_values(get_method("savc").config_cls, {"backbone_weights": "r18.pt"})["backbone_weights"] == "r18.pt"
    qsam = smoke_values(get_method("qsam").config_cls, {"meta_batch_size": 128})
    assert qsam["meta_batch_size"] == qsam["batch_size"] == SMOKE_BATCH
    with pytest.raises(ValidationError, match=r"no generator of the dataset 'digits32' .*'cifar10', 'cifar100', "
                                              r"'coco\+openimages\+vistas', 'cub200', 'gta5_cityscapes', 'imagenet'"):
        write_smoke_data(TrainConfig(), "unused")


def test_set_overrides_win_over_the_smoke_settings(tmp_path):
    config = resolve_config(get_method("supervised"), "paper", ["batch_size=4"], smoke_data=tmp_path)
    assert config.batch_size == 4 and config.max_steps == SMOKE_STEPS and config.device == "cpu"
    assert config.data_root == str(tmp_path / "cifar10") and (tmp_path / "cifar10" / "cifar-10-batches-py").is_dir()


# (method, preset, --set, expected architecture, input size, classes, fits); baselines off for the
# multi-network methods to keep the suite short (their baselines are other fits of the same phases)
SMOKE_CASES = {
    "lats-resnet50": ("lats", "paper", [], "resnet50", 224, 1000, 1),
    "lats-sew_resnet18": ("lats", "paper", ["arch=sew_resnet18"], "sew_resnet18", 224, 1000, 1),
    "dst": ("dst", "paper", [], "fsnn18", 224, 1000, 1),
    "qsam": ("qsam", "paper", ["baselines=false"], "qsam_resnet18", 32, 10, 2),
    "savc-cifar100": ("savc", "paper", ["baselines=false"], "savc_net", 32, 100, 1),
    # the CUB recipe: its ImageNet backbone weights are left out by the smoke run (no download)
    "savc-cub200": ("savc", "paper_cub", ["baselines=false"], "savc_net", 224, 200, 1),
    "part": ("part", "paper", ["baseline=false"], "part_net", 448, 200, 1),
    # a backbone: no class head; the joint detector, then one of its 3 fine-tunings (each is the same phase
    # on another dataset: tests/methods/test_unidet_finetune.py runs all three on the micro preset)
    "unidet": ("unidet", "paper", ["baselines=false", "finetune_only=openimages"], "unidet_backbone", 512, None, 2),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(SMOKE_CASES))
def test_paper_preset_smoke_runs_every_fit_for_two_steps(tmp_path, case):
    method, preset, overrides, arch, size, classes, fits = SMOKE_CASES[case]
    with torch.random.fork_rng(devices=[]):
        out = train(method, out=tmp_path / "run", preset=preset, overrides=overrides, smoke=True)
    card = read_card(out)
    assert card["smoke"] is True and card["architecture"] == arch
    assert card["preprocessing"]["input_size"] == size
    assert classes is None or card["architecture_kwargs"]["num_classes"] == classes
    checkpoints = sorted(out.rglob("checkpoints/last.pt"))
    assert len(checkpoints) == fits and all(load_verified(p)["step"] == SMOKE_STEPS for p in checkpoints)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["device"], config["max_steps"], config["batch_size"]) == ("cpu", SMOKE_STEPS, SMOKE_BATCH)
    generated = config["data_root"] or config["label_map"]
    assert generated and not Path(generated).exists()  # the generated data went with the run's end
    if method == "unidet":
        _check_unidet_finetuning(out, card)


def _check_unidet_finetuning(out: Path, card: dict) -> None:
    """The paper preset's fine-tuning phase left a finished run, trained on the reference's OpenImages
    schedule (0.5x: 6 epochs, 2 cycles of mmcv's cyclic lr); the joint run warmed up in iterations."""
    import pandas as pd

    folder = out / "snapshots" / "finetune_openimages"
    for name in ("detector.pt", "model.pt", "model_card.json", "metrics.csv", "config.yaml"):
        assert (folder / name).is_file(), folder / name
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["finetune_openimages"]
    tuned = yaml.safe_load((folder / "config.yaml").read_text())
    assert (tuned["epochs"], tuned["scheduler"], tuned["cycles"], tuned["warmup_steps"]) == (6, "cyclic", 2, 0)
    assert tuned["cyclic_momentum"] == pytest.approx(0.85 / 0.95)
    assert tuned["dataset_factors"] == {"coco": 0.0, "openimages": 1.0, "vistas": 0.0}
    assert read_card(folder)["finetuned_on"] == "openimages"
    evaluated = card["unidet"]["variants"]["finetune_openimages"]["evaluation"]  # its test images only
    assert "mAP_openimages" in evaluated and not any(k.endswith(("_coco", "_vistas")) for k in evaluated)
    lr = pd.read_csv(folder / "metrics.csv").query("metric == 'lr'").value.tolist()
    # one step an epoch (2 images): cycles of 6 // 2 = 3 steps, the first int(0.4 x 3) = 1 up; the lr
    # logged after step 1 is step 1's, the top of the cycle (10 x lr)
    assert lr[0] == pytest.approx(0.1, rel=1e-9)
    joint = pd.read_csv(out / "metrics.csv").query("metric == 'lr'").value.tolist()
    assert joint[:2] == pytest.approx([0.01 * (5e-5 + (1 - 5e-5) * s / 4000) for s in (1, 2)], rel=1e-9)


@pytest.mark.slow
def test_cli_smoke_flag_trains_the_paper_preset_on_generated_cifar(tmp_path):
    from tests.training.conftest import workbench_cli

    result = workbench_cli("train", "supervised", "--preset", "paper", "--smoke", "--out", str(tmp_path / "run"))
    assert "trained supervised (resnet18) into" in result.stdout
    card = read_card(tmp_path / "run")
    assert card["smoke"] is True and card["data"]["name"] == "cifar10"
    assert card["architecture_kwargs"] == {"num_classes": 10}
    assert load_verified(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == SMOKE_STEPS
