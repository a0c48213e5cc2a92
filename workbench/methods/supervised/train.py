"""Train and evaluate the supervised baseline."""

from __future__ import annotations

import dataclasses
import os

from workbench.training import TrainConfig, TrainOutcome, build_network, fit


@dataclasses.dataclass(frozen=True)
class SupervisedConfig(TrainConfig):
    """The shared fields only (see :class:`~workbench.training.TrainConfig`)."""


def train(config: SupervisedConfig, run) -> TrainOutcome:
    from workbench.data.training import load_training_data

    data = load_training_data(config.dataset, root=config.data_root, augment=config.augment)
    network = build_network(config.arch, time_steps=config.time_steps, seed=config.seed,
                            num_classes=data.num_classes, **config.arch_kwargs)
    result = fit(config, run, network, data)
    return TrainOutcome(network, network.module.state_dict(), data, result.evaluation,
                        wall_time_s=result.wall_time_s)


def evaluate(run_dir: str | os.PathLike) -> dict[str, float]:
    """Test loss and accuracy of a finished run, recomputed from its weights."""
    from workbench.training.evaluation import evaluate_run

    return evaluate_run(run_dir)
