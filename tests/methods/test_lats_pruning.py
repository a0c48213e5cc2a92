"""Soft-threshold reparameterisation: values, gradients, sparsity counts, export, masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso
from torch import nn

from workbench.errors import ValidationError
from workbench.methods.lats import pruning
from workbench.methods.lats.schedules import ista_thresholds


class Net(nn.Module):
    """conv -> conv -> linear -> linear, so that first/last selection is visible."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.hidden = nn.Linear(6, 5)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        x = self.body(self.stem(x)).mean(dim=(2, 3))
        return self.fc(torch.relu(self.hidden(x)))


def _net(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return Net().to(dtype)


def test_layer_selection_keeps_first_and_last_dense_by_default():
    net = _net()
    assert pruning.prunable_layers(net) == ["body.0", "hidden"]
    assert pruning.prunable_layers(net, prune_first_last=True) == ["stem", "body.0", "hidden", "fc"]
    with pytest.raises(ValidationError, match=r"\['nope'\].*expected some of"):
        pruning.apply_soft_threshold(net, ["nope"])


def test_effective_weight_is_soft_threshold_of_theta_and_names_are_kept():
    net = _net()
    before = {n: m.weight.detach().clone() for n, m in net.named_modules() if hasattr(m, "weight")}
    x = torch.randn(2, 3, 5, 5)
    y0 = net(x)
    names = pruning.apply_soft_threshold(net)
    # threshold 0: the network is unchanged, module names are unchanged
    torch.testing.assert_close(net(x), y0)
    assert {n for n, _ in net.named_modules()} >= set(before)
    pruning.set_threshold(net, 0.1)
    assert pruning.get_threshold(net) == pytest.approx(0.1)
    for name in names:
        theta = before[name]
        expected = np.sign(theta.numpy()) * np.maximum(np.abs(theta.numpy()) - 0.1, 0.0)
        np.testing.assert_allclose(net.get_submodule(name).weight.detach().numpy(), expected, atol=1e-7)
    torch.testing.assert_close(net.stem.weight, before["stem"])  # dense first layer untouched
    with pytest.raises(ValidationError, match="threshold must be"):
        pruning.set_threshold(net, -1.0)


def test_reported_zeros_are_exactly_the_zeros_of_the_effective_weights():
    net = _net()
    pruning.apply_soft_threshold(net)
    pruning.set_threshold(net, 0.12)
    report = pruning.sparsity_report(net)
    total_zeros = total = 0
    for name, layer in report.layers.items():
        weight = net.get_submodule(name).weight.detach()
        # independent count: entries whose theta magnitude is at most the threshold
        theta = (net.get_submodule(name).parametrizations.weight.original.detach()
                 if layer.pruned else weight)
        expected = int((theta.abs() <= 0.12).sum()) if layer.pruned else int((weight == 0).sum())
        assert layer.zeros == expected == int((weight == 0).sum())
        assert layer.numel == weight.numel()
        total_zeros += expected
        total += weight.numel()
    assert not report.layers["stem"].pruned and not report.layers["fc"].pruned
    assert report.layers["body.0"].zeros > 0
    assert report.overall == pytest.approx(total_zeros / total)
    pruned = [report.layers[n] for n in ("body.0", "hidden")]
    assert report.pruned_overall == pytest.approx(sum(l.zeros for l in pruned) / sum(l.numel for l in pruned))
    # the exported plain network reports the same counts
    plain = _net(seed=1)
    plain.load_state_dict(pruning.export_effective_state_dict(net), strict=True)
    assert {n: l.zeros for n, l in pruning.sparsity_report(plain).layers.items()} == \
        {n: l.zeros for n, l in report.layers.items()}


def test_export_gives_a_plain_state_dict_that_computes_the_same_function():
    net = _net()
    plain_keys = list(_net().state_dict())
    pruning.apply_soft_threshold(net, prune_first_last=True)
    pruning.set_threshold(net, 0.08)
    net.eval()
    state = pruning.export_effective_state_dict(net)
    assert list(state) == plain_keys
    plain = _net(seed=3).eval()
    plain.load_state_dict(state, strict=True)
    x = torch.randn(4, 3, 6, 6)
    torch.testing.assert_close(plain(x), net(x))
    # remove_pruning leaves the same weights as plain parameters
    pruning.remove_pruning(net)
    assert sorted(net.state_dict()) == sorted(plain_keys)
    torch.testing.assert_close(net(x), plain(x))


def test_gradient_matches_finite_differences_where_theta_exceeds_threshold():
    net = _net(dtype=torch.float64)
    pruning.apply_soft_threshold(net)
    d = 0.1
    pruning.set_threshold(net, d)
    x = torch.randn(3, 3, 5, 5, dtype=torch.float64)
    target = torch.tensor([0, 2, 1])

    def loss():
        return nn.functional.cross_entropy(net(x), target)

    layer = net.body[0]
    theta = layer.parametrizations.weight.original
    net.zero_grad()
    loss().backward()
    grad = theta.grad.detach().clone().flatten()
    flat = theta.detach().flatten()
    alive = torch.nonzero(flat.abs() > d + 1e-3).flatten()[:15]
    assert len(alive) == 15
    eps = 1e-6
    for i in alive.tolist():
        with torch.no_grad():
            theta.view(-1)[i] += eps
            up = loss().item()
            theta.view(-1)[i] -= 2 * eps
            down = loss().item()
            theta.view(-1)[i] += eps
        assert grad[i].item() == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9)
    # where |theta| <= d the gradient is passed straight through: it equals dL/dw
    dead = torch.nonzero((flat.abs() < d) & (flat != 0)).flatten()
    assert len(dead) > 0
    w = layer.weight.detach().clone().requires_grad_(True)
    out = nn.functional.conv2d(net.stem(x), w, layer.bias, padding=1)
    out = net.body[2](net.body[1](out)).mean(dim=(2, 3))
    dl_dw, = torch.autograd.grad(nn.functional.cross_entropy(net.fc(torch.relu(net.hidden(out))), target), w)
    torch.testing.assert_close(grad[dead], dl_dw.flatten()[dead])
    assert dl_dw.flatten()[dead].abs().max() > 0


