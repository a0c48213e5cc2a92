"""One forward pass over the stimuli with every requested layer hooked.

The study's protocol for spiking networks: a static image is repeated over T time steps, the
network state is reset after every batch, and each layer's output is averaged over T
(``time_reduce="mean"``) or kept per step (``time_reduce=None``) for time-resolved analysis.
Non-spiking networks run once per image (T = 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.activations.hooks import hooked
from workbench.activations.stimuli import check_stimuli, iter_batches
from workbench.errors import ValidationError
from workbench.models.registry import ModelWrapper
from workbench.validation import did_you_mean

TIME_REDUCTIONS = ("mean", None)


class ByLayer(dict):
    """What an extraction returns: a dict of layer to result, whose missing layer is a KeyError
    that names it, close matches and the layers extracted."""

    def __missing__(self, layer):
        raise KeyError(f"layer {layer!r} was not extracted{did_you_mean(layer, self)} "
                       f"(extracted layers: {', '.join(self)})")


@dataclass(frozen=True)
class ExtractionSettings:
    """Resolved, validated settings of one extraction (they also enter the cache key)."""

    layers: tuple[str, ...]
    time_steps: int
    time_reduce: str | None
    batch_size: int
    device: torch.device


def resolve_settings(model: ModelWrapper, layers: Iterable[str] | str | None, batch_size: int,
                     time_steps: int | None, time_reduce: str | None,
                     device: str | torch.device) -> ExtractionSettings:
    """Check the extraction arguments before any forward pass."""
    if not isinstance(model, ModelWrapper):
        raise ValidationError(
            f"model must be a ModelWrapper from workbench.models.create, found {type(model).__name__}"
        )
    layers = model.check_layers(layers)
    if int(batch_size) < 1:
        raise ValidationError(f"batch_size must be >= 1, found {batch_size}")
    if time_reduce not in TIME_REDUCTIONS:
        raise ValidationError(
            f"time_reduce={time_reduce!r} is not valid; expected 'mean' (average over time "
            "steps) or None (keep every step)"
        )
    if time_steps is None:
        time_steps = model.time_steps
    if int(time_steps) < 1:
        raise ValidationError(f"time_steps must be >= 1, found {time_steps}")
    if not model.is_spiking and int(time_steps) != 1:
        raise ValidationError(
            f"time_steps={time_steps} given for the non-spiking model {model.name}; "
            "expected None or 1 (only spiking networks are simulated over time steps)"
        )
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValidationError(f"device={device!r} is not a torch device ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValidationError(f"device={str(device)!r} requested but no CUDA GPU is available")
    return ExtractionSettings(tuple(layers), int(time_steps), time_reduce, int(batch_size), device)


def _capture_hook(model: ModelWrapper, reduce: bool, per_step: bool, on_device: bool,
                  captured: dict, captured_steps: dict) -> Callable[[str, torch.Tensor], None]:
    """The hook of :func:`forward_batches`: store each layer's output of one forward pass.

    ``captured[layer]`` gets (b, *feature_shape) when ``reduce`` (mean over time steps), else
    (b, T, *feature_shape); with ``per_step``, ``captured_steps[layer]`` gets
    (b, T, *feature_shape) (T = 1 for a non-spiking network). Values are float32 copies: numpy
    arrays on the CPU, or torch tensors left on their device with ``on_device``.
    """

    def keep(out: torch.Tensor):
        if on_device:
            return out.to(dtype=torch.float32, copy=True)
        return out.to("cpu", torch.float32, copy=True).numpy()

    def on_output(layer: str, out: torch.Tensor) -> None:
        if layer in captured:
            raise ValidationError(
                f"layer {layer!r} ran more than once in one forward pass (a shared module); "
                f"hook a module that runs once, or one of its calls: '{layer}:call[k]'"
            )
        if model.is_spiking:
            out = out.transpose(0, 1)  # (T, b, ...) -> (b, T, ...)
            if per_step:
                captured_steps[layer] = keep(out)
            out = out.mean(dim=1) if reduce else out
        elif not reduce:
            out = out.unsqueeze(1)  # T = 1
        captured[layer] = keep(out)
        if per_step and not model.is_spiking:
            captured_steps[layer] = captured[layer][:, None]  # T = 1: the step is the output

    return on_output


def forward_batches(model: ModelWrapper, stimuli, settings: ExtractionSettings,
                    first: int = 0, *, per_step: bool = False,
                    on_device: bool = False) -> Iterator[tuple]:
    """Run the network batch by batch and yield each batch's hooked outputs.

    ``first`` (a multiple of the batch size) skips the stimuli before it, to resume a pass.

    Parameters
    ----------
    per_step : bool, default: False
        With ``time_reduce="mean"``: also keep every time step, from the same forward pass
        (the averages are computed from the very tensors that are kept), and yield
        ``(start, outputs, step_outputs)``.
    on_device : bool, default: False
        Yield float32 torch tensors left on ``settings.device`` (copies, safe from later
        in-place operations of the network) instead of numpy arrays on the CPU.

    Yields
    ------
    start : int
        Index of the batch's first stimulus.
    outputs : dict of str to ndarray, float32
        Per layer: (b, *feature_shape) when ``time_reduce="mean"``, or
        (b, time_steps, *feature_shape) when ``time_reduce=None``. ``feature_shape`` is the
        module's output for one stimulus at one time step (e.g. (C, H, W)).
    step_outputs : dict of str to ndarray, float32
        Only with ``per_step``: per layer, (b, time_steps, *feature_shape), the values
        ``time_reduce=None`` gives.
    """
    n = check_stimuli(stimuli)
    module = model.module.to(settings.device)
    reduce = settings.time_reduce == "mean"
    if per_step and not reduce:
        raise ValidationError("per_step=True needs time_reduce='mean' (time_reduce=None already "
                              "keeps every time step)")
    captured: dict[str, np.ndarray] = {}
    captured_steps: dict[str, np.ndarray] = {}
    on_output = _capture_hook(model, reduce, per_step, on_device, captured, captured_steps)

    reset = None
    if model.is_spiking:
        from spikingjelly.activation_based import functional

        reset = functional.reset_net
    batches = tqdm(iter_batches(stimuli, model.preprocessing, settings.batch_size, first),
                   total=-(-n // settings.batch_size), initial=int(first) // settings.batch_size,
                   desc=f"{model.name}: batches", unit="batch", disable=None)
    with hooked(module, settings.layers, on_output), torch.inference_mode():
        for start, x in batches:
            x = x.to(settings.device)
            captured.clear()
            captured_steps.clear()
            if reset is not None:
                reset(module)
                x = x.unsqueeze(0).repeat(settings.time_steps, 1, 1, 1, 1)  # (T, b, C, H, W)
            try:
                module(x)
            finally:
                if reset is not None:
                    reset(module)
            absent = [layer for layer in settings.layers if layer not in captured]
            if absent:
                raise ValidationError(f"layer(s) {absent} of {model.name} did not run in forward()")
            if per_step:
                yield start, dict(captured), dict(captured_steps)
            else:
                yield start, dict(captured)


def feature_shapes(outputs: dict[str, np.ndarray], settings: ExtractionSettings) -> dict[str, tuple]:
    """Per layer, the output shape of one stimulus at one time step."""
    skip = 1 if settings.time_reduce == "mean" else 2
    return {layer: tuple(arr.shape[skip:]) for layer, arr in outputs.items()}
