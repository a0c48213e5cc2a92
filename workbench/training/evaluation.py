"""Re-evaluate a finished run from its files: weights, card and config, nothing in memory."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader

from workbench.errors import DataError
from workbench.training.network import Network


def load_run_network(run_dir: str | os.PathLike) -> tuple[dict, Network]:
    """``(card, network)`` of a finished run: the trained weights in a :class:`Network` (eval mode)."""
    from workbench.models.runs import run_architecture

    card, arch = run_architecture(run_dir)
    network = Network(card["architecture"], card["architecture_kwargs"], card["family"], arch.module,
                      tuple(arch.layers), int(arch.time_steps), arch.preprocessing)
    network.module.eval()
    return card, network


def run_config(run_dir: str | os.PathLike, card: dict) -> dict:
    """The resolved config (as a mapping) of a run, or of the run a snapshot belongs to."""
    for folder in (Path(run_dir), Path(card.get("snapshot_of", run_dir))):
        path = folder / "config.yaml"
        if path.is_file():
            return yaml.safe_load(path.read_text()) or {}
    raise DataError(f"{Path(run_dir) / 'config.yaml'} does not exist (nor in the run a snapshot belongs to): "
                    "cannot tell which data the run was trained on")


def load_run_data(run_dir: str | os.PathLike, card: dict):
    """``(data, config)``: the run's training data, checked to have the fingerprint its card records."""
    from workbench.data.training import load_training_data

    config = run_config(run_dir, card)
    data = load_training_data(card["data"]["name"], root=config.get("data_root"), augment=False)
    if data.fingerprint != card["data"]["fingerprint"]:
        raise DataError(f"the {data.name!r} data found now (fingerprint {data.fingerprint[:12]}...) differ from "
                        f"the data {Path(run_dir) / 'model_card.json'} was trained on "
                        f"({card['data']['fingerprint'][:12]}...); its evaluation would not be comparable")
    return data, config


@torch.no_grad()
def evaluate_run(run_dir: str | os.PathLike, *, batch_size: int = 256) -> dict[str, float]:
    """Test loss and top-1 accuracy of a finished classification run."""
    from workbench.training.loop import evaluate_classifier, limited

    card, network = load_run_network(run_dir)
    data, config = load_run_data(run_dir, card)
    loader = DataLoader(limited(data.test, int(config.get("limit_test", 0))), batch_size=batch_size)
    return {f"test_{k}": v for k, v in evaluate_classifier(network, loader, torch.device("cpu")).items()}
