"""SAVC against the reference code (zysong0113/SAVC), each definition recomputed here from a reading of it.

Read, not copied: ``fantasy.rotation2`` stacks ``rot90(x, k)`` for k in (0, 2) along a new dim 1
and flattens (row ``n M + t``); ``helper.base_train`` stacks each image's small crops (row
``i S + c``) and applies the fantasy, and forms ``joint_labels = label * M + t``;
``Network.forward`` views the small-crop projections as (N M, S, d) against the N M keys, so
small row ``r`` pairs with key ``r // S`` and takes ``targets_global.repeat_interleave(S)``;
``losses.SupContrastive``: ``mean_i sum_p log(1 + sum_neg exp(s) * exp(-s_p)) / |P_i|``;
``Network``'s projector ``Linear(d, d) - ReLU - encoder.fc`` with ``fc = Linear(d, moco_dim,
bias=False)``; ``resnet20_cifar``'s Kaiming-normal (fan-out, ReLU) convolutions; CIFAR-100's
``Normalize([0.5071, 0.4867, 0.4408], [0.2675, 0.2565, 0.2761])``. Tolerances per test.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from workbench.methods.savc.contrastive import MomentumQueue, random_resized_crops
from workbench.methods.savc.train import SAVCConfig, make_step
from workbench.models.savc import load_backbone_weights
from workbench.training import build_network


def reference_rotation2(images):
    size = images.shape[1:]
    return torch.stack([torch.rot90(images, k, (2, 3)) for k in (0, 2)], 1).view(-1, *size)


def reference_sup_contrastive(logits, targets):
    sum_neg = ((1 - targets) * torch.exp(logits)).sum(1, keepdim=True)
    loss = torch.log(1 + sum_neg * (targets * torch.exp(-logits))).sum(1) / targets.sum(1)
    return loss.mean()


def _setup(pairing):
    cfg = SAVCConfig(arch="savc_net", fantasy="rotation2", moco_k=24, moco_dim=8, small_crops=4, small_size=12,
                     small_pairing=pairing, moco_t=0.5)
    network = build_network("savc_net", seed=0, num_classes=6, fantasy="rotation2", backbone="tiny",
                            widths=(4, 4, 8, 8), moco_dim=8)
    queue = MomentumQueue(network.module, 24, 8, 0.9)
    queue.labels[:12] = torch.arange(12) % 8           # some queued keys share the batch's virtual labels
    return cfg, network, queue


@pytest.mark.parametrize("pairing", ["reference", "transformation"])
def test_small_crop_loss_pairs_crops_keys_and_virtual_labels_as_the_reference(pairing):
    cfg, network, queue = _setup(pairing)
    net = network.module
    before = copy.deepcopy(queue)
    x, labels = torch.randn(3, 3, 32, 32), torch.tensor([0, 3, 1])
    torch.manual_seed(1)
    _, logs = make_step(cfg, "savc", 4, queue)(network, net, x, labels, cfg)
    # the same crops (drawn in the step's documented order: query, key, small crops)
    torch.manual_seed(1)
    random_resized_crops(x, 32, (0.9, 1.0))
    key = random_resized_crops(x, 32, (0.9, 1.0))
    small = random_resized_crops(x.repeat_interleave(4, 0), 12, (0.2, 0.7))   # rows i S + c
    n, s, m = 3, 4, 2
    joint = torch.stack([labels * m + t for t in range(m)], 1).view(-1)      # the reference's joint_labels
    q_small = F.normalize(net.projector(net.features(reference_rotation2(small))), dim=-1)
    before.update(net)
    k = before.keys(reference_rotation2(key))                                 # (N M, d), row i M + t
    if pairing == "reference":
        q_view = q_small.view(n * m, -1, q_small.shape[-1])                  # (N M, S, d)
        l_pos = (q_view * k.unsqueeze(1)).sum(2).view(-1, 1)
        positives = ((joint[:, None] == before.labels[None, :]) & (joint[:, None] != -1)).float()
        targets = torch.cat([torch.ones(n * m, 1), positives], 1).repeat_interleave(s, 0)
    else:   # every crop with its own image's and transformation's key and virtual label
        own = torch.arange(n * s * m) // (s * m) * m + torch.arange(n * s * m) % m
        l_pos = (q_small * k[own]).sum(1, keepdim=True)
        positives = ((joint[own][:, None] == before.labels[None, :]) & (joint[own][:, None] != -1)).float()
        targets = torch.cat([torch.ones(n * s * m, 1), positives], 1)
    logits = torch.cat([l_pos, q_small @ before.queue.T], 1) / 0.5
    # float32 forward passes and the exp/log of the reference form: relative 1e-5
    torch.testing.assert_close(logs["loss_small"], reference_sup_contrastive(logits, targets).detach(),
                               rtol=1e-5, atol=1e-6)


def test_projector_last_layer_has_no_bias_and_resnet20_convs_are_kaiming_fan_out():
    arch = build_network("savc_net", seed=0, num_classes=5, backbone="resnet20", projector_bias=False)
    net = arch.module
    assert [type(layer).__name__ for layer in net.projector] == ["Linear", "ReLU", "Linear"]
    assert net.projector[0].bias is not None and net.projector[2].bias is None
    assert (net.projector[2].in_features, net.projector[2].out_features) == (64, 32)
    # kaiming_normal_(fan_out, relu): std sqrt(2 / (out_channels * 9)); 16 x 16 x 9 = 2304 weights
    # in layer1's convolutions: the sample std within 10 % (well above 3 standard errors)
    weights = net.encoder.layer1[0].conv1.weight
    assert weights.std().item() == pytest.approx(math.sqrt(2 / (16 * 9)), rel=0.1)
    wide = net.encoder.layer3[0].conv2.weight
    assert wide.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    assert wide.mean().abs().item() < 3 * math.sqrt(2 / (64 * 9)) / math.sqrt(wide.numel())


def test_backbone_weights_load_every_resnet18_weight_but_the_classifier(tmp_path):
    import torchvision

    torch.manual_seed(2)
    source = torchvision.models.resnet18()
    for bn in (m for m in source.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.normal_()
    path = tmp_path / "resnet18.pt"
    torch.save(source.state_dict(), path)
    net = build_network("savc_net", seed=0, num_classes=5, backbone="resnet18").module
    load_backbone_weights(net, str(path))
    mine = net.encoder.state_dict()
    expected = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    assert set(mine) == set(expected)
    assert all(torch.equal(mine[k], v) for k, v in expected.items())


def test_backbone_weights_imagenet_reads_torchvision_weights_from_the_hub_cache(monkeypatch, tmp_path):
    import torchvision

    from workbench.models.weights import hub_checkpoint_dir

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(3)
    source = torchvision.models.resnet18().state_dict()
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    hub_checkpoint_dir().mkdir(parents=True)
    torch.save(source, hub_checkpoint_dir() / url.rsplit("/", 1)[-1])  # where torchvision keeps it
    cfg = SAVCConfig(arch="savc_net", arch_kwargs={"backbone": "resnet18"}, backbone_weights="imagenet")
    from workbench.methods.savc.train import build_variant_network

    net = build_variant_network(cfg, "savc", 5).module
    assert torch.equal(net.encoder.layer4[1].conv2.weight, source["layer4.1.conv2.weight"])


def test_backbone_weights_errors_name_what_was_expected(tmp_path):
    from workbench.errors import ValidationError

    small = build_network("savc_net", seed=0, num_classes=5, backbone="small").module
    with pytest.raises(ValidationError, match="needs the 'resnet18' backbone"):
        load_backbone_weights(small, "imagenet")
    r18 = build_network("savc_net", seed=0, num_classes=5, backbone="resnet18").module
    with pytest.raises(ValidationError, match="neither 'imagenet' nor an existing file"):
        load_backbone_weights(r18, str(tmp_path / "absent.pt"))
    torch.save({"weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValidationError, match="is not a torchvision ResNet-18 state dict"):
        load_backbone_weights(r18, str(tmp_path / "other.pt"))


def test_cifar100_is_normalised_with_the_reference_constants(tmp_path):
    import pickle

    from workbench.data.training.smoke import write_cifar
    from workbench.methods.savc.train import load_data

    root = write_cifar(tmp_path, "cifar100")
    config = SAVCConfig(arch="savc_net", dataset="cifar100", data_root=str(root))
    data = load_data(config, augment=False)
    mean, std = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)
    assert (data.preprocessing.mean, data.preprocessing.std) == (mean, std)
    raw = pickle.loads((root / "cifar-100-python" / "test").read_bytes())
    for index in (0, 57):
        pixels = torch.from_numpy(raw[b"data"][index].reshape(3, 32, 32)).float() / 255.0
        expected = (pixels - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        image, label = data.test[index]
        # float32 affine re-normalisation of the dataset's own: absolute 1e-5 (inputs span about +-2)
        torch.testing.assert_close(image, expected, rtol=0, atol=1e-5)
        assert label == raw[b"fine_labels"][index]
    train = pickle.loads((root / "cifar-100-python" / "train").read_bytes())
    assert list(data.train.targets) == list(train[b"fine_labels"])


def test_small_crop_keys_reference_rows_and_errors():
    from workbench.errors import ValidationError
    from workbench.methods.savc.contrastive import small_crop_keys

    # M = 2, S = 4, one image: crops 0, 1 (both transformations) -> key 0; crops 2, 3 -> key 1
    assert small_crop_keys(1, 4, 2, "reference").tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert small_crop_keys(1, 4, 2, "transformation").tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    with pytest.raises(ValidationError, match=r"small-crop pairing 'all' is unknown; expected one of "
                                              r"\['transformation', 'reference'\]"):
        small_crop_keys(1, 4, 2, "all")
    with pytest.raises(ValidationError, match=r"SAVCConfig.small_pairing='all' is not valid"):
        SAVCConfig(small_pairing="all")
