"""QSAM's network pieces (QABN, mixer), the JPEG data wrapper, the config and the loss functions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import DataError, ValidationError
from workbench.methods.qsam.data import JpegVersions, from_pixels, to_pixels
from workbench.methods.qsam.jpeg import decode, encode_jpeg, quality_tables
from workbench.methods.qsam.train import QSAMConfig, chunk_weights, loss_weight, meta_step, stage1_step
from workbench.models.qsam import QABatchNorm2d, TinyCNN, qsam_cnn


def test_qabn_with_one_branch_equals_plain_batch_norm():
    torch.manual_seed(0)
    x = torch.randn(8, 5, 4, 4) * 3 + 1
    plain, qabn = nn.BatchNorm2d(5), QABatchNorm2d(5, branches=1)
    with torch.no_grad():
        plain.weight.uniform_(0.5, 2)
        plain.bias.uniform_(-1, 1)
    qabn.bns[0].load_state_dict(plain.state_dict())
    for route in (torch.zeros(8, dtype=torch.int64), torch.ones(8, 1)):   # routed, and mixed with w = 1
        for mode in ("train", "eval"):
            if route.dtype.is_floating_point and mode == "train":
                continue   # the mixed form is the inference form by definition
            plain.train(mode == "train"), qabn.train(mode == "train")
            qabn.route = route
            torch.testing.assert_close(qabn(x), plain(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(qabn.bns[0].running_mean, plain.running_mean)
    torch.testing.assert_close(qabn.bns[0].running_var, plain.running_var)


def test_qabn_routes_each_sample_through_its_branch_with_that_subbatch_statistics():
    torch.manual_seed(1)
    x = torch.randn(12, 3, 5, 5)
    route = torch.tensor([0, 2, 1, 2, 0, 0, 1, 2, 1, 0, 2, 2])
    qabn = QABatchNorm2d(3, branches=3).train()
    reference = [nn.BatchNorm2d(3).train() for _ in range(3)]
    for k, bn in enumerate(reference):
        with torch.no_grad():
            qabn.bns[k].weight.fill_(k + 1.0)
            bn.weight.fill_(k + 1.0)
    qabn.route = route
    out = qabn(x)
    for k, bn in enumerate(reference):
        torch.testing.assert_close(out[route == k], bn(x[route == k]), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(qabn.bns[k].running_mean, bn.running_mean)


def test_qabn_mixed_is_the_weighted_sum_of_the_branches_in_inference_form():
    torch.manual_seed(2)
    qabn = QABatchNorm2d(4, branches=3)
    for bn in qabn.bns:
        with torch.no_grad():
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2)
            bn.weight.normal_()
            bn.bias.normal_()
    x = torch.randn(6, 4, 3, 3)
    w = torch.randn(6, 3)
    qabn.train()          # the training flag does not change the mixed form
    qabn.route = w
    expected = sum(w[:, k, None, None, None] * qabn.bns[k].eval()(x) for k in range(3))
    torch.testing.assert_close(qabn(x), expected, rtol=1e-5, atol=1e-5)


def test_qabn_without_route_is_an_error():
    with pytest.raises(ValidationError, match="without a route"):
        QABatchNorm2d(2, 2)(torch.randn(2, 2, 2, 2))


def test_mixing_weights_sum_to_one_and_none_tables_are_the_uncompressed_path():
    torch.manual_seed(3)
    net = qsam_cnn(num_classes=10, branches=4, widths=(4, 4, 8, 8)).module.eval()
    tables = torch.stack([torch.from_numpy(quality_tables(q).vector) for q in (95, 60, 10)] + [torch.rand(128) * 255])
    w = net.mixing_weights(tables)
    assert w.shape == (4, 4)
    torch.testing.assert_close(w.sum(1), torch.ones(4))
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(net(x), net(x, tables=torch.ones(3, 128)))
    with pytest.raises(ValidationError, match=r"tables must have shape \(3, 128\)"):
        net(x, tables=torch.ones(3, 64))
    with pytest.raises(ValidationError, match=r"indices in \[0, 4\)"):
        net(x, branches=torch.tensor([0, 1, 4]))


def test_single_branch_network_has_no_mixer_and_is_a_plain_cnn():
    torch.manual_seed(4)
    arch = qsam_cnn(num_classes=3, branches=1, widths=(4, 4, 8, 8))
    net = arch.module.eval()
    assert net.mixer is None
    plain = TinyCNN(3, (4, 4, 8, 8)).eval()
    plain.load_state_dict({k.replace("backbone.", "").replace(".bns.0", ""): v for k, v in net.state_dict().items()})
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(net(x, tables=torch.rand(2, 128) * 50), plain(x))
    assert dict(net.named_modules()).keys() >= set(arch.layers)


def test_jpeg_versions_are_pillow_round_trips_of_the_uint8_image():
    torch.manual_seed(5)
    mean, std = (0.3, 0.3, 0.3), (0.2, 0.2, 0.2)
    images = [((torch.rand(3, 16, 16) - 0.3) / 0.2, 1), ((torch.rand(3, 16, 16) - 0.3) / 0.2, 7)]
    wrapped = JpegVersions(images, (90, None, 10), mean, std)
    versions, label = wrapped[1]
    assert versions.shape == (3, 3, 16, 16) and label == 7 and wrapped.targets == [1, 7]
    pixels = to_pixels(images[1][0], mean, std)
    for i, quality in enumerate((90, None, 10)):
        direct = pixels if quality is None else decode(encode_jpeg(pixels, quality))[0]
        torch.testing.assert_close(versions[i], from_pixels(direct, mean, std))
    # the uncompressed version is the image up to uint8 rounding
    assert (versions[1] - images[1][0]).abs().max() <= 0.5 / 255 / 0.2 + 1e-6
    assert (versions[2] - images[1][0]).abs().mean() > (versions[0] - images[1][0]).abs().mean()
    with pytest.raises(ValidationError, match=r"qualities must be .* found \[0\]"):
        JpegVersions(images, (0,), mean, std)


def test_config_validates_the_qualities():
    with pytest.raises(ValidationError, match=r"'base_qualities' is \[90, 101\]"):
        QSAMConfig(base_qualities=(90, 101))
    with pytest.raises(ValidationError, match="repeats a quality"):
        QSAMConfig(base_qualities=(90, 90))
    with pytest.raises(ValidationError, match="must not set 'branches'"):
        QSAMConfig(arch_kwargs={"branches": 2})
    with pytest.raises(ValidationError, match="qac_scale"):
        QSAMConfig(qac_scale="log")


def test_chunk_weights_raw_and_normalised():
    raw = QSAMConfig()
    qacs = [quality_tables(q).qac for q in (90, 60, 30, 10)]
    torch.testing.assert_close(chunk_weights(raw, (90, 60, 30, 10)), torch.tensor(qacs))
    norm = QSAMConfig(qac_scale="normalised")
    w = chunk_weights(norm, (90, 60, 30, 10))
    torch.testing.assert_close(w, torch.tensor(qacs) / np.mean(qacs) / 4)
    assert float(w.sum()) == pytest.approx(1.0)
    assert chunk_weights(QSAMConfig(use_qac=False), (90, 10)).tolist() == [1.0, 1.0]
    assert loss_weight(norm, 80) == pytest.approx(quality_tables(80).qac / np.mean(qacs))


def test_stage1_step_is_the_weighted_sum_of_per_chunk_cross_entropies():
    torch.manual_seed(6)
    net = qsam_cnn(num_classes=4, branches=3, widths=(4, 4, 8, 8)).module.train()
    images, labels = torch.randn(5, 3, 3, 32, 32), torch.randint(0, 4, (5,))
    weights = torch.tensor([0.5, 0.3, 0.2])
    state = {k: v.clone() for k, v in net.state_dict().items()}
    loss, logs = stage1_step(weights, single=False)(None, net, images, labels, QSAMConfig())
    net.load_state_dict(state)
    direct = sum(weights[k] * F.cross_entropy(net(images[:, k], branches=k), labels) for k in range(3))
    torch.testing.assert_close(loss, direct, rtol=1e-5, atol=1e-6)
    assert set(logs) == {"loss", "acc", "acc_chunk0", "acc_chunk1", "acc_chunk2"}


def test_meta_step_trains_only_the_mixer_and_sums_its_three_terms():
    torch.manual_seed(7)
    config = QSAMConfig(base_qualities=(90, 10), meta_qualities=(50,))
    arch = qsam_cnn(num_classes=4, branches=2, widths=(4, 4, 8, 8))
    net = arch.module
    for p in net.backbone.parameters():
        p.requires_grad_(False)

    class Holder:
        module = net

    images, labels = torch.randn(6, 3, 3, 32, 32), torch.randint(0, 4, (6,))
    loss, logs = meta_step(config, use_qac=True)(Holder, net, images, labels, config)
    assert float(loss.detach()) == pytest.approx(float(logs["meta_train"] + logs["meta_test"] + logs["l1"]), rel=1e-5)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.mixer.parameters())
    assert all(p.grad is None for p in net.backbone.parameters())


def test_read_errors_reach_the_user_through_decode():
    with pytest.raises(DataError, match="<bytes>"):
        decode(b"not an image")


def test_presets_resolve_and_the_paper_network_runs():
    from workbench.methods import get_method
    from workbench.models.qsam import qsam_resnet18
    from workbench.training import resolve_config

    spec = get_method("qsam")
    assert spec.presets() == ["micro", "paper", "tiny"]
    paper = resolve_config(spec, "paper")
    assert (paper.arch, paper.dataset, paper.epochs, paper.batch_size, paper.lr, paper.qac_scale) == \
        ("qsam_resnet18", "cifar10", 200, 128, 0.1, "raw")
    assert (paper.meta_lr, paper.meta_weight_decay, paper.meta_step_size) == (0.004, 5e-4, 0.001)
    tiny = resolve_config(spec, "tiny")
    assert tiny.arch == "qsam_cnn" and tiny.dataset == "digits32" and tiny.base_qualities == (90, 60, 30, 10)
    torch.manual_seed(8)
    arch = qsam_resnet18(num_classes=10, branches=4)
    net = arch.module.eval()
    assert net.backbone.conv1.stride == (1, 1) and isinstance(net.backbone.maxpool, nn.Identity)
    assert sum(isinstance(m, QABatchNorm2d) for m in net.modules()) == 20   # every BN of ResNet-18
    assert not any(type(m) is nn.BatchNorm2d and "bns" not in name for name, m in net.named_modules())
    x = torch.randn(2, 3, 32, 32)
    assert net(x, tables=torch.ones(2, 128) * 7).shape == (2, 10)
    assert set(arch.layers) <= set(dict(net.named_modules()))


def test_routed_and_mixed_forwards_run_under_bf16_autocast():
    torch.manual_seed(9)
    net = qsam_cnn(num_classes=4, branches=3, widths=(4, 4, 8, 8)).module.train()
    x = torch.randn(6, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        routed = net(x, branches=torch.tensor([0, 1, 2, 0, 1, 2]))
        routed.float().sum().backward()
        net.eval()
        mixed = net(x, tables=torch.ones(6, 128) * 10)
    assert routed.shape == mixed.shape == (6, 4)
    assert all(p.grad is not None for p in net.backbone.parameters())
    reference = net(x, tables=torch.ones(6, 128) * 10)          # fp32
    torch.testing.assert_close(mixed.float(), reference, atol=0.1, rtol=0.1)
