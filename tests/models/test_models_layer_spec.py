"""Layer specs: the grammar, and each kind read by hooks and by extraction against a direct
computation (a module's output, its input, one element of a tuple output, one of its calls)."""

import numpy as np
import pytest
import torch
from torch import nn

from workbench.activations import extract
from workbench.activations.hooks import hooked
from workbench.data.stimuli import StimulusSet
from workbench.errors import ValidationError
from workbench.models import LayerSpec, parse_layer_spec, wrap_model

N = 6


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("spec, parsed", [
    ("layer3.1", LayerSpec("layer3.1")),
    ("classifier:input", LayerSpec("classifier", "input")),
    ("blocks.0:out[1]", LayerSpec("blocks.0", "out", 1)),
    ("V4:call[0]", LayerSpec("V4", "call", 0)),
    ("V4:call[-1]", LayerSpec("V4", "call", -1)),
    ("stage_2.conv-a:out[12]", LayerSpec("stage_2.conv-a", "out", 12)),
])
def test_a_spec_parses_and_prints_as_written(spec, parsed):
    assert parse_layer_spec(spec) == parsed
    assert str(parsed) == spec


@pytest.mark.parametrize("spec", ["", "a:", "a:output", "a:out[]", "a:out[01]", "a:call[-0]", "a:call[+1]",
                                  "a..b", ".a", "a.", "features[3]", "a:input[0]", "a b", "a:out[1]:input", 3])
def test_a_malformed_spec_is_named_with_the_grammar(spec):
    with pytest.raises(ValidationError, match=r"layer spec .* is not valid; expected .*<path>:input.*"
                                              r"<path>:out\[i\].*<path>:call\[k\]"):
        parse_layer_spec(spec)


class _Pair(nn.Module):
    def forward(self, x):
        return x + 1, x * 2


class _Net(nn.Module):
    """stem -> pair (a tuple) -> cell run 3 times (its output then changed in place) -> head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.pair = _Pair()
        self.cell = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        _, x = self.pair(self.stem(x))
        for _ in range(3):
            x = self.cell(x)
            x.mul_(0.5)  # in place, after the hook ran: a kept call must be a copy
        return self.head(x.mean((2, 3)))


def _direct(net, x):
    """Every tensor the specs below read, computed by calling the submodules directly."""
    with torch.no_grad():
        stem = net.stem(x)
        element = net.pair(stem)[1]
        calls, h = [], element
        for _ in range(3):
            h = net.cell(h)
            calls.append(h.clone())
            h = h * 0.5
        pooled = h.mean((2, 3))
        return {"stem": stem, "pair:out[1]": element, "pair:out[-2]": stem + 1,
                "cell:call[0]": calls[0], "cell:call[1]": calls[1], "cell:call[-1]": calls[2],
                "cell:call[-3]": calls[0], "head:input": pooled, "head": net.head(pooled)}


def test_hooks_read_each_kind_of_spec_as_a_direct_computation():
    torch.manual_seed(0)
    net, x = _Net().eval(), torch.randn(2, 3, 8, 8)
    expected = _direct(net, x)
    seen = {}
    with hooked(net, list(expected), lambda layer, out: seen.setdefault(layer, []).append(out.clone())):
        with torch.no_grad():
            net(x)
            net(x)  # a second pass: call counts start again
    assert sorted(seen) == sorted(expected)
    for layer, value in expected.items():
        assert len(seen[layer]) == 2, layer
        for got in seen[layer]:
            torch.testing.assert_close(got, value, rtol=0, atol=0, msg=layer)


@pytest.mark.parametrize("spec, message", [
    ("cell:call[3]", r"'cell:call\[3\]' asks for call 3, but the module ran 3 time\(s\)"),
    ("cell:call[-4]", r"'cell:call\[-4\]' asks for call -4, but the module ran 3 time\(s\)"),
    ("pair:out[2]", r"'pair:out\[2\]' asks for element 2 of a tuple/list output; the module returned a tuple of 2"),
    ("stem:out[0]", r"'stem:out\[0\]' asks for element 0 .* returned a Tensor"),
    ("pair", r"layer 'pair': the output is a tuple, expected a tensor; .* ':out\[i\]'"),
])
def test_a_spec_that_does_not_fit_the_forward_pass_is_named(spec, message):
    net = _Net()
    with hooked(net, [spec], lambda *_: None), torch.no_grad(), pytest.raises(ValidationError, match=message):
        net(torch.randn(1, 3, 8, 8))


def test_a_spec_on_a_missing_module_is_refused_before_any_hook():
    net = _Net()
    with pytest.raises(ValidationError, match=r"\['nope:input'\] are not submodules of _Net"):
        with hooked(net, ["stem", "nope:input"], lambda *_: None):
            pass
    assert not net.stem._forward_hooks and not net._forward_pre_hooks


def _stimuli():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(N, 8, 8, 3), dtype=np.uint8)
    return StimulusSet.from_arrays(list(images), [f"s{i}" for i in range(N)])


def test_extraction_of_a_cnn_reads_every_kind_of_spec():
    torch.manual_seed(0)
    net = _Net()
    specs = ["stem", "pair:out[1]", "cell:call[1]", "cell:call[-1]", "head:input"]
    model = wrap_model(net, specs, input_size=8)
    assert model.layers == tuple(specs) and model.check_layers(["head:input"]) == ("head:input",)
    features = extract(model, _stimuli(), batch_size=4)
    batch = torch.stack([model.preprocessing(_stimuli()[i]) for i in range(N)])
    expected = _direct(net, batch)
    for spec in specs:
        np.testing.assert_allclose(features[spec].values, expected[spec].flatten(1).numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=spec)


def test_extraction_of_an_snn_averages_a_spec_over_time_steps():
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)
    net = nn.Sequential(layer.Conv2d(3, 4, 3, padding=1), neuron.IFNode(v_threshold=0.2),
                        layer.Flatten(), layer.Linear(4 * 8 * 8, 5))
    model = wrap_model(net, ["1", "3:input"], input_size=8)
    features = extract(model, _stimuli(), time_steps=3, batch_size=4)
    batch = torch.stack([model.preprocessing(_stimuli()[i]) for i in range(N)])
    functional.reset_net(net)
    with torch.no_grad():
        spikes = net[1](net[0](batch.unsqueeze(0).repeat(3, 1, 1, 1, 1)))  # (T, N, C, H, W)
    functional.reset_net(net)
    assert spikes.sum() > 0
    expected = spikes.mean(0).flatten(1).numpy()
    np.testing.assert_allclose(features["1"].values, expected, rtol=1e-6)
    np.testing.assert_allclose(features["3:input"].values, expected, rtol=1e-6)  # Flatten changes no value


def test_checks_name_a_spec_on_a_missing_module_or_a_malformed_one():
    model = wrap_model(_Net(), ["stem"], input_size=8)
    with pytest.raises(ValidationError, match=r"layer spec 'stem:out\[0\]x' is not valid; expected .*<path>:call\[k\]"):
        model.check_layers(["stem:out[0]x"])
    with pytest.raises(ValidationError, match=r"layer\(s\) \['body:input'\] not in custom; .*<path>:call\[k\]"):
        model.check_layers(["body:input"])
    with pytest.raises(ValidationError, match=r"layer\(s\) \['body:call\[0\]'\] are not submodules of the _Net"):
        wrap_model(_Net(), ["stem", "body:call[0]"])
