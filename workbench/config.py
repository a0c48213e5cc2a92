"""Typed frozen configs set by ``FIELD=VALUE`` texts: the one base of every settings object.

:class:`Config` is the base of the study's :class:`~workbench.analysis.Protocol` and of the
training configs (:class:`~workbench.training.TrainConfig` and each method's subclass). A
subclass is a frozen dataclass whose annotations are the types; the base gives it

- strict coercion of every field to its annotated type on construction (``zscore=0`` and
  ``zscore=False`` are one config; ``epochs="3"`` is an error naming the field),
- :meth:`Config.parse_overrides`: ``["epochs=2", "augment=off"]`` parsed to the fields' types
  (one set of spellings for booleans, lists and mappings, below),
- one unknown-field error with close-match hints that lists every field (also for a keyword
  argument of the constructor),
- :meth:`Config.replace`, :meth:`Config.from_dict`, :meth:`Config.to_dict`,
- :attr:`Config.fingerprint`: :data:`FINGERPRINT_DIGITS` hex digits of a sha256.

Spellings of a value on the command line, by annotated type:

=================  =============================================================
``bool``           ``true/false``, ``yes/no``, ``on/off``, ``1/0`` (any case)
``int``, ``float`` their usual spelling (``8``, ``1e-3``)
``X | None``       ``none`` (also ``null``, ``~``) or a value of ``X``
tuple, set         comma-separated items, optionally in brackets (``[30, 60]``);
                   ``none`` or ``[]``: empty
dict               ``KEY:VALUE`` pairs separated by commas, optionally in braces
                   (``{norm: group}``)
=================  =============================================================
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import numbers
import types
import typing
from typing import Any, ClassVar

import yaml

from workbench.errors import ValidationError
from workbench.validation import check_choice, did_you_mean

#: Length of every config fingerprint (hex digits of a sha256; 64 bits).
FINGERPRINT_DIGITS = 16

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
NONE_WORDS = ("none", "null", "~")


def fingerprint_of(payload) -> str:
    """:data:`FINGERPRINT_DIGITS` hex digits of the sha256 of ``payload``'s canonical JSON
    (dict keys sorted, tuples as lists, sets as sorted lists: the same on every run)."""
    text = json.dumps(payload, sort_keys=True, default=_canonical)
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_DIGITS]


def _canonical(value):
    """What JSON cannot write directly: a set in a fixed order (not its hash-seed order)."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=lambda item: json.dumps(item, sort_keys=True, default=_canonical))
    raise TypeError(f"a fingerprint covers JSON values, sets, tuples and lists; found {type(value).__name__}")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of frozen settings objects: typed fields, ``FIELD=VALUE`` overrides, a fingerprint.

    A subclass declares its fields as a frozen dataclass and may set :attr:`OPTION` (the
    command-line option named in parse errors) and :attr:`CHOICES` (the allowed values of
    string fields). A subclass's ``__post_init__`` calls ``super().__post_init__()`` first and
    then checks ranges (:meth:`check_minimum`).
    """

    #: The command-line option whose ``FIELD=VALUE`` texts :meth:`parse_overrides` reads.
    OPTION: ClassVar[str] = "--set"
    #: Allowed values of string fields (a subclass extends its parent's).
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __new__(cls, *args, **kwargs):
        cls.check_fields(kwargs)  # ``Protocol(timesteps=8)``: the field list and hints, not a bare TypeError
        return super().__new__(cls)

    def __post_init__(self):
        for name, hint in _field_hints(type(self)).items():
            object.__setattr__(self, name, _coerce(hint, getattr(self, name), self.label(name)))
        for name, choices in self.CHOICES.items():
            check_choice(getattr(self, name), self.label(name), choices)

    @classmethod
    def label(cls, name: str) -> str:
        """How errors name field ``name``: ``"Protocol.time_steps"``."""
        return f"{cls.__name__}.{name}"

    def check_minimum(self, minimum, *names: str, note: str = "") -> None:
        """Raise unless every field of ``names`` is ``>= minimum`` (``note`` ends the message)."""
        for name in names:
            value = getattr(self, name)
            if not value >= minimum:
                note_text = f" ({note})" if note else ""
                raise ValidationError(f"{self.label(name)} must be >= {minimum}{note_text}, found {value}")

    # -- fields ---------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        """The fields, in declaration order."""
        return list(_field_hints(cls))

    @classmethod
    def check_fields(cls, names, *, where: str = "") -> None:
        """Raise for the first of ``names`` that is not a field, suggesting close ones.

        The message starts with ``where`` (the file or option the names came from) and lists
        every field: ``"--set 'epoch=3': SupervisedConfig has no field 'epoch'; did you mean
        'epochs'? (fields: arch, ...)"``.
        """
        fields = cls.field_names()
        for name in names:
            if name not in fields:
                prefix = f"{where}: " if where else ""
                raise ValidationError(f"{prefix}{cls.__name__} has no field {name!r}"
                                      f"{did_you_mean(name, fields)} (fields: {', '.join(fields)})")

    @classmethod
    def parse_value(cls, name: str, text: str) -> Any:
        """The value of field ``name`` from its command-line ``text``, parsed to the field's type.

        Sets come back as sorted lists, so that the result stays JSON-ready.

        Raises
        ------
        ValidationError
            ``"<name> expects <what>, found <text>"``.
        """
        cls.check_fields([name])
        hint = _field_hints(cls)[name]
        try:
            value = _coerce(hint, _parse(hint, text.strip()), name)
        except (ValidationError, ValueError):
            raise ValidationError(f"{name} expects {_expected(hint)}, found {text!r}") from None
        return sorted(value) if isinstance(value, frozenset) else value

    @classmethod
    def parse_overrides(cls, pairs) -> dict[str, Any]:
        """Typed field values from ``FIELD=VALUE`` texts (the CLI's :attr:`OPTION`), each parsed strictly.

        Raises
        ------
        ValidationError
            A text without ``=``, an unknown field, or a value that is not of the field's type;
            the message names the option, the text, the field and what was expected.
        """
        out: dict[str, Any] = {}
        for pair in pairs:
            key, sep, text = str(pair).partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValidationError(f"{cls.OPTION} expects FIELD=VALUE, found {pair!r}; it takes every "
                                      f"value up to the next option, so put positional arguments before "
                                      f"{cls.OPTION} (or end its values with --)")
            cls.check_fields([key], where=f"{cls.OPTION} {pair!r}")
            try:
                out[key] = cls.parse_value(key, text)
            except ValidationError as exc:
                raise ValidationError(f"{cls.OPTION} {pair!r}: {exc}") from None
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str = ""):
        """An instance from a mapping of field values (e.g. a saved file), every key checked.

        ``where`` (the file the values came from) starts every error message.
        """
        cls.check_fields(values, where=where)
        try:
            return cls(**values)
        except ValidationError as exc:
            if not where:
                raise
            raise ValidationError(f"{where}: {exc}") from None

    def replace(self, **changes):
        """A copy with some fields changed (unknown names raise, with hints)."""
        self.check_fields(changes)
        return dataclasses.replace(self, **changes)

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready: sets become sorted lists, tuples lists."""
        return {name: _plain(getattr(self, name)) for name in self.field_names()}

    def fingerprint_payload(self) -> Any:
        """What :attr:`fingerprint` hashes: :meth:`to_dict` (a subclass may leave fields out)."""
        return self.to_dict()

    @property
    def fingerprint(self) -> str:
        """:data:`FINGERPRINT_DIGITS` hex digits of the sha256 of :meth:`fingerprint_payload`."""
        return fingerprint_of(self.fingerprint_payload())


@functools.cache
def _field_hints(cls) -> dict[str, Any]:
    """``{field: annotated type}`` of a config class, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def _plain(value):
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _union_args(hint) -> tuple | None:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return None


def _item_type(hint, index: int = 0):
    args = typing.get_args(hint)
    return args[index] if len(args) > index else Any


def _expected(hint) -> str:
    """What a value of type ``hint`` looks like, for error messages."""
    union = _union_args(hint)
    if union:
        return " or ".join(_expected(arg) for arg in union)
    origin = typing.get_origin(hint) or hint
    return {
        type(None): "none",
        bool: "true or false (also yes/no, on/off, 1/0)",
        int: "an integer",
        float: "a number",
        str: "a string",
        tuple: "a comma-separated list",
        list: "a comma-separated list",
        frozenset: "a comma-separated list",
        set: "a comma-separated list",
        dict: "KEY:VALUE pairs separated by commas",
    }.get(origin, getattr(hint, "__name__", str(hint)))


def _coerce(hint, value, label: str):
    """``value`` as type ``hint`` (ints and floats from numbers, booleans from 0/1, containers
    item by item), or a ValidationError naming ``label``."""
    union = _union_args(hint)
    if union:
        for arg in union:
            try:
                return _coerce(arg, value, label)
            except ValidationError:
                pass
    else:
        converted = _convert(hint, value, label)
        if converted is not _INVALID:
            return converted
    raise ValidationError(f"{label} must be {_expected(hint)}, found {value!r}")


_INVALID = object()


def _convert(hint, value, label: str):
    """:func:`_coerce` for one type of a union; :data:`_INVALID` when ``value`` does not fit."""
    origin = typing.get_origin(hint) or hint
    if hint is Any:
        return value
    if hint is type(None):
        return None if value is None else _INVALID
    if hint is bool:
        numpy_scalar = hasattr(value, "dtype") and getattr(value, "shape", None) == ()  # numpy bool, int
        if isinstance(value, (bool, numbers.Integral)) or numpy_scalar:
            return bool(value) if value in (0, 1) else _INVALID
        return _INVALID
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return _INVALID
        if hint is int:
            return int(value) if float(value).is_integer() else _INVALID
        return float(value)
    if origin in (tuple, list, set, frozenset):
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            return _INVALID
        items = [_coerce(_item_type(hint), item, label) for item in value]  # lists become tuples:
        return frozenset(items) if origin in (set, frozenset) else tuple(items)  # frozen values
    if origin is dict:
        if not hasattr(value, "items"):
            return _INVALID
        key_type, item_type = _item_type(hint, 0), _item_type(hint, 1)
        pairs = [(_coerce(key_type, k, label), _coerce(item_type, v, f"{label}[{k!r}]"))
                 for k, v in value.items()]
        return dict(sorted(pairs, key=lambda pair: pair[0])) if key_type is str else dict(pairs)
    return value if isinstance(value, origin) else _INVALID


def _yaml_container(text: str, kind: type):
    """``text`` read as YAML when it is a bracketed ``kind`` (dict or list), else None."""
    stripped = text.strip()
    if not stripped.startswith("{" if kind is dict else "["):
        return None
    try:
        loaded = yaml.safe_load(stripped)
    except yaml.YAMLError:
        return None
    return loaded if isinstance(loaded, kind) else None


def _parse(hint, text: str):
    """A value of type ``hint`` read from its command-line ``text`` (checked by :func:`_coerce` after)."""
    lowered = text.lower()
    union = _union_args(hint)
    if union:
        if type(None) in union and lowered in NONE_WORDS:
            return None
        for arg in (a for a in union if a is not type(None)):
            try:
                return _coerce(arg, _parse(arg, text), "")
            except (ValidationError, ValueError):
                pass
        raise ValueError(text)
    origin = typing.get_origin(hint) or hint
    if hint is bool:
        if lowered in TRUE_WORDS + FALSE_WORDS:
            return lowered in TRUE_WORDS
        raise ValueError(text)
    if hint in (int, float):
        return hint(text)
    if origin in (tuple, list, set, frozenset):
        if lowered in NONE_WORDS + ("", "[]"):
            return []
        items = (item for item in text.strip("[]").split(",") if item.strip())
        return [_parse(_item_type(hint), _unquote(item)) for item in items]
    if origin is dict:
        inner = text.strip()
        if inner.startswith("{") and inner.endswith("}"):  # one pair only: a nested value may end in "}}"
            inner = inner[1:-1]
        if any(bracket in inner for bracket in "[]{}"):  # nested values: YAML flow syntax
            nested = _yaml_container("{" + inner + "}", dict)
            if nested is None:
                raise ValueError(text)
            return nested
        out = {}
        for item in (part for part in inner.split(",") if part.strip()):
            key, sep, value = item.rpartition(":")
            if not sep or not key.strip():
                raise ValueError(text)
            out[_unquote(key)] = _parse(_item_type(hint, 1), value.strip())
        return out
    if hint is Any:
        return yaml.safe_load(text)
    return text


def _unquote(text: str) -> str:
    return text.strip().strip("'\"")
