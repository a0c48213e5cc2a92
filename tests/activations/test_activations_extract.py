"""Full-activation extraction: spikes, time steps, resets, coordinates, determinism."""

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.activations import extract
from workbench.errors import ValidationError
from workbench.models import create


def test_spiking_layers_emit_binary_spikes(sew8, images):
    layers = ["sn1", "block1.0.sn1", "block2.0.sn2", "block3.0.downsample_sn"]
    out = extract(sew8, images, layers=layers + ["block1.0", "block3.0"], time_reduce=None)
    for layer in layers:
        values = np.unique(out[layer].values)
        assert set(values) <= {0.0, 1.0} and len(values) == 2, layer
    for block in ("block1.0", "block3.0"):  # SEW (ADD) blocks sum two spike trains: 0, 1 or 2
        assert set(np.unique(out[block].values)) <= {0.0, 1.0, 2.0}


def test_spiking_resnet_block_outputs_are_spikes(images):
    model = create("spiking_resnet18").with_preprocessing(input_size=32)
    out = extract(model, images[:2], layers=["layer1.0", "layer4.1"], time_reduce=None)
    for acts in out.values():
        assert set(np.unique(acts.values)) <= {0.0, 1.0}


def test_time_average_equals_averaging_by_hand(sew8, images):
    from spikingjelly.activation_based import functional

    per_step = extract(sew8, images, layers=["block2.0", "sn1"], time_reduce=None, batch_size=3)
    mean = extract(sew8, images, layers=["block2.0", "sn1"], time_reduce="mean", batch_size=3)
    assert per_step["sn1"].dims == ("stimulus", "time_step", "neuroid")
    assert per_step["sn1"].sizes["time_step"] == 4
    np.testing.assert_allclose(per_step["block2.0"].values.mean(axis=1), mean["block2.0"].values,
                               rtol=1e-6)
    # independently: repeat the input over T by hand, hook the module, average the spikes
    seen = []
    handle = sew8.module.get_submodule("block2.0").register_forward_hook(
        lambda m, i, o: seen.append(o.clone()))
    x = torch.stack([sew8.preprocessing(im) for im in images])
    with torch.no_grad():
        functional.reset_net(sew8.module)
        sew8.module(x.unsqueeze(0).repeat(4, 1, 1, 1, 1))
        functional.reset_net(sew8.module)
    handle.remove()
    by_hand = seen[0].mean(dim=0).reshape(len(images), -1).numpy()
    np.testing.assert_allclose(mean["block2.0"].values, by_hand, rtol=1e-6)


def test_state_is_reset_between_batches(sew8, images):
    one = extract(sew8, images, layers=["block3.0"], batch_size=1)["block3.0"].values
    all_at_once = extract(sew8, images, layers=["block3.0"], batch_size=8)["block3.0"].values
    np.testing.assert_allclose(one, all_at_once, atol=1e-6)


def test_time_steps_argument(sew8, images, cornet):
    out = extract(sew8, images[:2], layers=["sn1"], time_steps=2, time_reduce=None)
    assert out["sn1"].sizes["time_step"] == 2
    with pytest.raises(ValidationError, match="time_steps=4 given for the non-spiking model cornet_z"):
        extract(cornet, images, time_steps=4)
    with pytest.raises(ValidationError, match="time_reduce='max' is not valid"):
        extract(sew8, images, time_reduce="max")


