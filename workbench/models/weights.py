"""Model weights: published ImageNet files, local checkpoints and a content hash.

Published weights live where torch hub keeps them (``$TORCH_HOME/hub/checkpoints/<file>``).
Each model module declares where its model's file comes from (:func:`declare_weights`, a
:class:`WeightsSource`: a URL, or a page to fetch it from by hand, and the published sha256
where there is one), so ``workbench models weights`` lists every source, expected path and
the state of the local copy without building a network. When a file with a URL is absent it
is downloaded; when that fails (no network), or a file must be placed by hand, a
:class:`~workbench.errors.WeightsUnavailableError` says what to fetch and where to put it.

Checkpoints are read with ``torch.load(weights_only=True)``, allowing besides tensors and plain
containers only :data:`CHECKPOINT_GLOBALS` (the ``argparse.Namespace`` of training scripts'
``{"model": state_dict, "optimizer": ..., "args": ...}`` files, as the study's SNN checkpoints
are saved); a file pickling any other global is refused, naming it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from workbench.errors import DataError, ValidationError, WeightsUnavailableError

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


def fetched(weights_enum):
    """A torchvision weights enum (``ResNet18_Weights.IMAGENET1K_V1``, ...) whose file is in torch's
    hub cache, downloaded when absent; offline, the clear error of :func:`ensure_hub_file` (the URL
    and the path to put the file at) instead of torchvision's own."""
    ensure_hub_file(weights_enum.url)
    return weights_enum


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's published weights come from and where they are kept on this machine.

    Attributes
    ----------
    filename : str
        The file's name in torch hub's checkpoint folder (:func:`hub_checkpoint_dir`).
    url : str or None
        Where it is downloaded from when absent; ``None`` for files placed by hand.
    origin : str or None
        Where to get the file by hand (a page or folder), when there is no ``url``.
    sha256 : str or None
        The published sha256 of the file, or its leading hex digits (torch hub's
        ``name-<sha256 prefix>.pth`` convention); ``None`` where nothing is published.
    """

    filename: str
    url: str | None = None
    origin: str | None = None
    sha256: str | None = None

    @property
    def path(self) -> Path:
        """The expected local path, read at call time (``$TORCH_HOME`` may change)."""
        return hub_checkpoint_dir() / self.filename


_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.")


def url_source(url: str) -> WeightsSource:
    """The source of a downloadable file, with the sha256 prefix its name carries (torch hub style)."""
    filename = url.rsplit("/", 1)[-1]
    found = _HASH_IN_NAME.search(filename)
    return WeightsSource(filename=filename, url=url, sha256=found.group(1) if found else None)


_DECLARED: dict[str, WeightsSource] = {}


def declare_weights(model: str, source: WeightsSource) -> WeightsSource:
    """Declare where the published weights of registered model ``model`` come from.

    Model modules call this at import, beside ``register_model``, so that
    ``workbench models weights`` lists every source without building a network.
    """
    if model in _DECLARED and _DECLARED[model] != source:
        raise ValidationError(f"weights of model {model!r} are already declared as {_DECLARED[model]}")
    _DECLARED[model] = source
    return source


def published_weights(model: str) -> Path:
    """The local path of ``model``'s declared weights: downloaded when absent and published by URL.

    Raises
    ------
    WeightsUnavailableError
        The file is absent and cannot be downloaded; the message names where to get it and
        the exact path to put it at.
    """
    source = _DECLARED.get(model)
    if source is None:
        raise WeightsUnavailableError(f"model {model!r} declares no published weights; "
                                      "pass a checkpoint path as weights=<path>")
    if source.url is not None:
        return ensure_hub_file(source.url, filename=source.filename)
    if source.path.is_file():
        return source.path
    raise WeightsUnavailableError(
        f"no published ImageNet weights for {model} can be downloaded automatically. "
        f"Get the checkpoint from {source.origin} and put it at {source.path}, or pass its path "
        "as weights=<path> (`workbench models weights` lists every expected file)"
    )


def weights_source(model: str) -> WeightsSource | None:
    """Where registered model ``model``'s published weights come from, read without building it.

    The source its module declared (:func:`declare_weights`), else ``None``.
    """
    from workbench.models.registry import model_entry

    return _DECLARED.get(model_entry(model).name)  # model_entry loads the zoo, which declares them


def weights_file_status(source: WeightsSource) -> str:
    """``"absent"``, ``"verified"`` (sha256 matches the published one), ``"present"`` (no hash
    is published) or ``"HASH MISMATCH ..."`` (the file differs from the published one)."""
    from workbench.storage import sha256_file

    if not source.path.is_file():
        return "absent"
    if source.sha256 is None:
        return "present"
    actual = sha256_file(source.path)
    if actual.startswith(source.sha256):
        return "verified"
    return f"HASH MISMATCH (sha256 {actual[:16]}..., published {source.sha256})"


# Globals that checkpoints hold beside their tensors and plain containers, allowed to
# torch.load(weights_only=True): the training arguments the study's train_imagenet.py saves
# under "args" (github.com/Grasshlw/SNN-Neural-Similarity-Static; its other entries, "model",
# "optimizer", "lr_scheduler", "scaler", "model_ema", "epoch" and accuracies, are state dicts,
# ints and floats).
CHECKPOINT_GLOBALS = (argparse.Namespace,)


def read_checkpoint(path: str | os.PathLike) -> object:
    """``torch.load(path, weights_only=True)`` allowing :data:`CHECKPOINT_GLOBALS`, on the CPU.

    Raises
    ------
    DataError
        ``path`` is absent or not a torch checkpoint.
    ValidationError
        The file pickles any other global (a class, a function): it is refused unread, and
        the message names the global and the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(list(CHECKPOINT_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = " ".join(str(exc).split())
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if found:
            raise ValidationError(_unsafe_global_message(path, found.group(1))) from None
        first = re.split(r"(?<=\.) ", text, maxsplit=1)[0][:200]
        raise DataError(
            f"checkpoint {path} is not a torch checkpoint readable with torch.load(weights_only=True) "
            f"({type(exc).__name__}: {first}); expected a file written by torch.save(model.state_dict(), PATH)"
        ) from exc


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint (:func:`read_checkpoint`) and return its state dict.

    A file holding ``{"state_dict": {...}}`` or ``{"model": {...}, ...}`` (the study's
    checkpoints: ``{"model", "optimizer", "args", "epoch", ...}``) is unwrapped, and a
    ``module.`` prefix (``nn.DataParallel``) is removed from every key.
    """
    obj = read_checkpoint(path)
    for wrapper_key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper_key), Mapping):
            obj = obj[wrapper_key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(f"checkpoint {path} does not hold a state dict (a mapping of name -> tensor)")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def _unsafe_global_message(path: Path, name: str) -> str:
    allowed = ", ".join(f"{g.__module__}.{g.__qualname__}" for g in CHECKPOINT_GLOBALS)
    return (f"checkpoint {path} pickles the global {name} (a class or function, e.g. a whole model), "
            f"so it is refused: torch.load(weights_only=True) allows only tensors, plain containers "
            f"and {allowed}. If the file is trusted, re-save its state dict: "
            "torch.save(model.state_dict(), PATH) on a machine where torch.load(PATH, weights_only=False) works")


@contextlib.contextmanager
def without_weights():
    """Build networks inside this block on torch's ``meta`` device: structure and shapes only.

    A factory that loads its own checkpoint loads it into meta parameters there, which torch
    treats as a key and shape check (a mismatch still raises) followed by a copy that does
    nothing, announced once per tensor ("copying from a non-meta parameter ... is a no-op").
    No copy is wanted here (:func:`workbench.models.create` builds the network with its
    weights), so that warning, and no other, is not shown inside this block.
    """
    with torch.device("meta"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"for \S+: copying from a non-meta parameter in the checkpoint")
        yield


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
