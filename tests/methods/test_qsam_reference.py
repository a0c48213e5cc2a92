"""QSAM against the reference code (LiMaPKU/QSAM), each definition recomputed here from a reading of it.

Read, not copied: ``qac(qims) = sum(1 / qims) / 128`` over whatever ``qims`` holds (one image's
two tables in stage 1; the whole batch's tables in stage 2, so the batch size multiplies it);
stage 1's transform ``AddMultiJpgNoise -> Pad(4, reflect) -> RandomHorizontalFlip ->
RandomCrop(32)`` (one draw shared by every quality); ``MultiBatchNorm2d`` (a list routes chunk k
through branch k, a tensor ``w`` mixes ``sum_k w_k BN_k``); ``MetaMLP`` on the raw steps with
``z / sum z``; SGD Nesterov with MultiStepLR([60, 120, 160], 0.2). Tolerances are stated per test.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from workbench.methods.qsam.data import JointAugment, JpegVersions, MetaPairs, SelectVersions, reflect_flip_crop
from workbench.methods.qsam.train import QSAMConfig, chunk_weights, meta_step
from workbench.models.qsam import qsam_cnn

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def reference_tables(quality: int, pixels: np.ndarray) -> np.ndarray:
    """(2, 64) steps Pillow writes at ``quality`` for an RGB image (the reference's ``GetQim``)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="jpeg", quality=quality)
    q = Image.open(buffer).quantization
    return np.array([q[0], q[1]], dtype=np.float64)


def reference_qac(qims) -> float:
    return float(np.sum(1.0 / np.asarray(qims, dtype=np.float64)) / 128.0)


def test_stage1_chunk_weights_are_the_reference_qac_of_each_base_quality():
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    base = (90, 60, 30, 10)
    expected = [reference_qac(reference_tables(q, pixels)) for q in base]
    # float32 weights: relative tolerance 1e-6
    np.testing.assert_allclose(chunk_weights(QSAMConfig(base_qualities=base), base).numpy(), expected, rtol=1e-6)


def _reference_mixer(params, tables):
    """``MetaMLP`` with the given fc1..fc3 parameters on raw tables (N, 128): ``z / sum z``."""
    x = F.relu(F.linear(tables, params["fc1.weight"], params["fc1.bias"]))
    x = F.relu(F.linear(x, params["fc2.weight"], params["fc2.bias"]))
    z = F.linear(x, params["fc3.weight"], params["fc3.bias"])
    total = z.sum(1, keepdim=True)
    return z / (total.clamp_max(-1e-6) + total.clamp_min(1e-5))


@pytest.mark.parametrize("separate", [False, True])
def test_stage2_loss_is_the_reference_batch_times_qac_weighted_mldg_loss(separate):
    torch.manual_seed(3)
    base, held = (90, 10), (50, 30)
    config = QSAMConfig(base_qualities=base, meta_qualities=held, meta_step_size=0.01)
    net = qsam_cnn(num_classes=4, branches=2, widths=(4, 4, 8, 8), table_scale=1.0).module.eval()
    for p in net.backbone.parameters():
        p.requires_grad_(False)
    n = 6
    images = torch.randn(n, 4, 3, 32, 32)
    labels = torch.randint(0, 4, (n, 2)) if separate else torch.randint(0, 4, (n,))

    class Holder:
        module = net

    torch.manual_seed(11)
    loss, logs = meta_step(config, use_qac=True)(Holder, net, images, labels, config)
    torch.manual_seed(11)   # the step's two draws: the base branch k, then the held-out quality j
    k, j = int(torch.randint(2, (1,))), int(torch.randint(2, (1,)))
    pixels = np.full((8, 8, 3), 128, np.uint8)
    qims_train = np.stack([reference_tables(base[k], pixels)] * n)    # the batch's tables (N, 2, 64)
    qims_test = np.stack([reference_tables(held[j], pixels)] * n)
    train_labels, test_labels = (labels[:, 0], labels[:, 1]) if separate else (labels, labels)
    params = {name: p.detach().clone().requires_grad_(True) for name, p in net.mixer.named_parameters()}
    w = _reference_mixer(params, torch.tensor(qims_train, dtype=torch.float32).flatten(1))
    meta_train = reference_qac(qims_train) * F.cross_entropy(net(images[:, k], weights=w), train_labels)
    onehot = torch.zeros(n, 2)
    onehot[:, k] = 1
    l1 = F.l1_loss(w, onehot)
    grads = torch.autograd.grad(meta_train, list(params.values()), create_graph=True)
    adapted = {name: p - 0.01 * g for (name, p), g in zip(params.items(), grads)}
    w_test = _reference_mixer(adapted, torch.tensor(qims_test, dtype=torch.float32).flatten(1))
    meta_test = reference_qac(qims_test) * F.cross_entropy(net(images[:, 2 + j], weights=w_test), test_labels)
    # float32 forward and second-order gradient: relative 1e-5
    torch.testing.assert_close(logs["meta_train"], meta_train.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logs["meta_test"], meta_test.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss.detach(), (meta_train + meta_test + l1).detach(), rtol=1e-5, atol=1e-6)


def test_mixer_reads_the_raw_steps_when_table_scale_is_one():
    torch.manual_seed(4)
    mixer = qsam_cnn(num_classes=3, branches=4, widths=(4, 4, 8, 8), table_scale=1.0).module.mixer
    tables = torch.randint(1, 256, (5, 128)).float()
    params = dict(mixer.named_parameters())
    # The reference divides by sum(z) - 1e-6 (sum(z) + 1e-5 when negative), the method by sum(z): the
    # weights differ by about |w| * 1e-6 / |sum z|, below 1e-6 relative here (|sum z| ~ 10 on raw steps)
    torch.testing.assert_close(mixer(tables), _reference_mixer(params, tables), rtol=1e-6, atol=1e-6)
    scaled = qsam_cnn(num_classes=3, branches=4, widths=(4, 4, 8, 8)).module.mixer
    scaled.load_state_dict(mixer.state_dict())
    # the default /255 input: |sum z| ~ 0.1, so that offset is up to ~1e-4 relative
    torch.testing.assert_close(scaled(tables), _reference_mixer(params, tables / 255.0), rtol=2e-4, atol=1e-6)


class _Pixels(torch.utils.data.Dataset):
    """Normalised images of random uint8 pixels (the un-augmented base split)."""

    def __init__(self, n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.pixels = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.targets = list(range(n))

    def __len__(self):
        return len(self.pixels)

    def __getitem__(self, i):
        x = torch.from_numpy(self.pixels[i]).permute(2, 0, 1).float() / 255.0
        return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None], i


def _reference_stage1(pixels, quality, top, left, flip):
    """The reference's order on a PIL image: JPEG encode, reflect-pad 4, flip, crop 32; normalised."""
    import torchvision.transforms.functional as TF

    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="jpeg", quality=quality)
    image = TF.pad(Image.open(buffer).convert("RGB"), 4, padding_mode="reflect")
    if flip:
        image = TF.hflip(image)
    image = TF.crop(image, top, left, 32, 32)
    return TF.normalize(TF.to_tensor(image), MEAN, STD)


