"""Model weights: published ImageNet files, local checkpoints and a content hash.

Published weights live where torch hub keeps them (``$TORCH_HOME/hub/checkpoints/<file>``).
When a file is absent it is downloaded; when that fails (no network) a
:class:`~workbench.errors.WeightsUnavailableError` says which URL to fetch and where to put
the file, so that an offline machine can be prepared by hand.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from workbench.errors import DataError, WeightsUnavailableError

logger = logging.getLogger(__name__)


def hub_checkpoint_dir() -> Path:
    """torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``), read at call time."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _download_url(url: str, destination: Path) -> None:
    """Download ``url`` to ``destination`` (torch hub's downloader; replaced in tests)."""
    torch.hub.download_url_to_file(url, str(destination), progress=True)


def ensure_hub_file(url: str, *, filename: str | None = None,
                    download: Callable[[str, Path], None] | None = None) -> Path:
    """Return the local path of a published weights file, downloading it when absent.

    Parameters
    ----------
    url : str
        Where the file is published.
    filename : str, optional
        Name in the hub checkpoint folder; default: the last part of ``url``.
    download : callable(url, destination), optional
        The downloader; default: torch hub's. Tests pass one that raises.

    Raises
    ------
    WeightsUnavailableError
        The file is absent and the download failed; the message names the URL and the exact
        path to put the file at.
    """
    path = hub_checkpoint_dir() / (filename or url.rsplit("/", 1)[-1])
    if path.is_file():
        return path
    download = _download_url if download is None else download
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        logger.info("downloading %s to %s", url, path)
        download(url, path)
    except Exception as exc:
        raise WeightsUnavailableError(
            f"cannot download the published weights ({type(exc).__name__}: {exc}). "
            f"Download {url} on a machine with network access and put the file at {path} "
            "(or set TORCH_HOME to a folder holding hub/checkpoints/ with it)"
        ) from exc
    if not path.is_file():
        raise WeightsUnavailableError(f"download of {url} did not produce {path}")
    return path


def missing_local_weights(description: str, filename: str, source: str) -> Path:
    """Return the path of a weights file that must be placed by hand, or raise saying where.

    For weights with no downloadable URL (the SEW-ResNet ImageNet checkpoints).
    """
    path = hub_checkpoint_dir() / filename
    if path.is_file():
        return path
    raise WeightsUnavailableError(
        f"no published ImageNet weights for {description} can be downloaded automatically. "
        f"Get the checkpoint from {source} and put it at {path}, or pass its path as "
        "weights=<path>"
    )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint with ``torch.load(..., weights_only=True)`` and return its state dict.

    A file holding ``{"state_dict": {...}}`` or ``{"model": {...}}`` is unwrapped, and a
    ``module.`` prefix (``nn.DataParallel``) is removed from every key.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(_unreadable_message(path, exc)) from exc
    for wrapper_key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper_key), Mapping):
            obj = obj[wrapper_key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(f"checkpoint {path} does not hold a state dict (a mapping of name -> tensor)")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


_RESAVE = ("re-save it as a state dict: torch.save(model.state_dict(), PATH) on a machine where "
           "torch.load(PATH, weights_only=False) works and the file is trusted")


def _unreadable_message(path: Path, exc: Exception) -> str:
    """One line naming the file, what reading it found and what to do (torch's text is multi-line)."""
    text = " ".join(str(exc).split())
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (f"checkpoint {path} holds a pickled object of class {found.group(1)} (a whole model?), "
                "not a state dict, so torch.load(weights_only=True) refuses it; " + _RESAVE)
    first = re.split(r"(?<=\.) ", text, maxsplit=1)[0][:200]
    return (f"checkpoint {path} is not a torch checkpoint readable with torch.load(weights_only=True) "
            f"({type(exc).__name__}: {first}); expected a file written by torch.save(model.state_dict(), PATH)")


def check_state_dict(module: nn.Module, state: Mapping, path) -> None:
    """Raise a DataError unless ``state``'s keys and shapes are exactly ``module``'s.

    ``module`` may live on torch's ``meta`` device (no memory), so that a checkpoint is
    checked against a network before anything is built or extracted.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or shapes:
        raise DataError(
            f"checkpoint {path} does not match {type(module).__name__}: "
            f"{len(missing)} missing key(s) {_preview(missing)}, "
            f"{len(unexpected)} unexpected key(s) {_preview(unexpected)}"
            + (f", {len(shapes)} shape mismatch(es) {_preview(shapes)}" if shapes else "")
        )


def load_checkpoint(module: nn.Module, path: str | os.PathLike) -> None:
    """Load a local checkpoint into ``module`` with strict key and shape checking.

    Raises
    ------
    DataError
        The file cannot be read, or its keys or tensor shapes differ from the module's; the
        message lists the missing and unexpected keys (and mismatched shapes).
    """
    state = read_state_dict(path)
    check_state_dict(module, state, path)
    module.load_state_dict(state, strict=True)


def _preview(items: list[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}]"


def state_dict_hash(module: nn.Module) -> str:
    """sha256 of a module's state dict: every tensor's name, dtype, shape and bytes, by name."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