def test_cnn_layers_match_a_direct_forward(cornet, images):
    out = extract(cornet, images, layers=["V2", "decoder.avgpool"], batch_size=3)
    x = torch.stack([cornet.preprocessing(im) for im in images])
    with torch.no_grad():
        v2 = cornet.module.V2(cornet.module.V1(x))
        pooled = cornet.module.IT(cornet.module.V4(v2)).mean(dim=(2, 3))
    np.testing.assert_allclose(out["V2"].values, v2.reshape(len(images), -1).numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(out["decoder.avgpool"].values, pooled.numpy(), rtol=1e-5, atol=1e-6)


def test_coordinates_describe_the_flattening(cornet, images):
    acts = extract(cornet, images[:2], layers=["V4"])["V4"]  # (256, 3, 3) per image at 48 px
    assert acts.shape == (2, 256 * 3 * 3)
    assert acts["channel"].values[3 * 3] == 1 and acts["spatial_x"].values[1] == 1
    assert acts["spatial_y"].values[3] == 1 and acts["spatial_y"].values[2] == 0
    assert acts["layer"].item() == "V4" and acts["model"].item() == "cornet_z"
    assert list(acts["stimulus_id"].values) == ["0", "1"]
    assert len(set(acts["neuroid_id"].values)) == acts.shape[1]


def test_tokens_and_channels_last(images):
    deit = create("deit_tiny")
    tokens = extract(deit, images[:1], layers=["blocks.0"])["blocks.0"]
    assert tokens.shape == (1, 197 * 192)
    assert tokens["token"].values.max() == 196 and tokens["channel"].values.max() == 191
    swin = create("swin_t").with_preprocessing(input_size=64)
    stage = extract(swin, images[:1], layers=["features.1"])["features.1"]  # (16, 16, 96) NHWC
    assert stage["channel"].values[:3].tolist() == [0, 1, 2]
    assert stage["spatial_y"].values.max() == 15 and stage["channel"].values.max() == 95


def test_stimulus_sets_with_ids_and_pil_images(cornet, images):
    class Stimuli:
        ids = [f"img{i}" for i in range(3)]

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return Image.fromarray(images[i])

    out = extract(cornet, Stimuli(), layers=["V1"])
    assert list(out["V1"]["stimulus_id"].values) == ["img0", "img1", "img2"]
    np.testing.assert_array_equal(out["V1"].values, extract(cornet, images[:3], layers=["V1"])["V1"].values)


def test_identical_seeds_give_identical_results(images):
    a = extract(create("sew_resnet8", seed=2).with_preprocessing(input_size=32), images[:3])
    b = extract(create("sew_resnet8", seed=2).with_preprocessing(input_size=32), images[:3])
    for layer in a:
        np.testing.assert_array_equal(a[layer].values, b[layer].values)


def test_bad_arguments_fail_before_any_forward(cornet, images, count_forward):
    counter = count_forward(cornet.module)
    with pytest.raises(ValidationError, match=r"\['V7'\] not in cornet_z; expected one or more of \['V1'"):
        extract(cornet, images, layers=["V1", "V7"])
    with pytest.raises(ValidationError, match="batch_size must be >= 1"):
        extract(cornet, images, batch_size=0)
    with pytest.raises(ValidationError, match="stimuli is empty"):
        extract(cornet, [])
    with pytest.raises(ValidationError, match="device='gpu0' is not a torch device"):
        extract(cornet, images, device="gpu0")
    assert counter.calls == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without GPU")
def test_cuda_without_gpu_is_a_clear_error(cornet, images):
    with pytest.raises(ValidationError, match="device='cuda' requested but no CUDA GPU"):
        extract(cornet, images, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_result(sew8, images):
    cpu = extract(sew8, images, layers=["block2.0"])["block2.0"].values
    gpu = extract(sew8, images, layers=["block2.0"], device="cuda")["block2.0"].values
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)


def test_a_layer_that_was_not_extracted_is_a_keyerror_naming_the_layers(cornet, images, tmp_path):
    from workbench.activations import extract_stats

    stats = extract_stats(cornet, images[:4], ["V1", "V4"], cache=tmp_path)
    per_step = extract_stats(cornet, images[:4], ["V1", "V4"], cache=tmp_path, time_reduce=None)
    features = extract(cornet, images[:4], ["V1", "V4"])
    for by_layer in (stats, per_step, features):
        assert by_layer.get("V4.0") is None and "V4.0" not in by_layer
        with pytest.raises(KeyError) as info:
            by_layer["V4.0"]
        assert info.value.args[0] == "layer 'V4.0' was not extracted; did you mean 'V4'? (extracted layers: V1, V4)"
    with pytest.raises(KeyError) as info:
        stats["layer9"]
    assert str(info.value) == "\"layer 'layer9' was not extracted (extracted layers: V1, V4)\""