def test_stage1_transform_encodes_first_then_reflect_pads_flips_and_crops():
    data = _Pixels(2)
    versions = SelectVersions(JpegVersions(data, (90, 30), MEAN, STD, cache=True), range(2))
    for top, left, flip in [(0, 0, False), (8, 3, True), (5, 8, False), (1, 7, True)]:
        got = reflect_flip_crop(versions[1][0], 4, top, left, flip)
        for qi, quality in enumerate((90, 30)):
            # the same uint8 pixels normalised: float32 rounding only
            torch.testing.assert_close(got[qi], _reference_stage1(data.pixels[1], quality, top, left, flip),
                                       rtol=0, atol=1e-5)
    augmented = JointAugment(versions)
    torch.manual_seed(5)
    item, label = augmented[0]
    torch.manual_seed(5)
    top, left = int(torch.randint(0, 9, size=())), int(torch.randint(0, 9, size=()))
    flip = bool(torch.rand(1) < 0.5)
    assert label == 0
    torch.testing.assert_close(item, reflect_flip_crop(versions[0][0], 4, top, left, flip), rtol=0, atol=0)


def test_meta_pairs_draw_the_meta_test_image_independently():
    data = _Pixels(6)
    versions = JpegVersions(data, (90, 50), MEAN, STD, cache=True)
    pairs = MetaPairs(SelectVersions(versions, [0]), SelectVersions(versions, [1]))
    torch.manual_seed(2)
    drawn = [pairs[2] for _ in range(8)]
    torch.manual_seed(2)
    others = [int(torch.randint(0, 6, size=())) for _ in range(8)]
    for (item, labels), other in zip(drawn, others):
        assert labels.tolist() == [2, other]
        torch.testing.assert_close(item[0], versions[2][0][0], rtol=0, atol=0)
        torch.testing.assert_close(item[1], versions[other][0][1], rtol=0, atol=0)
    assert len(set(others)) > 1


