"""CORnet-RT and CORnet-S: their time steps, as layer specs, against direct unrolled computations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench.activations.hooks import hooked, layer_outputs
from workbench.errors import WeightsUnavailableError
from workbench.models import create, model_info
from workbench.models import weights as weights_module
from workbench.models.registry import model_entry

AREAS = ("V1", "V2", "V4", "IT")


def _gn_relu(x, norm):
    return F.relu(F.group_norm(x, 32, norm.weight, norm.bias, norm.eps))


def _rt_unrolled(net, image):
    """CORnet-RT written out: every area's output at every step, {area: [step 0, ..., step 4]}."""
    history = {area: [] for area in AREAS}
    previous = {}
    for step in range(5):
        current = {}
        for k, area in enumerate(AREAS):
            block = getattr(net, area)
            source = image if area == "V1" else previous.get(AREAS[k - 1])
            if source is None:  # step 0 above V1: no input yet, zero drive
                side = {"V2": 4, "V4": 2, "IT": 1}[area]  # 32 px image: V1 is 8 x 8
                drive = torch.zeros(image.shape[0], block.out_channels, side, side)
            else:
                conv = block.conv_input
                drive = _gn_relu(F.conv2d(source, conv.weight, conv.bias, conv.stride, conv.padding),
                                 block.norm_input)
            total = drive + previous[area] if area in previous else drive
            current[area] = _gn_relu(F.conv2d(total, block.conv1.weight, padding=1), block.norm1)
            history[area].append(current[area])
        previous = current
    return history


@torch.no_grad()
def test_cornet_rt_call_k_is_the_area_at_step_k():
    model = create("cornet_rt", seed=1)
    image = torch.randn(2, 3, 32, 32)
    specs = [f"{area}:call[{step}]" for area in AREAS for step in (0, 2)] + list(model.layers)
    got = layer_outputs(model.module, specs, image)
    history = _rt_unrolled(model.module, image)
    for area in AREAS:
        for step in (0, 2):
            expected = history[area][step].flatten(1).double().numpy()
            np.testing.assert_allclose(got[f"{area}:call[{step}]"], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got[f"{area}:call[-1]"], history[area][-1].flatten(1).double().numpy(),
                                   rtol=1e-5, atol=1e-6)
    pooled = history["IT"][-1].mean(dim=(2, 3)).double().numpy()
    np.testing.assert_allclose(got["decoder.flatten"], pooled, rtol=1e-5, atol=1e-6)


def _bn(x, norm):
    return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)


def _s_area_unrolled(block, x):
    """One CORnet-S area written out: its output after each repetition."""
    x = F.conv2d(x, block.conv_input.weight)
    outputs = []
    for t in range(block.times):
        skip = _bn(F.conv2d(x, block.skip.weight, stride=2), block.norm_skip) if t == 0 else x
        y = F.relu(_bn(F.conv2d(x, block.conv1.weight), getattr(block, f"norm1_{t}")))
        y = F.relu(_bn(F.conv2d(y, block.conv2.weight, stride=2 if t == 0 else 1, padding=1),
                       getattr(block, f"norm2_{t}")))
        x = F.relu(_bn(F.conv2d(y, block.conv3.weight), getattr(block, f"norm3_{t}")) + skip)
        outputs.append(x)
    return outputs


@torch.no_grad()
def test_cornet_s_repetitions_are_the_recurrent_steps():
    model = create("cornet_s", seed=2)
    net = model.module
    for norm in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # non-trivial stats
        norm.running_mean.uniform_(-0.1, 0.1)
        norm.running_var.uniform_(0.5, 1.5)
    image = torch.randn(2, 3, 64, 64)
    specs = ["V1", "V2", "V4.output:call[0]", "V4.output:call[2]", "V4", "IT"]
    got = layer_outputs(net, specs, image)
    v2 = torch.from_numpy(got["V2"]).float().reshape(2, 128, 8, 8)
    steps = _s_area_unrolled(net.V4, v2)
    assert len(steps) == 4 and steps[0].shape == (2, 256, 4, 4) and steps[3].shape == (2, 256, 4, 4)
    for spec, expected in (("V4.output:call[0]", steps[0]), ("V4.output:call[2]", steps[2]), ("V4", steps[3])):
        np.testing.assert_allclose(got[spec], expected.flatten(1).double().numpy(), rtol=1e-4, atol=1e-5)
    assert got["IT"].shape == (2, 512 * 2 * 2)


def test_cornet_layers_and_shapes_are_the_studys():
    rt, s = model_info("cornet_rt"), model_info("cornet_s")
    assert rt.layers == ("V1:call[-1]", "V2:call[-1]", "V4:call[-1]", "IT:call[-1]", "decoder.flatten")
    assert s.layers == ("V1", "V2", "V4", "IT", "decoder.avgpool")
    areas = [(64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]
    for name, pooled in (("cornet_rt", (512,)), ("cornet_s", (512, 1, 1))):
        with torch.device("meta"):  # shapes only: no memory, no arithmetic
            arch = model_entry(name).factory(pretrained=False)
            shapes = {}
            with hooked(arch.module, arch.layers, lambda layer, x: shapes.setdefault(layer, x.shape[1:])):
                arch.module(torch.zeros(1, 3, 224, 224))
        assert [tuple(shapes[layer]) for layer in arch.layers] == [*areas, pooled], name


@pytest.mark.parametrize("name, filename", [("cornet_rt", "cornet_rt-933c001c.pth"),
                                            ("cornet_s", "cornet_s-1d3f7974.pth")])
def test_published_weights_offline_and_in_the_authors_format(offline, name, filename):
    hub = weights_module.hub_checkpoint_dir()
    with pytest.raises(WeightsUnavailableError, match=rf"Download https://s3\.amazonaws\.com/cornet-models/"
                                                      rf"{filename} .* put the file at {hub / filename}"):
        create(name, weights="imagenet")
    source = create(name, seed=4)
    state = {f"module.{k}": v for k, v in source.module.state_dict().items()
             if not k.endswith("num_batches_tracked")}  # files of older PyTorch lack the counters
    hub.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 43, "state_dict": state}, hub / filename)
    loaded = create(name, weights="imagenet")
    assert loaded.weights == "imagenet" and loaded.weights_id == source.weights_id
