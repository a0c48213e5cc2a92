"""Training runs as models: a run directory can be named wherever a model name can.

``create("runs/lats_tiny")`` reads the run's model card, builds the zoo architecture it names
(with the keyword arguments it was trained with), loads the weights after checking their sha256
against the card, and declares the preprocessing the network was trained with (a network trained
on 32 px digits is not an ImageNet model). The weights' hash is the model's ``weights_id``, which
is part of every activation-cache and result key, so a retrained run never reuses stale results.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from workbench.errors import DataError, ValidationError
from workbench.models.layer_spec import absent_layers
from workbench.models.preprocessing import Preprocessing


def run_architecture(run_dir: str | os.PathLike, *, load_weights: bool = True):
    """``(card, Architecture)`` of a finished run: the zoo network with the run's weights."""
    from workbench.models.registry import Architecture, build_architecture
    from workbench.training.model_card import read_card

    card = read_card(run_dir, verify_weights=load_weights)
    card_file = Path(run_dir) / "model_card.json"
    try:
        preprocessing = Preprocessing(**{k: tuple(v) if isinstance(v, list) else v
                                         for k, v in card["preprocessing"].items()})
    except (TypeError, ValueError) as exc:
        raise DataError(f"{card_file} field 'preprocessing' is not valid: {exc}") from None
    arch = build_architecture(card["architecture"], **card["architecture_kwargs"])
    if load_weights:
        # read_card has just checked the file against its sidecar and the card: no second hash
        state = torch.load(Path(run_dir) / card["weights_file"], map_location="cpu", weights_only=True)
        try:
            arch.module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise DataError(f"{Path(run_dir) / card['weights_file']} does not fit the architecture "
                            f"{card['architecture']!r} named by {card_file}: {exc}") from None
    try:
        absent = absent_layers(arch.module, card["layers"])
    except ValidationError as exc:
        raise DataError(f"{card_file} field 'layers': {exc}") from None
    if absent:
        raise DataError(f"{card_file} field 'layers' names {absent}, which are not modules of {card['architecture']!r}")
    return card, Architecture(arch.module, tuple(card["layers"]), preprocessing,
                              time_steps=int(card["time_steps"]), channels_last=arch.channels_last)


def run_weights_sha256(run_dir: str | os.PathLike) -> str:
    """The sha256 of a run's weights file, as its (checked) card records it."""
    from workbench.training.model_card import read_card

    return read_card(run_dir, verify_weights=True)["weights_sha256"]

