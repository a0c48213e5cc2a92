"""LATS against its reference code (Yanqi-Chen/LATS), recomputed here from our reading of it.

Each test writes the reference's definition directly (``trainer.py``: ``sinpInc``,
``sinppghInc``, ``sinpLowfBaseInc`` and the per-step ``flat_step`` of ``--low-freq``;
``utils/conv_type.py``: ``softThresholdmod`` with its pass-through ReLU; ``models/resnet.py``:
every conv an ``STRConv``) and compares on seeded inputs. Tolerances: 1e-12 absolute on
schedules (float64 arithmetic of the same quantities), exact on the soft threshold (the same
float32 operations), exact on layer lists.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from workbench.methods.lats import pruning, schedules


# ----------------------------------------------------------------------------- schedules
def reference_low_freq(epoch: int, batch: int, epochs: int, num_batches: int) -> float:
    """The reference's ``--low-freq`` threshold / D after ``batch`` steps of pruning epoch ``epoch``."""
    base = 0.5 * (1.0 + 2 * epoch + math.sin(math.pi * (epoch - 0.5) / epochs)
                  / math.sin(math.pi * 0.5 / epochs)) / (epochs + 1.0)
    flat_step = (1 + math.cos(epoch * math.pi / epochs)) / num_batches / (1 + epochs)
    return base + batch * flat_step


def reference_sinp(n: int, total: int) -> float:
    return math.sin(math.pi * n / total) / math.pi + n / total


def reference_pgh(n: int, total: int, beta: float) -> float:
    x = n / total
    lb = math.log(beta)
    bx = beta ** x
    return ((math.pi ** 2) * (bx - 1) + (bx - 2) * lb ** 2
            + bx * lb * (lb * math.cos(math.pi * x) + math.pi * math.sin(math.pi * x))) \
        / ((math.pi ** 2) * (beta - 1) - 2 * lb ** 2)


@pytest.mark.parametrize("epochs, num_batches", [(7, 5), (100, 3)])
def test_lats_schedule_is_the_reference_low_freq_schedule_whatever_the_learning_rate(epochs, num_batches):
    D = 0.8
    total = epochs * num_batches
    warm = 5 * num_batches  # a warm-up and a cosine over more epochs than the pruning phase
    lr_at = lambda t: (t + 1) / warm if t < warm else 0.5 * (1 + math.cos(math.pi * (t - warm) / (2 * total)))  # noqa: E731
    fn = schedules.threshold_schedule("lats", D=D, total_steps=total, steps_per_epoch=num_batches, lr_at=lr_at)
    for t in range(total + 1):
        # the reference sets the threshold after each step: t steps done = batch b of epoch n
        n, b = divmod(t, num_batches)
        if n == epochs:
            n, b = epochs - 1, num_batches
        assert fn(t) == pytest.approx(D * reference_low_freq(n, b, epochs, num_batches), abs=1e-12), t
    assert fn(total) == pytest.approx(D, abs=1e-12)


def test_lats_paper_recipe_epoch_five_threshold_is_the_references():
    # 100 pruning epochs: after 5 epochs the reference is at 0.099 D (the number)
    fn = schedules.threshold_schedule("lats", D=1.0, total_steps=100 * 10, steps_per_epoch=10)
    assert fn(50) == pytest.approx(reference_low_freq(5, 0, 100, 10), abs=1e-12)
    assert fn(50) == pytest.approx(0.0989, abs=1e-4)


@pytest.mark.parametrize("total", [17, 400])
def test_slats_is_the_reference_sinp(total):
    for t in range(total + 1):
        assert schedules.slats_threshold(t, total, 1.7) == pytest.approx(1.7 * reference_sinp(t, total), abs=1e-12)