def test_qabn_matches_the_reference_multi_batch_norm():
    torch.manual_seed(6)
    net = qsam_cnn(num_classes=3, branches=3, widths=(4, 4, 8, 8)).module
    qabn = net.backbone.layer1[1]
    for bn in qabn.bns:   # distinct running statistics and affine parameters per branch
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    copies = [torch.nn.BatchNorm2d(4) for _ in range(3)]
    for copy, bn in zip(copies, qabn.bns):
        copy.load_state_dict(bn.state_dict())
    x = torch.randn(9, 4, 5, 5)
    # list mode (stage 1, training): chunk k of the batch through branch k, its batch statistics
    qabn.train().route = torch.arange(3).repeat_interleave(3)
    routed = qabn(x)
    expected = torch.cat([copies[k].train()(x[3 * k:3 * k + 3]) for k in range(3)])
    torch.testing.assert_close(routed, expected, rtol=1e-5, atol=1e-6)
    # tensor mode (stage 2, model.eval()): sum_k w_k BN_k(x) with running statistics
    w = torch.softmax(torch.randn(9, 3), 1)
    qabn.route = w
    mixed = qabn(x)
    expected = sum(w[:, k, None, None, None] * copies[k].eval()(x) for k in range(3))
    torch.testing.assert_close(mixed, expected, rtol=1e-5, atol=1e-6)
    qabn.route = None


def test_paper_preset_follows_the_reference_recipe():
    from workbench.methods import get_method
    from workbench.training import resolve_config

    paper = resolve_config(get_method("qsam"), "paper")
    assert (paper.optimizer, paper.nesterov, paper.momentum, paper.lr, paper.weight_decay) == \
        ("sgd", True, 0.9, 0.1, 5e-4)
    assert (paper.scheduler, paper.milestones, paper.gamma) == ("multistep", (60, 120, 160), 0.2)
    assert paper.arch_kwargs == {"table_scale": 1.0} and paper.meta_images == "separate"
    assert paper.best_metric == "acc"   # the reference keeps stage 2's epoch of best mean test accuracy
    assert paper.augment and paper.qac_scale == "raw" and len(paper.eval_qualities) == 18


def test_stage2_exponential_schedule_is_the_reference_adjust_lr_exp():
    from workbench.methods import get_method
    from workbench.methods.qsam.train import _stage2_config
    from workbench.training import resolve_config
    from workbench.training.loop import lr_factor_fn

    paper = resolve_config(get_method("qsam"), "paper")
    assert paper.meta_scheduler == "exponential" and paper.meta_epochs == 150
    stage2 = _stage2_config(paper)
    factor = lr_factor_fn(stage2, steps_per_epoch=3)
    for epoch in range(1, 151):   # the reference's epochs count from 1; it sets the lr before each
        reference = 0.004 if epoch < 21 else 0.004 * 0.001 ** ((epoch + 1 - 21) / (150 - 21))
        for step in range(3 * (epoch - 1), 3 * epoch):
            # float products of 130 factors: relative 1e-9
            assert stage2.lr * factor(step) == pytest.approx(reference, rel=1e-9)


def test_table_scale_must_be_positive():
    from workbench.errors import ValidationError

    with pytest.raises(ValidationError, match="QACMixer: table_scale must be > 0, found 0"):
        qsam_cnn(num_classes=3, table_scale=0)
