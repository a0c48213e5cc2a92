"""Re-evaluate a finished run from its files: weights, card and config, nothing in memory."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader

from workbench.errors import DataError
from workbench.training.config import build_config
from workbench.training.model_card import read_card
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


def load_run_config(run_dir: str | os.PathLike, card: dict | None = None):
    """The typed config of a run (or of the run a snapshot belongs to), every key checked.

    ``card``: the run's card (read, without hashing the weights, when not given); its
    ``method`` names the config class (:func:`workbench.methods.get_method`).
    """
    from workbench.methods import get_method

    card = read_card(run_dir, verify_weights=False) if card is None else card
    return build_config(get_method(card["method"]).config_cls, run_config(run_dir, card),
                        where=f"the config of the run {Path(run_dir)}")


def check_data_fingerprint(data, card: dict, run_dir: str | os.PathLike) -> None:
    """Raise DataError when ``data`` are not those the run's card says it was trained on."""
    if data.fingerprint != card["data"]["fingerprint"]:
        raise DataError(f"the {data.name!r} data found now (fingerprint {data.fingerprint[:12]}...) differ from "
                        f"the data {Path(run_dir) / 'model_card.json'} was trained on "
                        f"({card['data']['fingerprint'][:12]}...); its evaluation would not be comparable")


def load_run_data(run_dir: str | os.PathLike, card: dict, *, load_data=None):
    """``(data, config)``: a run's training data (no augmentation), fingerprint checked, and its config.

    ``load_data``: a method's own loader, ``load_data(config, augment=False)`` (a method that
    loads its dataset at another view or normalisation); default: the registered dataset the
    card names, at ``config.data_root``.
    """
    from workbench.data.training import load_training_data

    config = load_run_config(run_dir, card)
    if load_data is None:
        data = load_training_data(card["data"]["name"], root=config.data_root, augment=False)
    else:
        data = load_data(config, augment=False)
    check_data_fingerprint(data, card, run_dir)
    return data, config


@torch.no_grad()
def evaluate_classifier_on(network: Network, data, config, *, batch_size: int = 256) -> dict[str, float]:
    """``test_loss`` and ``test_acc`` (top-1) of ``network`` on the run's first ``config.limit_test``
    test images, on the CPU."""
    from workbench.training.loop import evaluate_classifier, limited

    loader = DataLoader(limited(data.test, config.limit_test), batch_size=batch_size)
    return {f"test_{k}": v for k, v in evaluate_classifier(network, loader, torch.device("cpu")).items()}


def evaluate_run(run_dir: str | os.PathLike, *, batch_size: int = 256) -> dict[str, float]:
    """Test loss and top-1 accuracy of a finished classification run."""
    card, network = load_run_network(run_dir)
    data, config = load_run_data(run_dir, card)
    return evaluate_classifier_on(network, data, config, batch_size=batch_size)