@pytest.mark.parametrize("beta", [0.3, 2.0, 10.0, 100.0])
def test_pgh_is_the_reference_sinppgh(beta):
    total, D = 250, 0.4
    fn = schedules.threshold_schedule("pgh", D=D, total_steps=total, steps_per_epoch=10, beta=beta)
    for t in range(total + 1):
        assert fn(t) == pytest.approx(D * reference_pgh(t, total, beta), abs=1e-12)
    # and beta -> 1 is S-LATS
    assert schedules.pgh_threshold(100, total, D, 1.0) == pytest.approx(D * reference_sinp(100, total), abs=1e-12)
    assert schedules.pgh_threshold(100, total, D, 1.0 + 1e-7) == pytest.approx(
        schedules.pgh_threshold(100, total, D, 1.0), abs=1e-7)


def test_pgh_needs_a_positive_beta():
    from workbench.errors import ValidationError
    from workbench.methods import get_method
    from workbench.training import resolve_config

    with pytest.raises(ValidationError, match="schedule 'pgh' needs its growth base"):
        schedules.threshold_schedule("pgh", D=1, total_steps=10, steps_per_epoch=5)
    with pytest.raises(ValidationError, match="PGH needs beta > 0, got -1"):
        schedules.threshold_schedule("pgh", D=1, total_steps=10, steps_per_epoch=5, beta=-1)
    with pytest.raises(ValidationError, match="config field 'beta' is None; schedule 'pgh'"):
        resolve_config(get_method("lats"), "tiny", ["schedule=pgh"])
    with pytest.raises(ValidationError, match="config field 'beta' is inf; schedule 'pgh'"):
        resolve_config(get_method("lats"), "tiny", ["schedule=pgh", "beta=inf"])
    with pytest.raises(ValidationError, match="PGH needs beta > 0, got inf"):
        schedules.pgh_threshold(3, 10, 1.0, math.inf)
    assert resolve_config(get_method("lats"), "tiny", ["schedule=pgh", "beta=2"]).beta == 2.0


# ----------------------------------------------------------------------------- soft threshold
def _reference_pseudo_relu(x: torch.Tensor) -> torch.Tensor:
    """The reference's ``PseudoRelu``: ``relu(x)`` forward, identity backward."""
    return x + (torch.relu(x) - x).detach()


def test_soft_threshold_and_its_gradient_are_the_references():
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(64, 3, 3, 3, generator=gen)
    theta[0, 0] = 0.0  # sign(0) = 0: no gradient there, in both
    upstream = torch.randn(theta.shape, generator=gen)
    for s in (0.0, 0.3, 1.1):
        mine = theta.clone().requires_grad_(True)
        ref = theta.clone().requires_grad_(True)
        out = pruning.soft_threshold(mine, s)
        expected = torch.sign(ref) * _reference_pseudo_relu(torch.abs(ref) - s)
        assert torch.equal(out, expected)
        (out * upstream).sum().backward()
        (expected * upstream).sum().backward()
        assert torch.equal(mine.grad, ref.grad)
        assert torch.equal(mine.grad, upstream * torch.sign(theta) ** 2)


