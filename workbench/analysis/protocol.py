"""The study's protocol: every analysis choice of a sweep, declared in one object.

A :class:`Protocol` is frozen: change a choice knowingly with :func:`dataclasses.replace`
(or :meth:`Protocol.replace`), and the report prints :meth:`Protocol.describe`. Its
:attr:`Protocol.fingerprint` goes into the scores' metadata and the result-store keys, so
results computed under different protocols are never mixed.

Examples
--------
>>> from workbench.analysis import Protocol
>>> p = Protocol().replace(bootstrap=100)
>>> p.time_steps, p.bootstrap
(4, 100)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from workbench.errors import ValidationError
from workbench.validation import check_choice

#: Datasets whose neural data SVCCA reduces to ``svcca_n_components`` dimensions (the study
#: reduces the Allen mouse recordings only; macaque data enter unreduced).
ALLEN_NATURAL_SCENES = "allen2019_neuropixels_natural_scenes"

#: Reductions over time steps that the extractor supports (per-step scores: ``time_resolved``).
_TIME_REDUCTIONS = ("mean",)
#: Policies for stimuli whose response pattern has zero variance in a layer (or region), where
#: a metric that correlates stimuli (RSA) is undefined: see ``Protocol.zero_variance_stimuli``.
ZERO_VARIANCE_POLICIES = ("unscored", "exclude")

# One line per field, printed by Protocol.describe().
_DESCRIPTIONS = {
    "zscore": "z-score each layer's features with one global mean and std (ddof=0)",
    "time_steps": "time steps T of spiking networks (input repeated T times)",
    "time_reduce": "how SNN features are reduced over T before scoring",
    "time_resolved": "also score SNNs at each time step (fills score_per_step)",
    "svcca_n_components": "SVD dimensions kept by SVCCA (model side, and neural side where reduced)",
    "reduce_neural_for": "datasets whose neural data SVCCA reduces (others enter unreduced)",
    "tsvd_n_components": "SVD dimensions of the model features in TSVD regression",
    "alpha": "ridge penalty of TSVD regression",
    "reliability_threshold": "per dataset: keep neuroids whose split-half reliability is >= this",
    "batch_size": "stimuli per forward pass during extraction",
    "bootstrap": "bootstrap resamples over stimuli for score CIs (0 disables)",
    "bootstrap_fraction": "fraction of stimuli drawn, without replacement, per resample",
    "ci_level": "confidence level of every interval (bootstrap and family means)",
    "seed": "seed of model initialisation (random weights), of the bootstrap and of the permutations",
    "zero_variance_stimuli": "RSA where stimuli have zero-variance patterns: 'unscored' (NaN, "
                             "listed) or 'exclude' (scored on the others, count recorded)",
    "permutations": "stimulus permutations of the neural side per cell for the chance level "
                    "(null_mean, null_p95, p_value; 0 disables)",
}


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_EXPECTED = {
    "bool": "true or false (also yes/no, on/off, 1/0)",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "set": "a comma-separated list of dataset names",
    "dict": "DATASET:VALUE pairs separated by commas",
}


def _coerce(name: str, kind: str, value):
    """``value`` as the Python type of field ``name`` (``kind``), or a ValidationError."""
    import numbers

    def fail():
        raise ValidationError(f"Protocol.{name} must be {_EXPECTED[kind]}, found {value!r}")

    if kind == "bool":
        if isinstance(value, (bool, numbers.Integral)) and value in (0, 1):
            return bool(value)
        if hasattr(value, "dtype") and getattr(value, "shape", None) == () and value in (0, 1):
            return bool(value)  # numpy bool / integer scalars
        fail()
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != int(value):
            fail()
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            fail()
        return float(value)
    if kind == "str" and not isinstance(value, str):
        fail()
    if kind == "set" and (isinstance(value, str) or not hasattr(value, "__iter__")):
        fail()
    if kind == "dict" and not hasattr(value, "items"):
        fail()
    return value


def _parse_text(name: str, kind: str, text: str, pair: str):
    """A field's value from its command-line text (see :meth:`Protocol.parse_overrides`)."""
    def fail():
        raise ValidationError(f"--protocol {pair!r}: {name} expects {_EXPECTED[kind]}, found {text!r}")

    lowered = text.lower()
    if kind == "bool":
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        fail()
    if kind in ("int", "float"):
        try:
            number = float(text) if kind == "float" else int(text)
        except ValueError:
            fail()
        return number
    if kind == "set":
        if lowered in ("", "none", "[]"):
            return []
        return sorted({part.strip().strip("'\"") for part in text.strip("[]").split(",") if part.strip()})
    if kind == "dict":
        out = {}
        for part in (p for p in text.strip("{}").split(",") if p.strip()):
            dataset, sep, value = part.rpartition(":")
            try:
                out[dataset.strip().strip("'\"")] = float(value)
            except ValueError:
                fail()
            if not sep or not dataset.strip():
                fail()
        return out
    return text


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Analysis choices of a sweep, with the reference study's values as defaults.

    Parameters
    ----------
    zscore : bool, default: True
        Z-score each layer's features with a single global mean and standard deviation.
    time_steps : int, default: 4
        Number of time steps T a spiking network runs for each stimulus.
    time_reduce : {"mean"}, default: "mean"
        Reduction of SNN features over the T time steps (the only one the extractor offers;
        set ``time_resolved`` for per-step scores).
    time_resolved : bool, default: False
        Also score spiking networks at every time step (``score_per_step``).
    svcca_n_components : int, default: 40
        Dimensions SVCCA keeps after SVD.
    reduce_neural_for : frozenset of str, default: {"allen2019_neuropixels_natural_scenes"}
        Datasets whose neural data SVCCA reduces to ``svcca_n_components`` dimensions.
    tsvd_n_components : int, default: 40
        SVD dimensions of the model features used by TSVD regression.
    alpha : float, default: 1.0
        Ridge penalty of TSVD regression.
    reliability_threshold : dict of str to float, default: {}
        Per dataset name, the minimum split-half reliability of a neuroid. A dataset not
        listed uses the threshold its manifest declares.
    batch_size : int, default: 32
        Stimuli per forward pass.
    bootstrap : int, default: 0
        Number of resamples over stimuli for each score's confidence interval; 0 disables.
    bootstrap_fraction : float, default: 0.8
        Fraction of the stimuli each resample draws without replacement (see
        :mod:`workbench.analysis.resampling` for why not with replacement).
    ci_level : float, default: 0.95
        Confidence level of bootstrap intervals and of family-mean t-intervals.
    seed : int, default: 0
        Seed of random model weights and of the bootstrap.
    zero_variance_stimuli : {"unscored", "exclude"}, default: "unscored"
        What a cell does when some stimuli have a response pattern with zero variance in the
        layer (e.g. a spiking layer that emits no spike for them) or in the region, so that
        their correlation with other stimuli, and with it RSA, is undefined. ``"unscored"``:
        the cell is left NaN and listed as unscored (figures mark it, reports list it).
        ``"exclude"``: the cell is scored on the remaining stimuli (at least 3) and the number
        left out is recorded in ``n_zero_variance``. Either way the count of such stimuli is
        recorded per cell; metrics that stay defined (CKA, SVCCA, TSVD regression) are scored
        on all stimuli.
    permutations : int, default: 100
        Number of random permutations of the neural side's stimulus order scored for every
        cell, the chance level of its score (``null_mean``, ``null_p95`` and the permutation
        ``p_value`` in the scores; :mod:`workbench.analysis.nulls`). Seeded by ``seed`` and
        the same for every layer and model of a region; computed from the statistics already
        held (:mod:`workbench.metrics.permutation`). 0 disables.
    """

    zscore: bool = True
    time_steps: int = 4
    time_reduce: str = "mean"
    time_resolved: bool = False
    svcca_n_components: int = 40
    reduce_neural_for: frozenset = frozenset({ALLEN_NATURAL_SCENES})
    tsvd_n_components: int = 40
    alpha: float = 1.0
    reliability_threshold: dict = dataclasses.field(default_factory=dict)
    batch_size: int = 32
    bootstrap: int = 0
    bootstrap_fraction: float = 0.8
    ci_level: float = 0.95
    seed: int = 0
    zero_variance_stimuli: str = "unscored"
    permutations: int = 100

    def __post_init__(self):
        # each field to its declared type, strictly (zscore=0 and zscore=False are one
        # protocol with one fingerprint; zscore="maybe" is rejected)
        for name, kind in _FIELD_TYPES.items():
            object.__setattr__(self, name, _coerce(name, kind, getattr(self, name)))
        # normalise containers so that equal protocols compare (and fingerprint) equal
        object.__setattr__(self, "reduce_neural_for", frozenset(self.reduce_neural_for))
        object.__setattr__(
            self,
            "reliability_threshold",
            {str(k): float(v) for k, v in sorted(dict(self.reliability_threshold).items())},
        )
        for name in ("time_steps", "svcca_n_components", "tsvd_n_components", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValidationError(f"Protocol.{name} must be >= 1, found {getattr(self, name)}")
        if int(self.permutations) < 0:
            raise ValidationError(f"Protocol.permutations must be >= 0 (0 disables), found {self.permutations}")
        if int(self.bootstrap) < 0:
            raise ValidationError(f"Protocol.bootstrap must be >= 0 (0 disables), found {self.bootstrap}")
        check_choice(self.time_reduce, "Protocol.time_reduce", _TIME_REDUCTIONS)
        check_choice(self.zero_variance_stimuli, "Protocol.zero_variance_stimuli", ZERO_VARIANCE_POLICIES)
        if not 0 < self.bootstrap_fraction < 1:
            raise ValidationError(
                f"Protocol.bootstrap_fraction must lie in (0, 1), found {self.bootstrap_fraction}"
            )
        if not 0 < self.ci_level < 1:
            raise ValidationError(f"Protocol.ci_level must lie in (0, 1), found {self.ci_level}")
        if not self.alpha >= 0:
            raise ValidationError(f"Protocol.alpha must be >= 0, found {self.alpha}")
        for dataset, threshold in self.reliability_threshold.items():
            if not -1 <= threshold <= 1:
                raise ValidationError(
                    f"Protocol.reliability_threshold[{dataset!r}]={threshold} is not a "
                    "correlation; expected a value in [-1, 1]"
                )

    @classmethod
    def parse_overrides(cls, pairs) -> dict[str, Any]:
        """Typed field values from ``FIELD=VALUE`` texts (the CLI's ``--protocol``), each parsed strictly.

        Booleans accept ``true/false``, ``yes/no``, ``on/off``, ``1/0``; integers and floats
        their usual spelling; ``reduce_neural_for`` a comma-separated list of dataset names
        (empty or ``none``: no dataset); ``reliability_threshold`` ``DATASET:VALUE`` pairs
        separated by commas.

        Examples
        --------
        >>> Protocol.parse_overrides(["zscore=0", "time_steps=8"])
        {'zscore': False, 'time_steps': 8}

        Raises
        ------
        ValidationError
            A text without ``=``, an unknown field, or a value that is not of the field's type;
            the message names the text, the field and what was expected.
        """
        out: dict[str, Any] = {}
        for pair in pairs:
            key, sep, text = str(pair).partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValidationError(f"--protocol expects FIELD=VALUE, found {pair!r}")
            if key not in _FIELD_TYPES:
                raise ValidationError(
                    f"--protocol {pair!r}: Protocol has no field {key!r}; expected one of {list(_FIELD_TYPES)}"
                )
            out[key] = _parse_text(key, _FIELD_TYPES[key], text.strip(), pair)
        return out

    # -- derived choices ---------------------------------------------------------------
    def reduces_neural(self, dataset: str) -> bool:
        """Whether SVCCA reduces ``dataset``'s neural data to ``svcca_n_components`` dims."""
        return dataset in self.reduce_neural_for

    def replace(self, **changes) -> "Protocol":
        """A copy with some choices changed (unknown names raise)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValidationError(
                f"Protocol has no field(s) {sorted(unknown)}; expected some of "
                f"{[f.name for f in dataclasses.fields(self)]}"
            )
        return dataclasses.replace(self, **changes)

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field (sets become sorted lists)."""
        out = dataclasses.asdict(self)
        out["reduce_neural_for"] = sorted(self.reduce_neural_for)
        return out

    def to_json(self) -> str:
        """Canonical JSON (sorted keys); the input of :attr:`fingerprint`."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Protocol":
        """Rebuild a protocol from :meth:`to_dict` output (e.g. a saved scores file)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValidationError(
                f"protocol fields {sorted(unknown)} are unknown; expected some of {sorted(known)}"
            )
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> "Protocol":
        """Rebuild a protocol from :meth:`to_json` output (the scores' ``protocol`` attr)."""
        return cls.from_dict(json.loads(text))

    @property
    def fingerprint(self) -> str:
        """First 16 hex digits of the sha256 of :meth:`to_json`."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def describe(self) -> str:
        """Human-readable table of every choice, for reports and logs."""
        values = self.to_dict()
        width = max(len(name) for name in values)
        lines = [f"Protocol {self.fingerprint}"]
        for name, value in values.items():
            if isinstance(value, dict):
                shown = ", ".join(f"{k}={v}" for k, v in value.items()) or "manifest defaults"
            elif isinstance(value, list):
                shown = ", ".join(value) or "none"
            else:
                shown = str(value)
            lines.append(f"  {name:<{width}}  {shown:<24} {_DESCRIPTIONS[name]}")
        return "\n".join(lines)



def _field_kinds() -> dict[str, str]:
    """Each field's type (``bool``, ``int``, ``float``, ``str``, ``set``, ``dict``), read from its default."""
    kinds = {}
    for field in dataclasses.fields(Protocol):
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str),
                            ("set", (set, frozenset)), ("dict", dict)):
            if isinstance(default, types):
                kinds[field.name] = kind
                break
    return kinds


#: Each field's type, for strict coercion and command-line parsing.
_FIELD_TYPES = _field_kinds()