def _sparse_regression(seed=0, n=200, p=30, k=12, noise=0.1):
    # coefficients from 0.03 to 2 in magnitude: the Lasso support depends on alpha
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    w_true = np.zeros(p)
    support = rng.choice(p, k, replace=False)
    w_true[support] = rng.choice([-1, 1], k) * np.geomspace(0.03, 2.0, k)
    y = X @ w_true + noise * rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize("batch_size", [None, 50])
def test_constant_lambda_soft_threshold_sgd_recovers_the_lasso_support(batch_size):
    """ISTA threshold per step = lr * alpha for 1/(2n)||y - Xw||^2 + alpha ||w||_1.

    Full batch: constant lr, the solution matches sklearn's Lasso coefficients.
    Mini-batch: a cosine learning rate with thresholds ``alpha * cumsum(lr)`` (the LATS
    principle); the support matches.
    """
    X, y = _sparse_regression()
    alpha = 0.07

    def lasso_fit(a):
        return Lasso(alpha=a, fit_intercept=False, tol=1e-10, max_iter=100_000).fit(X, y).coef_

    coef = lasso_fit(alpha)
    support = np.flatnonzero(coef)
    # the support at the matching alpha is not the one at half or twice that alpha
    for other in (alpha / 2, 2 * alpha):
        assert not np.array_equal(np.flatnonzero(lasso_fit(other)), support)
    torch.manual_seed(0)
    model = nn.Linear(X.shape[1], 1, bias=False).double()
    nn.init.normal_(model.weight, std=0.01)  # theta == 0 exactly would get no gradient (sign(0) = 0)
    pruning.apply_soft_threshold(model, [""])
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    if batch_size is None:
        steps, lr0 = 1500, 0.2
        lrs = np.full(steps, lr0)
    else:
        steps, lr0 = 3000, 0.05
        lrs = lr0 * 0.5 * (1 + np.cos(np.pi * np.arange(steps) / steps))
    thresholds = ista_thresholds(lrs, alpha)
    opt = torch.optim.SGD(model.parameters(), lr=lr0)
    gen = np.random.default_rng(1)
    for t in range(steps):
        pruning.set_threshold(model, float(thresholds[t]))
        for group in opt.param_groups:
            group["lr"] = float(lrs[t])
        idx = slice(None) if batch_size is None else gen.choice(len(y), batch_size, replace=False)
        loss = 0.5 * ((yt[idx] - model(Xt[idx]).squeeze(1)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    pruning.set_threshold(model, float(thresholds[steps]))
    w = model.weight.detach().numpy().ravel()
    np.testing.assert_array_equal(np.flatnonzero(w), support)
    if batch_size is None:
        np.testing.assert_allclose(w, coef, atol=1e-4)
    else:
        np.testing.assert_allclose(w, coef, atol=0.03)


def test_magnitude_masks_prune_exactly_the_smallest_weights_globally():
    weights = {"a": torch.tensor([[0.5, -0.1], [0.3, 0.05]]), "b": torch.tensor([-0.2, 0.4, 0.01])}
    masks = pruning.magnitude_masks(weights, 3 / 7)
    assert masks["a"].tolist() == [[True, False], [True, False]]
    assert masks["b"].tolist() == [True, True, False]
    with pytest.raises(ValidationError, match=r"sparsity must be in \[0, 1\)"):
        pruning.magnitude_masks(weights, 1.0)


def test_fixed_mask_keeps_pruned_weights_at_zero_during_training():
    net = _net()
    names = pruning.apply_magnitude_mask(net, 0.7)
    report = pruning.sparsity_report(net)
    numel = sum(report.layers[n].numel for n in names)
    assert sum(report.layers[n].zeros for n in names) == round(0.7 * numel)
    zero_before = {n: net.get_submodule(n).weight.detach() == 0 for n in names}
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        loss = net(torch.randn(4, 3, 5, 5)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n in names:
        w = net.get_submodule(n).weight.detach()
        assert torch.equal(w == 0, zero_before[n])
    state = pruning.export_effective_state_dict(net)
    assert list(state) == list(_net().state_dict())
