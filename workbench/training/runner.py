"""``workbench train``: resolve a method's config, own its run directory, write its model card.

:func:`train` is what the CLI calls. It resolves ``preset + --set + --seed + --device`` into the
method's config, checks ``--out`` (a finished run is refused unless ``--resume`` or ``--force``;
``--resume`` refuses a differing config and lists the differing keys), joins a torchrun launch
when there is one, calls the method's ``train(config, run)``, and on rank 0 writes the weights
and, last, the model card.
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import ValidationError
from workbench.provenance import package_versions
from workbench.training.config import (
    apply_overrides,
    build_config,
    config_to_yaml,
    differing_keys,
    read_preset,
)
from workbench.training.distributed import init_distributed
from workbench.training.model_card import evaluation_labels
from workbench.training.network import Network
from workbench.training.rundir import RunDir
from workbench.training.smoke import smoke_values, write_smoke_data

logger = logging.getLogger(__name__)


@dataclass
class TrainOutcome:
    """What a method's ``train`` returns.

    Attributes
    ----------
    network : Network
        The trained network (its name, kwargs, family, layers and T go into the card).
    state_dict : dict
        Weights loadable with strict keys into ``build_network(network.name, **network.kwargs)``:
        what the study layer analyses (a method exports e.g. its pruned effective weights).
    data : TrainingData
        The training data (name, fingerprint, preprocessing go into the card).
    evaluation : dict
        The final evaluation (e.g. ``test_acc``); with ``best_metric`` also the best epoch's
        (``best_test_acc``, ``best_epoch``): the card labels each (``evaluation_labels``).
    extra : dict
        Method-specific card fields (e.g. per-layer sparsity).
    wall_time_s : float
    """

    network: Network
    state_dict: dict
    data: Any
    evaluation: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0


def resolve_config(spec, preset: str, overrides: list[str] = (), *, seed: int | None = None,
                   device: str | None = None, smoke_data: str | os.PathLike | None = None):
    """The method's config from a preset, ``key=value`` overrides, and the seed/device options.

    ``smoke_data``: a folder for a smoke run's generated data (:mod:`workbench.training.smoke`);
    the smoke settings apply before the overrides, the generated data's paths last.
    """
    path = spec.preset_path(preset)
    values = read_preset(spec.config_cls, path)
    if smoke_data is not None:
        values = smoke_values(spec.config_cls, values)
    values = apply_overrides(spec.config_cls, values, list(overrides))
    if seed is not None:
        values["seed"] = int(seed)
    if device is not None:
        values["device"] = device
    config = build_config(spec.config_cls, values, where=f"method {spec.name!r}, preset {preset!r} with --set")
    if smoke_data is not None:
        config = config.replace(**write_smoke_data(config, smoke_data))
    return config


def _check_out(out: Path, config, spec, *, resume: bool, force: bool) -> None:
    """Check ``out`` against the options (read-only: every rank of a launch runs it)."""
    if out.exists() and not out.is_dir():
        raise ValidationError(f"--out {out} is an existing file; expected a directory (new or a run directory)")
    config_file = out / "config.yaml"
    holds_run = config_file.is_file()
    if out.is_dir() and any(out.iterdir()) and not holds_run:
        raise ValidationError(f"--out {out} is a non-empty folder that is not a run directory (no config.yaml); "
                              "choose a new or empty folder")
    if not holds_run or force:
        return
    finished = (out / "model_card.json").is_file()
    if not resume:
        state = "a finished run" if finished else "an unfinished run"
        raise ValidationError(f"--out {out} holds {state}; pass --resume to continue it or --force to "
                              "delete it and train again")
    try:
        saved = build_config(spec.config_cls, yaml.safe_load(config_file.read_text()) or {}, where=str(config_file))
    except yaml.YAMLError as exc:
        raise ValidationError(f"{config_file} is not valid YAML ({exc}); use --force to start over") from None
    diff = differing_keys(saved, config)
    if diff:
        details = ", ".join(f"{k}: {getattr(saved, k)!r} -> {getattr(config, k)!r}" for k in diff)
        raise ValidationError(f"--resume: the config differs from {config_file} in {len(diff)} key(s): {details}; "
                              "resume with the same settings, or use --force to start over")


def train(method: str, *, out: str | os.PathLike, preset: str = "tiny", overrides: list[str] = (),
          seed: int | None = None, device: str | None = None, resume: bool = False, force: bool = False,
          smoke: bool = False) -> Path:
    """Train ``method`` into the run directory ``out`` and return its path.

    Parameters
    ----------
    method : str
        A name from :func:`workbench.methods.list_methods`.
    out : path
        The run directory (created).
    preset : str, default: "tiny"
    overrides : list of "key=value"
        Config overrides, parsed to each field's type.
    seed : int, optional
        Overrides the config's seed.
    device : {"cpu", "cuda"}, optional
        Overrides the config's device.
    resume : bool
        Continue the run in ``out`` from its last checkpoint (a finished run is left as is).
    force : bool
        Delete a previous run in ``out`` and start over.
    smoke : bool
        A smoke run (:mod:`workbench.training.smoke`): every phase for 2 steps on CPU, on data
        generated in the dataset's format into a temporary folder (deleted afterwards).
    """
    if not smoke:
        return _train(method, out, preset, overrides, seed, device, resume, force, None)
    with tempfile.TemporaryDirectory(prefix="workbench-smoke-") as folder:
        return _train(method, out, preset, overrides, seed, device, resume, force, Path(folder))


def _train(method, out, preset, overrides, seed, device, resume, force, smoke_data) -> Path:
    from workbench.methods import get_method

    if resume and force:
        raise ValidationError("--resume and --force exclude each other")
    spec = get_method(method)
    config = resolve_config(spec, preset, overrides, seed=seed, device=device, smoke_data=smoke_data)
    out = Path(out)
    ctx = init_distributed(config.device)
    _check_out(out, config, spec, resume=resume, force=force)
    ctx.barrier()
    if force and ctx.is_main and (out / "config.yaml").is_file():
        shutil.rmtree(out)
    ctx.barrier()
    run = RunDir(out, is_main=ctx.is_main)
    if resume and run.is_finished:
        logger.info("%s is a finished run; nothing to resume", out)
        return out
    run.ctx, run.resume, run.method, run.config = ctx, resume, spec.name, config
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        run.write_text("config.yaml", config_to_yaml(config))
    started = datetime.datetime.now(datetime.timezone.utc)
    outcome: TrainOutcome = spec.train(config, run)
    run.finish(outcome.network, outcome.state_dict, outcome.data, {
        "preset": preset,
        "smoke": smoke_data is not None,
        "evaluation": outcome.evaluation,
        "evaluation_labels": evaluation_labels(outcome.evaluation),
        "wall_time_s": round(outcome.wall_time_s, 3),
        "started": started.isoformat(timespec="seconds"),
        "device": str(ctx.device) + (f" x {ctx.world_size} processes" if ctx.enabled else ""),
        "versions": package_versions(),
        **outcome.extra,
    })
    ctx.barrier()
    return out
