"""Model names as the command line and the sweep take them, checked before any work starts.

A model name is one of:

- a registered name (``workbench models list``), e.g. ``resnet18``;
- ``timm:<name>`` or ``torchvision:<name>``: any network of those libraries, with default
  analysis layers and its own preprocessing (:mod:`workbench.models.hub`);
- ``package.module:factory``: an importable module and a factory in it, called as
  ``factory()`` (or ``factory(pretrained=...)`` when it takes that argument), returning
  :func:`workbench.models.wrap_model`'s result or an :class:`~workbench.models.Architecture`;
- a name declared by an installed package in the ``workbench.models`` entry-point group::

      # the plugin package's pyproject.toml
      [project.entry-points."workbench.models"]
      my_net = "my_package.models:my_net"

  after which ``workbench score --models my_net ...`` finds it.

Such a factory may load its own weights (a checkpoint it reads): built without a ``--weights``
value, the network is labelled by the factory's own description of them (``wrap_model(...,
weights="...")`` or ``Architecture(..., weights="...")``), else ``"custom (sha256 <12 hex>)"``,
and never as randomly initialised; a sweep keys its results by the state dict's sha256
(:func:`workbench.analysis.sweeps.network_identity`), so a changed checkpoint is scored again.

:func:`check_model_names` validates a list of names at once and raises one
:class:`~workbench.errors.ValidationError` naming every bad one, so the CLI and
:func:`workbench.analysis.sweep` reject a typo before any extraction starts.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable

from workbench.errors import ValidationError, WeightsUnavailableError
from workbench.models.weights import without_weights

#: The entry-point group a package declares its models in.
ENTRY_POINT_GROUP = "workbench.models"
#: Plugin entries resolved in this process, by name (kept out of the zoo's listing).
_PLUGINS: dict = {}


def is_factory_spec(name: str) -> bool:
    """Whether ``name`` has the ``package.module:factory`` form."""
    module, sep, attr = str(name).partition(":")
    return bool(sep and module and attr) and "/" not in module and all(
        part.isidentifier() for part in module.split(".") + attr.split("."))


def entry_point_names() -> dict[str, object]:
    """Models declared by installed packages in the ``workbench.models`` entry-point group."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_factory(name: str) -> Callable:
    if is_factory_spec(name):
        module_name, _, attr = name.partition(":")
        try:
            obj = importlib.import_module(module_name)
        except Exception as exc:
            raise ValidationError(
                f"model {name!r}: cannot import module {module_name!r} ({type(exc).__name__}: {exc}); "
                "expected package.module:factory with the module importable (installed, or on PYTHONPATH)"
            ) from None
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise ValidationError(f"model {name!r}: module {module_name!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        factory = obj
    else:
        try:
            factory = entry_point_names()[name].load()
        except Exception as exc:
            raise ValidationError(
                f"model {name!r}: its entry point in group {ENTRY_POINT_GROUP!r} cannot be loaded "
                f"({type(exc).__name__}: {exc})"
            ) from None
    if not callable(factory):
        raise ValidationError(f"model {name!r}: {type(factory).__name__} is not callable; expected a factory function")
    return factory


def plugin_entry(name: str):
    """The registry entry of a hub, ``package.module:factory`` or entry-point model name, or None.

    ``timm:<name>`` and ``torchvision:<name>`` resolve to :func:`workbench.models.hub.hub_entry`.

    The factory is built once on torch's ``meta`` device (no memory, no weights) to learn the
    model's family; the entry is then kept in the registry under ``name``.
    """
    from workbench.models.custom import is_spiking, as_architecture
    from workbench.models.hub import hub_entry, is_hub_name
    from workbench.models.registry import ModelEntry

    if is_hub_name(name):
        return hub_entry(name)
    if name in _PLUGINS:
        return _PLUGINS[name]
    if not is_factory_spec(name) and name not in entry_point_names():
        return None
    factory = _load_factory(name)
    takes_pretrained = "pretrained" in _parameters(factory)

    def build(pretrained: bool = False):
        if takes_pretrained:
            built = factory(pretrained=pretrained)
        elif pretrained:
            raise WeightsUnavailableError(
                f"model {name!r} declares no published weights (its factory takes no `pretrained` "
                "argument); pass a checkpoint path as its weights, or load them in the factory"
            )
        else:
            built = factory()
        return as_architecture(built, name)

    try:
        with without_weights():
            arch, family = build(False)
    except ValidationError:
        raise
    except Exception:  # a factory that cannot run on the meta device: build it for real once
        try:
            arch, family = build(False)
        except ValidationError:
            raise
        except Exception as exc:
            raise ValidationError(f"model {name!r}: its factory raised {type(exc).__name__}: {exc}") from None
    if family is None:
        family = "snn" if arch.time_steps > 1 or is_spiking(arch.module) else "cnn"
    doc = (getattr(factory, "__doc__", None) or "").strip().splitlines()
    _PLUGINS[name] = ModelEntry(name, family, lambda pretrained=False: build(pretrained)[0],
                                doc[0] if doc else f"plugin model {name}", own_weights=True)
    return _PLUGINS[name]


def _parameters(factory: Callable) -> set[str]:
    try:
        return set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return set()


def check_model_names(names: Iterable[str]) -> list[str]:
    """Check every model name before any work starts; return them as a list.

    Accepts registered names, ``package.module:factory`` names and entry-point models (see
    the module docstring). This is the one place where model names are validated, for the
    CLI (``score``, ``report``, ``compare-models``) and :func:`workbench.analysis.sweep`.

    Raises
    ------
    ValidationError
        The list is empty or has duplicates, or some names are unknown (the message names
        each one, with close matches), or a plugin cannot be imported or built.
    """
    from workbench.models.registry import model_entry, list_models

    names = [str(n) for n in names]
    if not names:
        raise ValidationError("models is empty; expected at least one model name")
    if len(set(names)) != len(names):
        raise ValidationError(f"models has duplicates: {names}")
    from workbench.models import registry

    problems = []
    for name in names:
        is_run = getattr(registry, "_is_run", None)  # a training run directory (workbench train)
        if is_run is not None and is_run(name):
            continue
        try:
            model_entry(name)
        except ValidationError as exc:
            problems.append(str(exc))
    if problems:
        if len(problems) == 1:
            raise ValidationError(problems[0])
        known = len(list_models())
        raise ValidationError(f"{len(problems)} model names are not valid: " + "; ".join(
            p.split(" (`workbench models list`")[0] for p in problems)
            + f" (`workbench models list` shows all {known} models)")
    return names

