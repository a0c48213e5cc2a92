"""The full-spike SEW-ResNet (FSNN), its AAP (DSNN), and their zoo entries."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from workbench.errors import ValidationError
from workbench.models.fsnn import (
    CONNECT_FUNCTIONS,
    AccumulationStep,
    FullSpikeBlock,
    FullSpikeResNet,
    connect,
    fsnn_state_dict,
)

T, N = 4, 3


def _tiny(connect_f="IAND", aap=False, seed=0, stem="tiny"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if stem == "tiny":
            return FullSpikeResNet((2, 2, 2, 2), (4, 8, 16, 16), (1, 2, 1, 2), connect=connect_f, aap=aap,
                                   stem_stride=2)
        return FullSpikeResNet((1, 1), (8, 16), (1, 2), stem="imagenet", connect=connect_f, aap=aap)


def _images(seed=1, size=32, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, 3, size, size, generator=g) * scale
    return x.unsqueeze(0).repeat(T, 1, 1, 1, 1)


def _reset(net):
    from spikingjelly.activation_based import functional

    functional.reset_net(net)


@pytest.mark.parametrize("kind", CONNECT_FUNCTIONS)
def test_connect_truth_tables(kind):
    logic = {"IAND": lambda a, b: a and not b, "AND": lambda a, b: a and b,
             "OR": lambda a, b: a or b, "XOR": lambda a, b: a != b}[kind]
    for a, b in itertools.product((0, 1), repeat=2):
        out = connect(torch.tensor([float(a)]), torch.tensor([float(b)]), kind)
        assert out.item() == float(logic(bool(a), bool(b))), (kind, a, b)


def test_add_is_refused_as_not_full_spike():
    with pytest.raises(ValidationError, match="ADD .*not binary"):
        FullSpikeBlock(4, 4, connect="ADD")
    with pytest.raises(ValidationError, match="IAND"):
        _tiny(connect_f="NAND")


@pytest.mark.parametrize("stem", ["tiny", "imagenet"])
@pytest.mark.parametrize("kind", CONNECT_FUNCTIONS)
def test_every_inter_block_activation_is_binary(kind, stem):
    net = _tiny(kind, aap=True, stem=stem).train()
    seen = {}

    def keep(name):
        def hook(module, args, output):
            seen[name] = output[0] if isinstance(output, tuple) else output
        return hook

    names = ["sn1", *(["maxpool"] if stem == "imagenet" else [])]
    for name in names:
        net.get_submodule(name).register_forward_hook(keep(name))
    for name, block in net.blocks:
        block.register_forward_hook(keep(name))
        names.append(name)
        if block.downsample is not None:
            block.downsample.register_forward_hook(keep(name + ".downsample"))
            names.append(name + ".downsample")
    for head in ("spike", "both"):  # the plain FSNN path and the dual-stream path
        seen.clear()
        net(_images(size=64 if stem == "imagenet" else 32), head=head)
        _reset(net)
        assert sorted(seen) == sorted(names)
        for name, value in seen.items():
            assert value.shape[0] == T
            assert torch.all((value == 0) | (value == 1)), f"{kind} {head}: {name} is not binary"
        fired = torch.stack([v.mean() for v in seen.values()])
        assert (fired > 0).any() and (fired < 1).any()  # not trivially all-0 / all-1


def test_block_output_is_the_connect_function_of_its_two_spike_trains():
    block = FullSpikeBlock(4, 8, stride=2, connect="XOR")
    from spikingjelly.activation_based import functional

    functional.set_step_mode(block, "m")
    x = (torch.rand(T, N, 4, 8, 8, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    out, s_res = block(x, return_residual=True)
    _reset(block)
    s_id = block.downsample(x)
    _reset(block)
    assert out.shape == s_res.shape == (T, N, 8, 4, 4)
    assert torch.equal(out, (s_id != s_res).float())
    assert torch.equal(block(x), out)  # the plain call gives the same output
    _reset(block)


def test_aap_removal_leaves_the_spike_head_bit_identical():
    x = _images()
    for mode in ("eval", "train"):
        dsnn = _tiny(aap=True, seed=3)
        fsnn = _tiny(aap=False, seed=99)  # other initial weights: all come from the DSNN
        fsnn.load_state_dict(fsnn_state_dict(dsnn.state_dict()), strict=True)
        for net in (dsnn, fsnn):
            net.train(mode == "train")
        spike, acc = dsnn(x, head="both")
        _reset(dsnn)
        alone = fsnn(x)
        _reset(fsnn)
        assert torch.equal(spike, alone), mode
        assert not torch.equal(acc, spike)
        # perturbing the AAP changes the AAP head, never the spike stream
        with torch.no_grad():
            for p in dsnn.aap.parameters():
                p.add_(torch.randn_like(p))
        spike2, acc2 = dsnn(x, head="both")
        _reset(dsnn)
        assert torch.equal(spike2, spike) and not torch.equal(acc2, acc)
        # deleting it in place gives the FSNN
        dsnn.remove_aap()
        assert not any(k.startswith("aap.") for k in dsnn.state_dict())
        assert torch.equal(dsnn(x), spike)
        _reset(dsnn)


def test_spike_loss_sends_no_gradient_into_the_aap():
    dsnn = _tiny(aap=True).train()
    spike, acc = dsnn(_images(), head="both")
    _reset(dsnn)
    F.cross_entropy(spike.mean(0), torch.tensor([0, 1, 2])).backward()
    assert all(p.grad is None or not p.grad.any() for p in dsnn.aap.parameters())
    assert dsnn.layer1[0].conv1.weight.grad.abs().sum() > 0


def test_aap_projection_shapes():
    step = AccumulationStep(8, 16, stride=2)
    depthwise, pointwise, bn, relu = step.proj
    assert depthwise.weight.shape == (8, 1, 3, 3) and depthwise.groups == 8 and depthwise.stride == (2, 2)
    assert pointwise.weight.shape == (16, 8, 1, 1) and pointwise.stride == (1, 1)
    assert bn.num_features == 16 and isinstance(relu, torch.nn.ReLU)
    from spikingjelly.activation_based import functional

    functional.set_step_mode(step, "m")
    acc = torch.randn(T, N, 8, 16, 16)
    s_res = (torch.rand(T, N, 16, 8, 8) < 0.3).float()
    out = step(acc, s_res)
    assert out.shape == (T, N, 16, 8, 8)
    assert torch.equal(out, step.proj(acc) + s_res)
    assert (step.proj(acc) >= 0).all()  # ReLU last
    # stride 1 with a change of width: no depthwise conv
    assert [type(m).__name__ for m in AccumulationStep(8, 16, 1).proj] == ["Conv2d", "BatchNorm2d", "ReLU"]
    # same shape: the identity
    same = AccumulationStep(8, 8, 1)
    assert same.proj is None and torch.equal(same(acc, acc), acc + acc)


def test_aap_head_is_the_classifier_of_the_accumulated_residual_spikes():
    """Recompute x_acc from hooked residual spikes and the projections, independently of forward."""
    net = _tiny(aap=True).eval()
    x = _images()
    residuals, stem = [], {}
    net.sn1.register_forward_hook(lambda m, a, o: stem.setdefault("s", o))
    for _, block in net.blocks:
        block.sn2.register_forward_hook(lambda m, a, o: residuals.append(o))
    _, acc = net(x, head="both")
    _reset(net)
    x_acc = stem["s"]
    for step, s_res in zip(net.aap, residuals):
        x_acc = (step.proj(x_acc) if step.proj is not None else x_acc) + s_res
    expected = net.fc(x_acc.mean((-1, -2)))
    torch.testing.assert_close(acc, expected, rtol=1e-5, atol=1e-5)
    # projections sit exactly at the blocks that change shape
    assert [i for i, s in enumerate(net.aap) if s.proj is not None] == [
        i for i, (_, b) in enumerate(net.blocks) if b.downsample is not None] == [2, 4, 6]
    assert [type(m).__name__ for m in net.aap[4].proj] == ["Conv2d", "BatchNorm2d", "ReLU"]  # stride 1


def test_fsnn_has_no_aap_head():
    with pytest.raises(ValidationError, match="needs the AAP"):
        _tiny()(_images(), head="acc")


def test_zoo_entries_declare_real_layers():
    from workbench.models import create, list_models
    from workbench.models.fsnn import DSNN_OF

    assert set(DSNN_OF) | set(DSNN_OF.values()) <= set(list_models(family="snn"))
    fsnn, dsnn = create("fsnn_tiny"), create("dsnn_tiny")
    blocks = [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    assert fsnn.layers == ("sn1", *blocks, "avgpool")
    assert dsnn.layers == ("sn1", *(f"aap.{i}" for i in range(8)), "acc_avgpool")
    assert fsnn.time_steps == dsnn.time_steps == 4 and fsnn.is_spiking and dsnn.is_spiking
    assert fsnn.preprocessing.input_size == 32
    x = torch.zeros(4, 2, 3, 32, 32)
    assert fsnn.module(x).shape == dsnn.module(x).shape == (4, 2, 10)
    from workbench.models.registry import build_architecture

    arch = build_architecture("dsnn18", num_classes=5)
    assert arch.layers == ("sn1", "maxpool", *(f"aap.{i}" for i in range(8)), "acc_avgpool")
    modules = dict(arch.module.named_modules())
    assert all(layer in modules for layer in arch.layers)
    assert [len(getattr(arch.module, f"layer{s}")) for s in range(1, 5)] == [2, 2, 2, 2]
