"""The model card of a run directory: what was trained, on what, how, and with what result.

``model_card.json`` is written last, atomically, when a run finishes; its presence marks a
finished run. It names the zoo architecture (and the keyword arguments it was built with), the
weights file and its sha256, the preprocessing the network was trained with, the data and its
fingerprint, the seed, the config hash, the evaluation (final epoch, and the best epoch where
the config keeps one: ``evaluation_labels`` says which is which), wall time, package versions
and device. :func:`read_card` checks every required field and the weights' hash, naming the file
and the field at fault.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from workbench.errors import DataError
from workbench.storage import atomic_path

CARD_FILE = "model_card.json"
WEIGHTS_FILE = "model.pt"
#: Field -> expected JSON type(s); every card has them.
REQUIRED_FIELDS = {
    "method": str,
    "architecture": str,
    "architecture_kwargs": dict,
    "family": str,
    "layers": list,
    "time_steps": int,
    "preprocessing": dict,
    "weights_file": str,
    "weights_sha256": str,
    "data": dict,
    "seed": int,
    "config_hash": str,
}


def write_card(run_dir: str | os.PathLike, card: dict[str, Any]) -> Path:
    """Write ``card`` (checked for the required fields) to ``run_dir/model_card.json`` atomically."""
    _check_fields(card, Path(run_dir) / CARD_FILE)
    path = Path(run_dir) / CARD_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(card, indent=2, sort_keys=False, default=str) + "\n")
    return path


def read_card(run_dir: str | os.PathLike, *, verify_weights: bool = True) -> dict[str, Any]:
    """The checked model card of a run directory.

    Raises
    ------
    DataError
        The card is missing, not JSON, lacks a field or has one of the wrong type, or (with
        ``verify_weights``) the weights file is missing or its sha256 differs from the card's.
    """
    path = Path(run_dir) / CARD_FILE
    if not path.is_file():
        raise DataError(f"{path} does not exist: {Path(run_dir)} is not a finished run directory "
                        "(train it with `workbench train`, or `--resume` an interrupted run)")
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); the run's card is corrupt") from None
    if not isinstance(card, dict):
        raise DataError(f"{path} must hold a JSON object, found {type(card).__name__}")
    _check_fields(card, path)
    if verify_weights:
        from workbench.training.checkpoint import verify

        weights = Path(run_dir) / card["weights_file"]
        actual = verify(weights, what="weights file")
        if actual != card["weights_sha256"]:
            raise DataError(f"{weights} has sha256 {actual[:12]}... but {path} field 'weights_sha256' "
                            f"says {card['weights_sha256'][:12]}...: the card and the weights do not belong together")
    return card


def _check_fields(card: dict, path: Path) -> None:
    for field, kind in REQUIRED_FIELDS.items():
        if field not in card:
            raise DataError(f"{path} lacks the field {field!r} (required: {', '.join(REQUIRED_FIELDS)})")
        if not isinstance(card[field], kind) or (kind is int and isinstance(card[field], bool)):
            raise DataError(f"{path} field {field!r} is {card[field]!r}; expected a JSON {kind.__name__}")


#: What an evaluation value of a card is, by its name (:func:`evaluation_labels`).
FINAL_LABEL = "final epoch: the network in the weights file"
BEST_LABEL = ("best epoch, chosen on the test set it is measured on (optimistic: the maximum over epochs "
              "of noisy test estimates; the paper reports this one)")
BEST_EPOCH_LABEL = "epochs trained up to the best epoch (weights in checkpoints/best.pt)"


def evaluation_labels(evaluation: dict[str, Any]) -> dict[str, str]:
    """Which epoch each value of ``evaluation`` comes from: ``{name: label}``.

    ``best_epoch`` and the ``best_*`` values (a config with ``best_metric``) are the best
    epoch's, selected on the test set; every other value is the final epoch's.
    """
    return {name: BEST_EPOCH_LABEL if name == "best_epoch" else BEST_LABEL if name.startswith("best_")
            else FINAL_LABEL for name in evaluation}


def card_fields(method: str, network, data, config) -> dict[str, Any]:
    """Card fields describing a network, its data and config (shared by runs and snapshots).

    ``network`` is a :class:`~workbench.training.network.Network`, ``data`` a
    :class:`~workbench.data.training.TrainingData`, ``config`` the run's config.
    """
    from workbench.training.config import config_hash

    return {
        "method": method,
        "architecture": network.name,
        "architecture_kwargs": dict(network.kwargs),
        "family": network.family,
        "layers": list(network.layers),
        "time_steps": int(network.time_steps),
        "preprocessing": {k: list(v) if isinstance(v, tuple) else v
                          for k, v in dataclasses.asdict(data.preprocessing).items()},
        "data": {"name": data.name, "fingerprint": data.fingerprint, "description": data.description},
        "seed": int(config.seed),
        "config_hash": config_hash(config),
    }


def is_run_directory(name: str | os.PathLike) -> bool:
    """Whether ``name`` is a path to a directory holding a model card (a finished run)."""
    try:
        return (Path(name) / CARD_FILE).is_file()
    except (OSError, ValueError):
        return False
