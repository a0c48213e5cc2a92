"""fit's best epoch (best_metric) beside the final one, its labels in the card, and max_steps."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from workbench.errors import ValidationError
from workbench.training import TrainConfig
from workbench.training.checkpoint import load_verified
from workbench.training.loop import fit, lr_factor_fn
from workbench.training.model_card import BEST_EPOCH_LABEL, BEST_LABEL, FINAL_LABEL, evaluation_labels
from workbench.training.network import Network
from workbench.training.rundir import RunDir


def _data(n: int = 6) -> SimpleNamespace:
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(3))
    y = torch.arange(n) % 2
    return SimpleNamespace(train=TensorDataset(x, y), test=TensorDataset(x, y))


def _linear() -> Network:
    torch.manual_seed(0)
    return Network("linear", {}, "cnn", nn.Linear(4, 2), (), 1)


def scripted_eval(scores):
    """An eval_fn returning ``scores[k]`` as ``acc`` at its k-th call, and the weights' sum as ``w``."""
    calls = []

    def evaluate(network, loader, device):
        calls.append(len(calls))
        return {"acc": scores[len(calls) - 1], "w": float(sum(p.detach().sum() for p in network.module.parameters()))}

    return evaluate


def test_best_metric_keeps_the_best_epoch_beside_the_final_one(tmp_path):
    config = TrainConfig(epochs=4, batch_size=2, lr=0.3, scheduler="constant", best_metric="acc")
    run = RunDir(tmp_path / "run")
    result = fit(config, run, _linear(), _data(), eval_fn=scripted_eval([0.2, 0.7, 0.7, 0.5]))
    tested = [(epoch, value) for _, epoch, split, metric, value in run.rows if split == "test" and metric == "w"]
    assert len(tested) == 4
    # the final epoch's values, and epoch 2's (the first of the tie 0.7, 0.7) as best_*
    assert result.evaluation["test_acc"] == 0.5 and result.evaluation["test_w"] == tested[3][1]
    assert result.evaluation["best_test_acc"] == 0.7 and result.evaluation["best_epoch"] == 2
    assert result.evaluation["best_test_w"] == tested[1][1] != tested[3][1]
    best = load_verified(run.best_checkpoint_file)
    assert best["epoch"] == 2 and best["step"] == 6 and best["value"] == 0.7 and best["metric"] == "test_acc"
    assert float(sum(v.sum() for v in best["model"].values())) == pytest.approx(tested[1][1], abs=1e-6)
    # the last checkpoint carries the best epoch, so a resumed run keeps comparing against it
    assert load_verified(run.checkpoint_file)["best"]["epoch"] == 2


def test_without_best_metric_only_the_final_epoch_is_reported(tmp_path):
    config = TrainConfig(epochs=2, batch_size=2, lr=0.3, scheduler="constant")
    run = RunDir(tmp_path / "run")
    result = fit(config, run, _linear(), _data(), eval_fn=scripted_eval([0.9, 0.1]))
    assert result.evaluation["test_acc"] == 0.1 and set(result.evaluation) == {"test_acc", "test_w"}
    assert not run.best_checkpoint_file.exists()


def test_best_metric_must_name_a_metric_of_the_evaluation(tmp_path):
    config = TrainConfig(epochs=1, batch_size=2, best_metric="top5")
    with pytest.raises(ValidationError, match=r"best_metric' is 'top5', but the evaluation has no 'test_top5'; "
                                              r"expected one of \['acc', 'w'\]"):
        fit(config, RunDir(tmp_path / "run"), _linear(), _data(), eval_fn=scripted_eval([0.1]))


def test_card_labels_say_which_value_is_the_final_and_which_the_best_epoch():
    labels = evaluation_labels({"test_acc": 0.5, "best_test_acc": 0.7, "best_epoch": 2, "mean_session_acc": 0.4})
    assert labels == {"test_acc": FINAL_LABEL, "best_test_acc": BEST_LABEL, "best_epoch": BEST_EPOCH_LABEL,
                      "mean_session_acc": FINAL_LABEL}
    assert "optimistic" in BEST_LABEL and "chosen on the test set" in BEST_LABEL


def test_a_run_card_carries_the_labels(micro_run):
    from workbench.training import read_card

    from workbench.reports.training_report import evaluation_summary

    card = read_card(micro_run)
    assert card["evaluation_labels"] == {k: FINAL_LABEL for k in card["evaluation"]} and card["smoke"] is False
    summary = evaluation_summary(micro_run)
    assert summary["value"].to_dict() == card["evaluation"] and set(summary["epoch"]) == {FINAL_LABEL}


def test_max_steps_stops_training_mid_epoch_and_evaluates_there(tmp_path):
    config = TrainConfig(epochs=3, batch_size=2, lr=0.3, log_every=10, max_steps=4, checkpoint_every=0)
    run = RunDir(tmp_path / "run")
    seen = []

    def step_fn(network, module, x, y, config_):
        seen.append(len(x))
        loss = nn.functional.cross_entropy(module(x), y)
        return loss, {"loss": loss.detach()}

    fit(config, run, _linear(), _data(6), step_fn=step_fn)
    assert seen == [2, 2, 2, 2]  # 3 steps per epoch: epoch 0 whole, 1 step of epoch 1
    rows = {(step, epoch, split, metric): value for step, epoch, split, metric, value in run.rows}
    assert {(s, e) for s, e, split, m in rows if split == "test" and m == "acc"} == {(3, 0), (4, 1)}
    # the window of the epoch cut short is logged, and the lr follows the schedule of all 3 epochs
    factor = lr_factor_fn(config, 3)
    assert rows[(4, 1, "train", "lr")] == pytest.approx(0.3 * factor(4))
    assert factor(4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 9)))
    checkpoint = load_verified(run.checkpoint_file)
    assert (checkpoint["step"], checkpoint["epoch"]) == (4, 2)


def test_a_best_metric_run_reports_both_epochs_in_its_card_and_summary(tmp_path):
    from tests.training.conftest import MICRO
    from workbench.reports.training_report import evaluation_summary
    from workbench.training import read_card, read_metrics, train

    with torch.random.fork_rng(devices=[]):
        out = train("supervised", out=tmp_path / "run", preset="tiny", overrides=[*MICRO, "best_metric=acc"])
    card = read_card(out)
    metrics = read_metrics(out)
    accs = metrics[(metrics.split == "test") & (metrics.metric == "acc")].value.tolist()
    assert card["evaluation"]["test_acc"] == accs[-1] and card["evaluation"]["best_test_acc"] == max(accs)
    assert card["evaluation"]["best_epoch"] == accs.index(max(accs)) + 1
    assert card["evaluation_labels"]["best_test_acc"] == BEST_LABEL
    assert card["evaluation_labels"]["test_acc"] == FINAL_LABEL
    assert evaluation_summary(out).loc["best_test_loss", "epoch"] == BEST_LABEL
