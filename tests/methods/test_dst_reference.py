"""DST against its reference code (iCGY96/AAP, ``imagenet/dsnn.py`` and ``train.py``), recomputed here.

From our reading of the reference: IF neurons (threshold 1, hard reset to 0, detached reset)
with spikingjelly's Sigmoid surrogate, ``alpha * sigmoid(alpha x) * (1 - sigmoid(alpha x))``,
alpha 4 (the default of the ``MultiStepIFNode`` of the spikingjelly commit its README names);
the stem conv + BN computed once and repeated over T; every block
``out = IF(BN(conv3x3(IF(BN(conv3x3(identity))))))``, a shape-changing block's identity
``IF(BN(conv1x1(identity)))`` and accumulation ``ReLU(BN(conv1x1(dwconv3x3(acc)))))``
(the depthwise conv only at stride 2), ``acc <- acc + out``, ``identity <- identity * (1 - out)``
(IAND); both heads ``fc(mean_T(avgpool(.)))``; loss ``CE(spike) + CE(acc)``.

The network here is computed independently in plain torch from the module's parameters, in
float64. Tolerances: spikes exact; logits 1e-10 absolute; the loss and every parameter's
gradient 1e-5 relative (the method's cross-entropy runs in float32).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

ALPHA = 4.0


class _Heaviside(torch.autograd.Function):
    """Spike ``x >= 0`` with the Sigmoid surrogate gradient (alpha 4)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        sig = torch.sigmoid(ALPHA * x)
        return grad * ALPHA * sig * (1 - sig)


def reference_if(x_seq: torch.Tensor) -> torch.Tensor:
    """Multi-step IF neuron of the reference: (T, ...) input currents -> (T, ...) spikes."""
    v = torch.zeros_like(x_seq[0])
    spikes = []
    for x in x_seq:
        h = v + x
        s = _Heaviside.apply(h - 1.0)
        v = h * (1.0 - s.detach())
        spikes.append(s)
    return torch.stack(spikes)


def test_if_neuron_gradient_is_the_sigmoid_surrogate_of_the_reference():
    from workbench.models.fsnn import _neuron

    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(6, 5, 40, generator=gen, dtype=torch.float64) * 1.6)
    upstream = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    mine, ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    neuron = _neuron("sigmoid")
    neuron.step_mode = "m"
    out = neuron(mine)
    expected = reference_if(ref)
    assert torch.equal(out, expected) and 0 < float(out.detach().mean()) < 1
    (out * upstream).sum().backward()
    (expected * upstream).sum().backward()
    torch.testing.assert_close(mine.grad, ref.grad, rtol=1e-12, atol=1e-12)
    # the ATan option: same spikes, other gradients
    atan = _neuron("atan")
    atan.step_mode = "m"
    other = x.clone().requires_grad_(True)
    assert torch.equal(atan(other), expected)


def _bn(x, bn):
    return F.batch_norm(x, bn.running_mean.clone(), bn.running_var.clone(), bn.weight, bn.bias,
                        training=True, momentum=0.1, eps=bn.eps)


def _seq(fn, x):
    """The reference's SeqToANNContainer: fn over the merged (T*N) batch."""
    out = fn(x.flatten(0, 1))
    return out.view(x.shape[0], x.shape[1], *out.shape[1:])


def _block(block, aap, identity, acc, stride):
    out = reference_if(_seq(lambda z: _bn(F.conv2d(z, block.conv1.weight, stride=stride, padding=1), block.bn1),
                            identity))
    out = reference_if(_seq(lambda z: _bn(F.conv2d(z, block.conv2.weight, padding=1), block.bn2), out))
    if block.downsample is not None:
        conv, bn = block.downsample[0], block.downsample[1]
        identity = reference_if(_seq(lambda z: _bn(F.conv2d(z, conv.weight, stride=stride), bn), identity))
        parts = list(aap.proj)

        def pool(z):
            if stride != 1:
                z = F.conv2d(z, parts[0].weight, stride=stride, padding=1, groups=z.shape[1])
            return F.relu(_bn(F.conv2d(z, parts[-3].weight), parts[-2]))

        acc = _seq(pool, acc)
    acc = acc + out
    return identity * (1.0 - out), acc


def reference_dsnn18(module, images: torch.Tensor, T: int):
    """Both heads (N, classes) of the reference DSNN-18 (IAND) with ``module``'s parameters."""
    x = _bn(F.conv2d(images, module.conv1.weight, stride=2, padding=3), module.bn1)
    x = reference_if(x.unsqueeze(0).repeat(T, 1, 1, 1, 1))
    x = _seq(lambda z: F.max_pool2d(z, 3, stride=2, padding=1), x)
    identity = acc = x
    for (name, block), aap in zip(module.blocks, module.aap):
        stride = 2 if name.endswith(".0") and name != "layer1.0" else 1
        identity, acc = _block(block, aap, identity, acc, stride)

    def head(z):
        return F.linear(F.adaptive_avg_pool2d(z.flatten(0, 1), 1).flatten(1).view(T, z.shape[1], -1).mean(0),
                        module.fc.weight, module.fc.bias)

    return head(identity), head(acc)


def test_dual_loss_and_its_gradients_are_the_reference_dsnn18s():
    from workbench.methods.dst.train import DSTConfig, build_dst_network, dual_step

    config = DSTConfig(arch="fsnn18", seed=3)
    network = build_dst_network(config, num_classes=10)
    module = network.module.double()
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, 32, 32, generator=gen, dtype=torch.float64) * 2
    labels = torch.tensor([1, 7, 2])
    loss, _ = dual_step(network, module, images, labels, config)
    loss.backward()
    mine = {n: p.grad.clone() for n, p in module.named_parameters()}
    module.zero_grad()
    spike, acc = reference_dsnn18(module, images, config.time_steps)
    ref_loss = F.cross_entropy(spike, labels) + F.cross_entropy(acc, labels)
    ref_loss.backward()
    with torch.no_grad():
        heads = network.module(images.unsqueeze(0).expand(4, *images.shape), head="both")
    from spikingjelly.activation_based import functional

    functional.reset_net(module)
    torch.testing.assert_close(heads[0].mean(0), spike.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(heads[1].mean(0), acc.detach(), rtol=0, atol=1e-10)
    assert float(loss.detach()) == pytest.approx(float(ref_loss.detach()), rel=1e-6)
    checked = 0
    for name, param in module.named_parameters():
        ref = param.grad
        if ref is None or float(ref.norm()) == 0:
            assert float(mine[name].norm()) == 0, name
            continue
        assert float((mine[name] - ref).norm() / ref.norm()) < 1e-5, name
        checked += 1
    assert checked == len(mine) == 74  # every conv, BN, AAP and fc parameter received a gradient