# ----------------------------------------------------------------------------- pruned layers
def _every_weight_layer(module: nn.Module) -> list[str]:
    return [n for n, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.fixture(scope="module")
def paper_resnet50():
    from workbench.methods import get_method
    from workbench.methods.lats.train import prepare_network
    from workbench.training import build_network, resolve_config

    config = resolve_config(get_method("lats"), "paper", ["D=0.1"])
    network = build_network(config.arch, seed=0, num_classes=1000)
    plain_layers = _every_weight_layer(network.module)
    return network, prepare_network(network, config), plain_layers


def test_paper_preset_prunes_every_conv_and_linear_as_the_reference(paper_resnet50):
    network, layers, plain_layers = paper_resnet50
    # the reference's ResNet-50: every conv (conv1, the bottlenecks, the downsampling convs) and
    # the fc (a 1x1 conv there) are STRConv
    assert layers == plain_layers and len(layers) == 54
    assert {"conv1", "layer1.0.downsample.0", "layer4.0.downsample.0", "fc"} <= set(layers)
    assert pruning.soft_threshold_layers(network.module) == plain_layers


def test_paper_preset_sparsity_can_exceed_the_dense_layers_cap(paper_resnet50):
    network, _, _ = paper_resnet50
    report = pruning.sparsity_report(network.module)
    kept_dense = report.layers["conv1"].numel + report.layers["fc"].numel
    assert kept_dense / report.numel == pytest.approx(0.0807, abs=5e-5)  # the cap without them: 91.9 %
    pruning.set_threshold(network.module, 1e3)
    try:
        assert pruning.sparsity_report(network.module).overall == 1.0 > 1 - kept_dense / report.numel
    finally:
        pruning.set_threshold(network.module, 0.0)


def test_paper_preset_draws_the_references_kaiming_fan_in_weights(paper_resnet50):
    # the reference's builder: kaiming_normal_(mode="fan_in", nonlinearity="relu") for every conv,
    # its fc (a 1x1 conv) included; torchvision's ResNet-50 uses fan-out and a uniform fc
    network, layers, _ = paper_resnet50
    for name in ("conv1", "layer1.0.conv3", "layer3.2.conv2", "layer4.0.downsample.0", "fc"):
        weight = network.module.get_submodule(name).weight.detach()
        fan_in = weight[0].numel()
        assert float(weight.mean()) == pytest.approx(0.0, abs=0.05 * math.sqrt(2 / fan_in)), name
        assert float(weight.std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.03), name


def test_mobilenet_v1_is_the_references_and_every_layer_is_pruned():
    from workbench.methods import get_method
    from workbench.methods.lats.train import prepare_network
    from workbench.training import build_network, resolve_config

    # the reference's models/mobilenetv1.py: conv_bn(3, 32, 2), then conv_dw(inp, oup, stride)
    stages = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
              *[(512, 512, 1)] * 5, (512, 1024, 2), (1024, 1024, 1)]
    params = 3 * 32 * 9 + 2 * 32 + sum(i * 9 + 2 * i + i * o + 2 * o for i, o, _ in stages) + 1024 * 1000
    config = resolve_config(get_method("lats"), "paper", ["D=0.1", "arch=mobilenet_v1", "init=zoo"])
    network = build_network(config.arch, seed=0, num_classes=1000)
    assert sum(p.numel() for p in network.module.parameters()) == params
    shapes = [tuple(m.weight.shape) for m in network.module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    expected = [(32, 3, 3, 3)]
    for i, o, _ in stages:
        expected += [(i, 1, 3, 3), (o, i, 1, 1)]
    assert shapes == [*expected, (1000, 1024)]
    strides = [m.stride[0] for m in network.module.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert strides == [s for _, _, s in stages]
    assert network.module.fc.bias is None  # the reference's fc: a bias-free 1x1 conv
    assert float(network.module.fc.weight.detach().std()) == pytest.approx(math.sqrt(2 / 1024), rel=0.01)
    assert len(prepare_network(network, config)) == 28  # the 27 convs and the fc
    assert network.logits(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)
    from workbench.errors import WeightsUnavailableError
    from workbench.models.mobilenet_v1 import mobilenet_v1

    with pytest.raises(WeightsUnavailableError, match=r"no published weights here; train it \(`workbench train lats"):
        mobilenet_v1(pretrained=True)


@pytest.mark.slow
def test_lats_trains_the_paper_spiking_network_sew_resnet18(tmp_path):
    """``--set arch=sew_resnet18`` (the paper preset's note) trains: multi-step, every layer pruned."""
    import json

    from workbench.training import train

    out = train("lats", out=tmp_path / "sew", preset="micro", overrides=[
        "arch=sew_resnet18", "schedule=lats", "D=0.01", "prune_first_last=true", "limit_train=4",
        "batch_size=4", "epochs=2", "dense_epochs=1", "limit_test=4", "snapshots=false"])
    card = json.loads((out / "model_card.json").read_text())
    assert card["architecture"] == "sew_resnet18"
    assert {"conv1", "fc"} <= set(card["pruning"]["pruned_layers"])
    assert card["pruning"]["final_threshold"] == pytest.approx(0.01)
    assert 0 < card["sparsity"]["overall"] < 1
