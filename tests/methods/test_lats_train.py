"""LATS on the shared loop: micro runs, exported weights, snapshots, evaluation, config errors."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from workbench.errors import ValidationError
from workbench.methods.lats import pruning
from workbench.methods.lats.schedules import lats_threshold


def _train(tmp_path, name, extra=()):
    from workbench.training import train

    return train("lats", out=tmp_path / name, preset="micro", overrides=["schedule=lats", *extra])


def _plain(card):
    from workbench.models.registry import build_architecture

    return build_architecture(card["architecture"], **card["architecture_kwargs"]).module


@pytest.mark.slow
def test_micro_lats_run_exports_pruned_plain_weights_and_logs_the_schedule(tmp_path):
    from workbench.methods.lats import evaluate
    from workbench.models import create

    D = 0.03
    out = _train(tmp_path, "lats", [f"D={D}"])
    card = json.loads((out / "model_card.json").read_text())
    assert card["method"] == "lats" and card["pruning"]["schedule"] == "lats"
    assert card["pruning"]["final_threshold"] == pytest.approx(D)
    # model.pt is a plain state dict of the zoo architecture; its zeros are the card's
    state = torch.load(out / "model.pt", weights_only=True)
    net = _plain(card)
    net.load_state_dict(state, strict=True)
    report = pruning.sparsity_report(net)
    for name, layer in card["sparsity"]["layers"].items():
        assert layer["zeros"] == report.layers[name].zeros
        assert layer["pruned"] == (name in card["pruning"]["pruned_layers"])
    assert card["sparsity"]["overall"] == pytest.approx(report.overall)
    assert card["sparsity"]["layers"]["layer1.0"]["zeros"] == 0  # first layer kept dense
    assert report.pruned_overall > 0
    # every logged threshold (log_every=1) is the LATS schedule after that many steps: the
    # pruning epochs weighted 1 + cos(pi n/N) (the reference's), not by the run's learning rate
    metrics = pd.read_csv(out / "metrics.csv")
    thr = metrics[(metrics.split == "train") & (metrics.metric == "threshold")]
    spe, epochs, dense = 2, 3, 1
    weights = [1 + math.cos(math.pi * n / (epochs - dense)) for n in range(epochs - dense)]
    for step, value in zip(thr.step, thr.value):
        expected = 0.0 if step <= dense * spe else lats_threshold(step - dense * spe, spe, weights, D)
        assert value == pytest.approx(expected, abs=1e-9)
    assert len(thr) == epochs * spe
    # snapshots: the dense network and one per pruning epoch, each a model name
    snaps = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snaps == ["dense", "prune_e02", "prune_e03"]
    dense_card = json.loads((out / "snapshots" / "dense" / "model_card.json").read_text())
    assert dense_card["sparsity"] == 0.0 and dense_card["threshold"] == 0.0
    assert create(str(out / "snapshots" / "prune_e02")).layers == tuple(card["layers"])
    # re-evaluation from the files agrees with the card
    again = evaluate(out)
    assert again["test_acc"] == pytest.approx(card["evaluation"]["test_acc"])
    assert again["sparsity"] == pytest.approx(card["sparsity"]["overall"])
    assert again["sparsity_pruned"] == pytest.approx(card["sparsity"]["pruned_overall"])
    snap = evaluate(out / "snapshots" / "dense")
    assert snap["sparsity"] == 0.0
    # the pruning path: dense first, the run itself last (prune_e03 is the same network)
    from workbench.methods.lats.analysis import layer_cka_to_reference, pruning_path

    path = pruning_path(out)
    assert list(path.index) == ["dense", "prune_e02", "final"]
    assert path.loc["final", "sparsity"] == pytest.approx(card["sparsity"]["overall"])
    assert path.loc["final", "test_acc"] == pytest.approx(card["evaluation"]["test_acc"])
    assert list(pruning_path(out, max_networks=2).index) == ["dense", "final"]
    images = list(torch.randint(0, 256, (12, 32, 32, 3), generator=torch.Generator().manual_seed(0),
                                dtype=torch.uint8).numpy())
    cka = layer_cka_to_reference(list(path.path), path.path.iloc[0], images, labels=list(path.index))
    assert len(cka) == 3 * len(card["layers"])
    dense_cka = cka[cka.network == "dense"].cka.dropna().to_numpy()
    assert len(dense_cka) > 0 and dense_cka == pytest.approx(1.0)  # NaN: features constant over images
    assert (cka.cka.dropna() <= 1 + 1e-9).all()


@pytest.fixture(scope="module")
def oneshot_run(train_micro):
    return train_micro("lats")  # the micro preset prunes one-shot to 80 %


@pytest.mark.slow
def test_micro_oneshot_run_prunes_exactly_the_target_fraction(oneshot_run):
    out = oneshot_run
    card = json.loads((out / "model_card.json").read_text())
    layers = card["pruning"]["pruned_layers"]
    numel = sum(card["sparsity"]["layers"][n]["numel"] for n in layers)
    zeros = sum(card["sparsity"]["layers"][n]["zeros"] for n in layers)
    assert zeros == round(0.8 * numel)
    dense = torch.load(out / "snapshots" / "dense" / "model.pt", weights_only=True)
    final = torch.load(out / "model.pt", weights_only=True)
    # the mask was chosen on the dense network's magnitudes: every weight kept at the end
    # was among the largest (1 - 0.8) of the dense weights
    masks = pruning.magnitude_masks({n: dense[f"{n}.weight"] for n in layers}, 0.8)
    for n in layers:
        assert torch.equal(final[f"{n}.weight"] != 0, masks[n])


def test_soft_threshold_on_the_small_sew_resnet_keeps_names_and_exports():
    from workbench.training import build_network

    network = build_network("small_sew_resnet", num_classes=10, seed=0)
    plain_keys = list(network.module.state_dict())
    layers = pruning.apply_soft_threshold(network.module)
    assert layers[0] != "conv1" and layers[-1] != "fc" and "layer1.conv1" in layers
    pruning.set_threshold(network.module, 0.05)
    x = torch.randn(2, 3, 32, 32)
    network.module.eval()
    with torch.no_grad():
        out = network.logits(x)
    state = pruning.export_effective_state_dict(network.module)
    assert list(state) == plain_keys
    plain = build_network("small_sew_resnet", num_classes=10, seed=1)
    plain.module.load_state_dict(state, strict=True)
    plain.module.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain.logits(x), out)
    assert pruning.sparsity_report(plain.module).pruned_overall > 0


@pytest.mark.parametrize("overrides, message", [
    (["dense_epochs=8"], "dense_epochs < epochs"),
    (["schedule=oneshot", "dense_epochs=0"], "magnitude pruning needs trained weights"),
    (["schedule=cubic"], "LATSConfig.schedule='cubic' is not valid; expected one of"),
    (["D=-1"], "final threshold"),
    (["target_sparsity=1.0"], r"target_sparsity' must be in \[0, 1\)"),
])
def test_bad_config_values_are_named(overrides, message):
    from workbench.methods import get_method
    from workbench.training import resolve_config

    with pytest.raises(ValidationError, match=message):
        resolve_config(get_method("lats"), "tiny", overrides)


def test_lats_is_registered_with_both_presets():
    from workbench.methods import get_method, list_methods

    assert "lats" in list_methods()
    spec = get_method("lats")
    assert spec.presets() == ["micro", "paper", "tiny"]
    from workbench.training import resolve_config

    assert resolve_config(spec, "paper").schedule == "lats"
