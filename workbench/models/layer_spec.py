"""Analysis layers as strings: which tensor of which submodule a layer reads.

A layer spec names a submodule by its dotted ``named_modules()`` path and, optionally, which
of its tensors to read:

==========================  ==================================================================
``"layer3.1"``              the module's output (tensor), as PyTorch's forward hook sees it
``"classifier:input"``      the module's first positional input (e.g. the pooled features a
                            classifier reads)
``"blocks.0:out[1]"``       element 1 of the module's tuple or list output (negative counts
                            from the end)
``"V4:call[-1]"``           the module's output on its last call in one forward pass (0-based;
                            negative counts from the end): a module run several times, e.g. a
                            recurrent area unrolled over time steps
==========================  ==================================================================

Specs are kept as these strings everywhere (model layers, stores, scores); a plain path is the
spec of the module's output, so existing layer names mean what they meant. Indices are written
without leading zeros or a sign on zero, so each spec has one spelling.

Examples
--------
>>> parse_layer_spec("blocks.0:out[1]")
LayerSpec(path='blocks.0', kind='out', index=1)
>>> str(parse_layer_spec("V4:call[-1]"))
'V4:call[-1]'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from workbench.errors import ValidationError

LAYER_SPEC_GRAMMAR = ('"<dotted module path>" (its output), "<path>:input" (its first positional '
                      'input), "<path>:out[i]" (element i of its tuple/list output) or '
                      '"<path>:call[k]" (its output on call k of one forward pass, 0-based, '
                      'negative from the end)')

_INDEX = r"(?:0|-?[1-9][0-9]*)"
_SPEC = re.compile(
    rf"(?P<path>[^.:\s\[\]]+(?:\.[^.:\s\[\]]+)*)"
    rf"(?::(?:(?P<input>input)|(?P<kind>out|call)\[(?P<index>{_INDEX})\]))?"
)


@dataclass(frozen=True)
class LayerSpec:
    """A parsed layer spec.

    Attributes
    ----------
    path : str
        Dotted path of the submodule (``module.get_submodule(path)``).
    kind : {"output", "input", "out", "call"}
        Which tensor: the output, the first positional input, one element of a tuple/list
        output, or the output of one call among several.
    index : int or None
        The element (``"out"``) or the call (``"call"``); ``None`` for the other kinds.
    """

    path: str
    kind: str = "output"
    index: int | None = None

    def __str__(self) -> str:
        if self.kind == "output":
            return self.path
        if self.kind == "input":
            return f"{self.path}:input"
        return f"{self.path}:{self.kind}[{self.index}]"


def parse_layer_spec(spec: str) -> LayerSpec:
    """Parse a layer spec string (grammar in the module docstring).

    Raises
    ------
    ValidationError
        ``spec`` is not a string of the grammar; the message names it and the grammar.
    """
    match = _SPEC.fullmatch(spec) if isinstance(spec, str) else None
    if match is None:
        raise ValidationError(f"layer spec {spec!r} is not valid; expected {LAYER_SPEC_GRAMMAR}")
    if match["input"]:
        return LayerSpec(match["path"], "input")
    if match["kind"]:
        return LayerSpec(match["path"], match["kind"], int(match["index"]))
    return LayerSpec(match["path"])


def absent_layers(module: nn.Module, layers: Iterable[str]) -> list[str]:
    """The specs among ``layers`` whose path is not a submodule of ``module`` (in order).

    Raises
    ------
    ValidationError
        A spec is malformed (:func:`parse_layer_spec`).
    """
    paths = {name for name, _ in module.named_modules() if name}
    return [layer for layer in layers if parse_layer_spec(layer).path not in paths]
