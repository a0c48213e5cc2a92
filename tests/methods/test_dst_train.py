"""DST training: config, the dual loss, gradient norms, and a micro run end to end."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from workbench.errors import ValidationError
from workbench.methods.dst import (
    BASELINE_DIR,
    DSNN_DIR,
    DSTConfig,
    GradientNormCallback,
    build_dst_network,
    dual_step,
    gradient_groups,
)


def _config(**changes) -> DSTConfig:
    return DSTConfig(arch_kwargs={"width": 2}, **changes)


def test_config_refuses_what_dst_cannot_train():
    with pytest.raises(ValidationError, match="'arch' is 'small_sew_resnet'.*fsnn_tiny"):
        DSTConfig(arch="small_sew_resnet")
    with pytest.raises(ValidationError, match="set the config field 'connect'"):
        DSTConfig(arch_kwargs={"connect": "OR"})
    with pytest.raises(ValidationError, match="set the config field 'surrogate'"):
        DSTConfig(arch_kwargs={"surrogate": "atan"})
    with pytest.raises(ValidationError, match=r"DSTConfig.surrogate='relu' is not valid; expected one of"):
        DSTConfig(surrogate="relu")
    with pytest.raises(ValidationError, match=r"DSTConfig.connect='ADD' is not valid; expected one of \[.AND., .IAND."):
        DSTConfig(connect="ADD")
    with pytest.raises(ValidationError, match="aap_weight"):
        DSTConfig(aap_weight=-1.0)


def test_dsnn_and_fsnn_start_from_the_same_weights():
    config = _config(seed=5)
    dsnn = build_dst_network(config, 10).module.state_dict()
    fsnn = build_dst_network(config, 10, aap=False).module.state_dict()
    assert sorted(fsnn) == sorted(k for k in dsnn if not k.startswith("aap."))
    assert all(torch.equal(fsnn[k], dsnn[k]) for k in fsnn)


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g) * 2, torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("weight", [1.0, 0.25, 0.0])
def test_dual_loss_is_spike_ce_plus_weighted_aap_ce(weight):
    from spikingjelly.activation_based import functional

    config = _config(aap_weight=weight)
    network = build_dst_network(config, 10)
    images, labels = _batch()
    loss, logs = dual_step(network, network.module, images, labels, config)
    steps = images.unsqueeze(0).repeat(4, 1, 1, 1, 1)
    spike = network.module(steps, head="spike").mean(0)
    functional.reset_net(network.module)
    acc = network.module(steps, head="acc").mean(0)
    functional.reset_net(network.module)
    expected = F.cross_entropy(spike, labels) + weight * F.cross_entropy(acc, labels)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    assert float(logs["loss_spike"]) == pytest.approx(float(F.cross_entropy(spike, labels).detach()), rel=1e-6)
    assert float(logs["acc"]) == pytest.approx(float((spike.argmax(1) == labels).float().mean()))
    # the spike-only step: the FSNN's cross-entropy alone
    fsnn = build_dst_network(config, 10, aap=False)
    loss_only, logs_only = dual_step(fsnn, fsnn.module, images, labels, config)
    torch.testing.assert_close(loss_only, F.cross_entropy(spike, labels), rtol=1e-6, atol=1e-6)
    assert "loss_aap" not in logs_only


def test_gradient_groups_cover_the_spike_stream_and_nothing_of_the_aap():
    network = build_dst_network(_config(), 10)
    groups = gradient_groups(network.module)
    assert list(groups) == ["stem", *(f"layer{s}.{b}" for s in range(1, 5) for b in range(2)), "fc"]
    grouped = [id(p) for params in groups.values() for p in params]
    assert len(grouped) == len(set(grouped))
    aap = {id(p) for p in network.module.aap.parameters()}
    spike_stream = {id(p) for n, p in network.module.named_parameters() if not n.startswith("aap.")}
    assert set(grouped) == spike_stream and not aap & set(grouped)


def test_logged_gradient_norms_equal_a_direct_computation():
    config = _config()
    network = build_dst_network(config, 10)
    loss, _ = dual_step(network, network.module, *_batch(), config)
    loss.backward()
    callback = GradientNormCallback()
    callback.on_train_start(None, network)
    logs = {}
    callback.on_step_end(None, network, logs)
    block = network.module.layer2[0]
    direct = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in block.parameters()]))
    assert logs["gnorm_layer2.0"] == pytest.approx(float(direct), rel=1e-6)
    callback.on_step_end(None, network, {})
    assert callback.means()["layer2.0"] == pytest.approx(float(direct), rel=1e-6)
    restored = GradientNormCallback()
    restored.load_state_dict(callback.state_dict())
    assert restored.means() == callback.means()


@pytest.fixture(scope="module")
def micro_dst(train_micro):
    return train_micro("dst")


@pytest.mark.slow
def test_micro_run_writes_fsnn_dsnn_and_baseline(micro_dst):
    import pandas as pd

    from workbench.methods.dst import evaluate
    from workbench.models import create
    from workbench.training import read_card

    card = read_card(micro_dst)
    assert card["method"] == "dst" and card["architecture"] == "fsnn_tiny" and card["family"] == "snn"
    assert card["architecture_kwargs"] == {"num_classes": 10, "connect": "IAND", "surrogate": "sigmoid", "width": 2}
    dsnn_card = read_card(micro_dst / DSNN_DIR)
    base_card = read_card(micro_dst / BASELINE_DIR)
    assert dsnn_card["architecture"] == "dsnn_tiny" and base_card["architecture"] == "fsnn_tiny"
    # the DST checkpoint loads, strictly, into the plain FSNN for scoring; so do the others
    fsnn, dsnn, base = create(str(micro_dst)), create(str(micro_dst / DSNN_DIR)), create(str(micro_dst / BASELINE_DIR))
    assert fsnn.layers[-1] == "avgpool" and dsnn.layers[-1] == "acc_avgpool"
    # the saved FSNN is the saved DSNN's spike stream, bit for bit
    x = torch.randn(4, 5, 3, 32, 32) * 2
    from spikingjelly.activation_based import functional

    spike_of_dsnn = dsnn.module(x, head="spike")
    functional.reset_net(dsnn.module)
    assert torch.equal(fsnn.module(x), spike_of_dsnn)
    functional.reset_net(fsnn.module)
    assert not torch.equal(base.module(x), spike_of_dsnn)  # trained without the AAP: other weights
    functional.reset_net(base.module)
    # evaluation: recomputed from the files, equal to what training recorded
    ev = card["evaluation"]
    assert set(ev) >= {"test_acc", "test_loss", "test_acc_dsnn", "test_loss_dsnn", "test_acc_spike_only"}
    again = evaluate(micro_dst)
    for key in ("test_acc", "test_acc_dsnn", "test_acc_spike_only"):
        assert again[key] == pytest.approx(ev[key], abs=1e-9), key
    assert again["test_loss"] == pytest.approx(ev["test_loss"], rel=1e-5)
    # per-block gradient norms: logged every step, means and ratio in the card
    metrics = pd.read_csv(micro_dst / "metrics.csv")
    logged = metrics[(metrics.split == "train") & (metrics.metric == "gnorm_layer1.0")]
    assert len(logged) == 4 and (logged.value > 0).all()
    norms = card["gradient_norms"]
    assert norms["dst"]["layer1.0"] == pytest.approx(logged.value.mean(), rel=1e-9)
    for part, ratio in norms["ratio"].items():
        assert ratio == pytest.approx(norms["dst"][part] / norms["spike_only"][part], rel=1e-12)
    base_metrics = pd.read_csv(micro_dst / BASELINE_DIR / "metrics.csv")
    assert not base_metrics.metric.str.contains("aap").any()
    # one convention for every nested network: snapshots/<name>, its card naming its role and run
    from workbench.training import list_snapshots

    assert list_snapshots(micro_dst) == [micro_dst / DSNN_DIR, micro_dst / BASELINE_DIR]
    assert (base_card["role"], dsnn_card["role"]) == ("baseline", "snapshot")
    assert base_card["snapshot_of"] == dsnn_card["snapshot_of"] == str(micro_dst.resolve())
    assert math.isfinite(card["wall_time_s"])


def test_presets_resolve_tiny_deep_enough_and_paper_as_the_reference_recipe():
    from workbench.methods import get_method
    from workbench.training import resolve_config

    spec = get_method("dst")
    assert spec.presets() == ["micro", "paper", "tiny"]
    tiny = resolve_config(spec, "tiny")
    assert tiny.dataset == "digits32" and tiny.aap and tiny.baseline and tiny.connect == "IAND"
    network = build_dst_network(tiny, 10, aap=False)
    assert len(network.module.blocks) >= 8 and network.time_steps == 4
    paper = resolve_config(spec, "paper")
    # iCGY96/AAP README (FSNN-18 (AAP), 8 GPUs x -b 64) and imagenet/train.py defaults
    assert (paper.arch, paper.dataset, paper.connect, paper.time_steps) == ("fsnn18", "imagenet", "IAND", 4)
    assert (paper.optimizer, paper.lr, paper.momentum, paper.weight_decay) == ("sgd", 0.1, 0.9, 1e-5)
    assert (paper.epochs, paper.batch_size, paper.scheduler, paper.aap_weight) == (320, 512, "cosine", 1.0)
    # the reference's neurons (Sigmoid surrogate, alpha 4), its per-GPU BatchNorm statistics and
    # its max_test_acc1 (best epoch of the spike head, recorded beside the final one)
    assert (paper.surrogate, paper.sync_batchnorm, paper.best_metric) == ("sigmoid", False, "acc")
    assert tiny.surrogate == "atan"  # the benchmark numbers of the README were measured with it
    sn = build_dst_network(paper.replace(arch_kwargs={}), 10).module.layer1[0].sn1.surrogate_function
    assert (type(sn).__name__, sn.alpha) == ("Sigmoid", 4.0)
