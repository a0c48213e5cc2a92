"""fit: a data.collate_fn, a method's own sampler (sampler_fn), recursive device moves, grad_clip, the hooks' order."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, Sampler, TensorDataset

from workbench.errors import ValidationError
from workbench.training import TrainConfig
from workbench.training.loop import EpochBatches, fit, to_device
from workbench.training.network import Network
from workbench.training.rundir import RunDir


class EpochOrder(Sampler):
    """Epoch e: indices (e, e+1, ...) mod n, ``extra`` more than its declared length."""

    def __init__(self, n: int, length: int, extra: int = 0):
        self.n, self.length, self.extra, self.epoch = n, length, extra, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter([(self.epoch + i) % self.n for i in range(self.length + self.extra)])

    def __len__(self) -> int:
        return self.length


def test_epoch_batches_cut_the_sampler_order_and_skip_trained_batches():
    batches = EpochBatches(EpochOrder(10, 7, extra=5), 3)  # 7 indices declared: ceil(7/3) = 3 batches, rest cut
    batches.set_epoch(2)
    assert list(batches) == [[2, 3, 4], [5, 6, 7], [8, 9, 0]] and len(batches) == 3
    exact = EpochBatches(EpochOrder(10, 7), 3)
    exact.set_epoch(2)
    assert list(exact) == [[2, 3, 4], [5, 6, 7], [8]]  # the last batch may be smaller
    exact.start_batch = 1
    assert list(exact) == [[5, 6, 7], [8]] and len(exact) == 2
    with pytest.raises(ValidationError, match="yields 0 samples, fewer than one batch of 3"):
        EpochBatches(EpochOrder(10, 0), 3)


def test_epoch_batches_give_each_torchrun_rank_its_slice_of_every_global_batch():
    ranks = [EpochBatches(EpochOrder(10, 9), 4, rank=r, world_size=2) for r in (0, 1)]
    for batches in ranks:
        batches.set_epoch(2)
    # global batches [2, 3, 4, 5] and [6, 7, 8, 9]; the incomplete [0] is dropped
    assert list(ranks[0]) == [[2, 3], [6, 7]] and list(ranks[1]) == [[4, 5], [8, 9]]
    assert len(ranks[0]) == len(ranks[1]) == 2
    ranks[1].start_batch = 1  # resumed mid-epoch
    assert list(ranks[1]) == [[8, 9]]
    with pytest.raises(ValidationError, match="batch_size 3 is not divisible by the 2 processes"):
        EpochBatches(EpochOrder(10, 9), 3, rank=0, world_size=2)
    with pytest.raises(ValidationError, match="yields 3 samples, fewer than one batch of 4"):
        EpochBatches(EpochOrder(10, 3), 4, rank=0, world_size=2)


def test_to_device_moves_tensors_inside_lists_tuples_and_dicts():
    batch = ([torch.ones(2)], {"boxes": torch.zeros(1, 4), "name": "x", "nested": (torch.arange(3), 5)})
    moved = to_device(batch, torch.device("meta"))
    assert isinstance(moved, tuple) and isinstance(moved[0], list) and isinstance(moved[1]["nested"], tuple)
    assert moved[0][0].device.type == "meta" and moved[1]["boxes"].device.type == "meta"
    assert moved[1]["nested"][0].device.type == "meta" and moved[1]["nested"][1] == 5 and moved[1]["name"] == "x"


class Items(Dataset):
    """Item i: (features (4,), {"index": i}) - not batchable by the default collate into one target tensor."""

    def __init__(self, n: int):
        self.x = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], {"index": torch.tensor(i)}


def _linear() -> Network:
    torch.manual_seed(0)
    return Network("linear", {}, "cnn", nn.Linear(4, 2), (), 1)


def test_fit_batches_with_the_data_collate_fn_in_the_method_sampler_order(tmp_path):
    seen = []

    def step_fn(network, module, features, targets, config):
        assert isinstance(features, list) and isinstance(targets, list)  # the collate_fn's lists, not stacked
        seen.append([int(t["index"]) for t in targets])
        loss = module(torch.stack(features)).square().mean()
        return loss, {"loss": loss.detach()}

    def eval_fn(network, loader, device):
        return {"items": float(sum(len(targets) for _, targets in loader))}

    data = SimpleNamespace(train=Items(10), test=Items(6),
                           collate_fn=lambda batch: ([b[0] for b in batch], [b[1] for b in batch]))
    config = TrainConfig(epochs=2, batch_size=3, lr=0.1, scheduler="constant", log_every=1)
    result = fit(config, RunDir(tmp_path / "run"), _linear(), data, step_fn=step_fn, eval_fn=eval_fn,
                 sampler_fn=lambda train_set: EpochOrder(len(train_set), 7))
    assert seen == [[0, 1, 2], [3, 4, 5], [6], [1, 2, 3], [4, 5, 6], [7]]
    assert result.evaluation == {"test_items": 6.0}


@pytest.mark.parametrize("clip", [0.0, 0.01])
def test_grad_clip_bounds_the_norm_of_one_plain_sgd_step(tmp_path, clip):
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1)) * 10
    data = SimpleNamespace(train=TensorDataset(x, torch.zeros(8, dtype=torch.long)),
                           test=TensorDataset(x, torch.zeros(8, dtype=torch.long)))
    config = TrainConfig(epochs=1, batch_size=8, optimizer="sgd", lr=1.0, momentum=0.0, weight_decay=0.0,
                         scheduler="constant", grad_clip=clip)
    network = _linear()
    before = torch.cat([p.detach().flatten().clone() for p in network.module.parameters()])
    # the unclipped gradient of the same batch and loss, computed directly
    loss = nn.functional.cross_entropy(network.module(x), torch.zeros(8, dtype=torch.long))
    grad = torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(network.module.parameters()))])
    fit(config, RunDir(tmp_path / "run"), network, data)
    change = before - torch.cat([p.detach().flatten() for p in network.module.parameters()])
    expected = grad * min(1.0, clip / float(grad.norm())) if clip else grad
    assert float(grad.norm()) > 0.01
    assert torch.allclose(change, expected, atol=1e-6, rtol=1e-4)



def test_hooks_run_in_order_and_the_checkpoint_records_where_training_stands(tmp_path):
    from workbench.training import Callback
    from workbench.training.checkpoint import load_verified

    events = []

    class Recorder(Callback):
        def on_train_start(self, state, network):
            events.append(("start", state.step))

        def on_step_end(self, state, network, logs):
            events.append(("step", state.step, state.epoch, state.step_in_epoch))
            logs["extra"] = float(state.step)

        def on_epoch_end(self, state, network):
            events.append(("epoch", state.epoch, state.step_in_epoch))
            return {"seen": float(state.step)}

        def state_dict(self):
            return {"events": len(events)}

    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
    data = SimpleNamespace(train=TensorDataset(x, torch.zeros(6, dtype=torch.long)),
                           test=TensorDataset(x, torch.zeros(6, dtype=torch.long)))
    config = TrainConfig(epochs=2, batch_size=2, lr=0.3, scheduler="constant", log_every=2, checkpoint_every=2)
    run = RunDir(tmp_path / "run")
    result = fit(config, run, _linear(), data, callbacks=[Recorder()])
    assert events == [("start", 0), ("step", 1, 0, 1), ("step", 2, 0, 2), ("step", 3, 0, 3), ("epoch", 0, 3),
                      ("step", 4, 1, 1), ("step", 5, 1, 2), ("step", 6, 1, 3), ("epoch", 1, 3)]
    # the last checkpoint: where the next epoch would start, with the evaluation and every row
    checkpoint = load_verified(run.checkpoint_file)
    assert (checkpoint["step"], checkpoint["epoch"], checkpoint["step_in_epoch"]) == (6, 2, 0)
    assert checkpoint["evaluation"] == result.evaluation and set(result.evaluation) == {"test_loss", "test_acc"}
    assert checkpoint["callbacks"] == [{"events": 9}] and checkpoint["rows"] == run.rows
    assert (checkpoint["window"], checkpoint["window_steps"]) == ({}, 0)
    # train means every 2 steps and at each epoch's end, with what the callbacks added; then the
    # callbacks' epoch values; then the test evaluation
    extra = [(step, value) for step, _, split, metric, value in run.rows if metric == "extra"]
    assert extra == [(2, 1.5), (3, 3.0), (5, 4.5), (6, 6.0)]
    order = [(step, split, metric) for step, _, split, metric, _ in run.rows
             if metric in ("extra", "seen") or split == "test" and metric == "acc"]
    assert order == [(2, "train", "extra"), (3, "train", "extra"), (3, "train", "seen"), (3, "test", "acc"),
                     (5, "train", "extra"), (6, "train", "extra"), (6, "train", "seen"), (6, "test", "acc")]
