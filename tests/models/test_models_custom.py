"""Your own torch model: wrap_model, plugins by name (package.module:factory, entry points),
and model-vs-model comparison (compare_models, ``workbench compare-models``)."""

import numpy as np
import pytest
import torch
from torch import nn

from workbench.activations import extract
from workbench.cli import main
from workbench.data.stimuli import StimulusSet
from workbench.errors import ValidationError
from workbench.metrics import cka, compare_rdms, rdm, zscore_features
from workbench.models import Preprocessing, check_model_names, create, model_family, wrap_model
from workbench.models import resolve

N = 12


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))


def _stimuli():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(N, 16, 16, 3), dtype=np.uint8)
    return StimulusSet.from_arrays(list(images), [f"s{i}" for i in range(N)])


def test_wrap_model_gives_what_extraction_needs_and_the_layers_outputs():
    net = _net()
    model = wrap_model(net, ["1", "4"], input_size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), name="mine")
    assert model.layers == ("1", "4") and model.family == "cnn" and model.time_steps == 1
    assert model.preprocessing == Preprocessing(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    stimuli = _stimuli()
    features = extract(model, stimuli, ["1", "4"])
    # the same numbers as a forward pass by hand on the preprocessed images
    batch = torch.stack([model.preprocessing(stimuli[i]) for i in range(N)])
    with torch.no_grad():
        np.testing.assert_allclose(features["4"].values, net(batch).numpy(), rtol=1e-4, atol=1e-5)
    assert features["1"].shape == (N, 4 * 16 * 16)
    assert wrap_model(_net()).layers == ("0", "1", "2", "3", "4")  # default: every child


def test_wrap_model_rejects_what_it_cannot_use():
    with pytest.raises(ValidationError, match=r"layer\(s\) \['fc'\] are not submodules of the Sequential"):
        wrap_model(_net(), ["fc"])
    with pytest.raises(ValidationError, match="must be a torch.nn.Module"):
        wrap_model("resnet18", ["x"])
    with pytest.raises(ValidationError, match="without duplicates"):
        wrap_model(_net(), ["1", "1"])
    with pytest.raises(ValidationError, match="time_steps=4 is not valid for family 'cnn'"):
        wrap_model(_net(), ["1"], time_steps=4)


def test_a_spiking_network_is_wrapped_as_an_snn():
    from spikingjelly.activation_based import layer, neuron

    net = nn.Sequential(layer.Conv2d(3, 4, 3), neuron.IFNode(v_threshold=0.2), layer.Flatten())
    model = wrap_model(net, ["1"], input_size=16)
    assert model.family == "snn" and model.is_spiking and model.time_steps == 4
    assert extract(model, _stimuli(), ["1"], time_steps=2)["1"].shape == (N, 4 * 14 * 14)


PLUGIN = '''
from torch import nn
from workbench.models import Architecture, Preprocessing, wrap_model


def small():
    """A two-layer test network."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
    return wrap_model(net, ["0", "1"], input_size=16)


def as_arch(pretrained=False):
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())
    return Architecture(net, ("0", "1"), Preprocessing(16))


def bare():
    return nn.Linear(2, 2)
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "wb_custom_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "wb_custom_plugin"
    for name in list(resolve._PLUGINS):
        if name.startswith("wb_custom_plugin") or name == "my_entry_net":
            resolve._PLUGINS.pop(name)


def test_package_module_factory_names_are_models(plugin):
    model = create(f"{plugin}:small", seed=1)
    assert model.name == f"{plugin}:small" and model.layers == ("0", "1")
    assert model_family(f"{plugin}:small") == "cnn"
    assert create(f"{plugin}:as_arch").layers == ("0", "1")
    assert check_model_names(["cornet_z", f"{plugin}:small"]) == ["cornet_z", f"{plugin}:small"]
    with pytest.raises(ValidationError, match="returned a bare Linear; return workbench.models.wrap_model"):
        check_model_names([f"{plugin}:bare"])
    with pytest.raises(ValidationError, match=f"module '{plugin}' has no attribute 'nothere'"):
        check_model_names([f"{plugin}:nothere"])
    with pytest.raises(ValidationError, match="2 model names are not valid: unknown model 'resnet19'.*'alexnt'"):
        check_model_names(["resnet19", "alexnt", "cornet_z"])
    from workbench.errors import WeightsUnavailableError

    with pytest.raises(WeightsUnavailableError, match="declares no published weights"):
        create(f"{plugin}:small", "imagenet")


def test_entry_point_group_makes_a_model_known_by_name(plugin, tmp_path, monkeypatch):
    dist = tmp_path / "wb_custom_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wb-custom-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[workbench.models]\nmy_entry_net = {plugin}:small\n")
    assert "my_entry_net" in resolve.entry_point_names()
    model = create("my_entry_net")
    assert model.name == "my_entry_net" and model.layers == ("0", "1")
    assert model.weights.startswith("custom (sha256 ")  # its factory's weights, not random (issue 30)


def test_compare_models_self_similarity_and_direct_values(plugin):
    from workbench.analysis.model_comparison import compare_models

    stimuli = _stimuli()
    sim = compare_models("cornet_z", "cornet_z", stimuli, layers_a=["V1", "V2"], layers_b=["V1", "V2"])
    assert sim.dims == ("metric", "layer_a", "layer_b") and list(sim["metric"].values) == ["cka", "rsa"]
    np.testing.assert_allclose(np.diagonal(sim.values, axis1=1, axis2=2), 1.0, atol=1e-5)
    np.testing.assert_allclose(sim.values, np.swapaxes(sim.values, 1, 2), atol=1e-6)
    other = compare_models("cornet_z", f"{plugin}:small", stimuli, layers_a=["V2"])
    model_a, model_b = create("cornet_z"), create(f"{plugin}:small")
    xa = zscore_features(extract(model_a, stimuli, ["V2"])["V2"].values)
    xb = zscore_features(extract(model_b, stimuli, ["1"])["1"].values)
    assert float(other.sel(metric="cka", layer_a="V2", layer_b="1")) == pytest.approx(cka(xa, xb), rel=1e-4)
    assert float(other.sel(metric="rsa", layer_a="V2", layer_b="1")) == pytest.approx(
        compare_rdms(rdm(xa), rdm(xb)), rel=1e-4)


class _SilentOnDarkImages(nn.Module):
    """A convolution whose output is zero for the darker half of the images (as a spiking layer
    that emits no spike for some stimuli): their patterns have zero variance."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.gate = nn.Identity()

    def forward(self, x):
        lit = (x.mean(dim=(1, 2, 3)) > x.mean(dim=(1, 2, 3)).median()).float()
        return self.gate(self.conv(x) * lit[:, None, None, None])


def test_compare_models_follows_the_zero_variance_policy_for_rsa():
    from workbench.analysis import Protocol
    from workbench.analysis.model_comparison import compare_models
    from workbench.metrics.derived import DerivedStats

    stimuli = _stimuli()
    silent = wrap_model(_SilentOnDarkImages(), ["conv", "gate"], input_size=16, name="silent")
    dense = wrap_model(_net(), ["0"], input_size=16, name="dense")
    sim = compare_models(silent, dense, stimuli)  # default: such pairs are unscored, nothing raises
    assert np.isnan(float(sim.sel(metric="rsa", layer_a="gate", layer_b="0")))
    assert np.isfinite(float(sim.sel(metric="rsa", layer_a="conv", layer_b="0")))
    assert np.isfinite(sim.sel(metric="cka").values).all()
    protocol = Protocol(zero_variance_stimuli="exclude")
    excluded = compare_models(silent, dense, stimuli, protocol=protocol)
    gate = zscore_features(extract(silent, stimuli, ["gate"])["gate"].values)
    xb = zscore_features(extract(dense, stimuli, ["0"])["0"].values)
    flat = DerivedStats.from_input(gate).zero_variance_rows()
    assert 0 < flat.size < N
    keep = np.setdiff1d(np.arange(N), flat)
    assert float(excluded.sel(metric="rsa", layer_a="gate", layer_b="0")) == pytest.approx(
        compare_rdms(rdm(gate[keep]), rdm(xb[keep])), rel=1e-4)
    np.testing.assert_array_equal(excluded.sel(metric="cka").values, sim.sel(metric="cka").values)


def test_compare_models_command_writes_results_and_heatmaps(plugin, tmp_path, capsys):
    import xarray as xr

    manifest = _write_tiny_dataset(tmp_path)
    out = tmp_path / "cmp"
    argv = ["compare-models", "cornet_z", f"{plugin}:small", "--datasets", str(manifest), "--out", str(out),
            "--layers-a", "V1", "V4"]
    assert main(argv) == 0, capsys.readouterr().err
    sim = xr.load_dataarray(out / "model_similarity.nc", engine="h5netcdf")
    assert sim.shape == (2, 2, 2) and sim.attrs["model_b"] == f"{plugin}:small" and sim.attrs["n_stimuli"] == 16
    assert {"model_similarity_cka.png", "model_similarity_rsa.svg"} <= {p.name for p in (out / "figures").iterdir()}
    assert (out / "model_similarity.csv").read_text().count("\n") == 1 + 8
    assert main(["compare-models", "cornet_z", "resnet19", "--dataset", str(manifest), "--out", str(out)]) == 1
    assert "unknown model 'resnet19'" in capsys.readouterr().err


def _write_tiny_dataset(folder):
    """A 16-image recording (8 neuroids x 4 repeats, ``loader: local``); returns its manifest."""
    import yaml
    from PIL import Image

    rng = np.random.default_rng(0)
    root = folder / "tiny"
    (root / "images").mkdir(parents=True)
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "images" / f"img{i:02d}.png")
    np.save(root / "responses.npy", rng.gamma(2.0, size=(16, 8, 1)) + 0.2 * rng.normal(size=(16, 8, 4)))
    manifest = {
        "name": "tiny_v1", "description": "synthetic test recording", "species": "macaque",
        "regions": ["V1"], "stimuli": {"count": 16}, "license": "CC0",
        "citation": "Synthetic data written by the test suite.", "loader": "local", "root": "tiny",
        "files": [{"path": "responses.npy"}],
        "options": {"responses": "responses.npy", "images": "images", "dims": ["stimulus", "neuroid", "repetition"]},
    }
    path = folder / "tiny_v1.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


TRAINED = '''
import torch
from torch import nn
from workbench.models import wrap_model


def trained():
    """Loads its own checkpoint, as a user's factory does."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
    net.load_state_dict(torch.load({path!r}, weights_only=True))
    return wrap_model(net, ["0", "1"], input_size=16)
'''


def test_checking_a_factory_that_loads_its_checkpoint_warns_nothing(plugin, tmp_path, recwarn):
    from workbench.analysis.checks import check_layers, check_weights
    from workbench.models import model_info

    state = {"0.weight": torch.randn(4, 3, 3, 3), "0.bias": torch.randn(4)}
    torch.save(state, tmp_path / "trained.pth")
    (tmp_path / f"{plugin}_trained.py").write_text(TRAINED.format(path=str(tmp_path / "trained.pth")))
    name = f"{plugin}_trained:trained"
    assert check_model_names([name]) == [name] and model_info(name).layers == ("0", "1")
    assert check_layers(["0"], [name]) == ("0",)
    check_weights({name: str(tmp_path / "trained.pth")})
    model = create(name)
    assert [str(w.message) for w in recwarn] == []
    assert torch.equal(model.module[0].weight, state["0.weight"]) and torch.equal(model.module[0].bias, state["0.bias"])


LABELLED = TRAINED + '''

def labelled():
    """Loads its checkpoint and says what it holds."""
    net = trained().module
    return wrap_model(net, ["0", "1"], input_size=16, weights="digits, epoch 3")
'''


def test_a_network_is_labelled_by_the_weights_it_holds(plugin, tmp_path):
    """Issue 30, point 2: a factory's network is its own label, else its state dict's sha256;
    never "random" (create() gets no weights for it)."""
    from workbench.models import state_dict_hash

    state = {"0.weight": torch.randn(4, 3, 3, 3), "0.bias": torch.randn(4)}
    torch.save(state, tmp_path / "trained.pth")
    (tmp_path / f"{plugin}_labels.py").write_text(LABELLED.format(path=str(tmp_path / "trained.pth")))
    model = create(f"{plugin}_labels:trained")
    assert model.weights == f"custom (sha256 {state_dict_hash(model.module)[:12]})"
    assert create(f"{plugin}_labels:labelled").weights == "digits, epoch 3"
    assert create(f"{plugin}:as_arch").weights.startswith("custom (sha256 ")
    assert create("cornet_z", seed=2).weights == "random(seed=2)"
    wrapped = wrap_model(_net(), ["1", "4"], input_size=16)
    before = wrapped.weights
    assert before == f"custom (sha256 {state_dict_hash(wrapped.module)[:12]})"
    with torch.no_grad():
        wrapped.module[4].weight.mul_(2)  # in place, as load_state_dict copies
    assert wrapped.weights != before and wrapped.weights_id == state_dict_hash(wrapped.module)


def test_the_activation_cache_follows_the_weights_the_network_holds_when_extracted(tmp_path):
    """Issue 30, point 1: a wrapped network whose weights change after a first extraction is
    extracted again, not served the cached statistics of its former weights."""
    from workbench.activations import extract_stats

    stimuli, cache = _stimuli(), tmp_path / "stats"
    model = wrap_model(_net(), ["1", "4"], input_size=16)
    first = extract_stats(model, stimuli, cache=cache)["4"]
    model.module.load_state_dict({k: 2 * v for k, v in model.module.state_dict().items()})
    second = extract_stats(model, stimuli, cache=cache)["4"]
    direct = extract_stats(model, stimuli, cache=False)["4"]
    np.testing.assert_allclose(second.gram, direct.gram)
    assert not np.allclose(first.gram, second.gram)
