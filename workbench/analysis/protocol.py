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
import json
from typing import ClassVar

from workbench.config import Config
from workbench.errors import ValidationError

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


@dataclasses.dataclass(frozen=True)
class Protocol(Config):
    """Analysis choices of a sweep, with the reference study's values as defaults.

    ``--protocol FIELD=VALUE`` texts become typed values with :meth:`Protocol.parse_overrides`
    (:class:`workbench.config.Config`: the spellings of each type), e.g.
    ``Protocol.parse_overrides(["zscore=0", "time_steps=8"])`` gives
    ``{'zscore': False, 'time_steps': 8}``.

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
    reduce_neural_for: frozenset[str] = frozenset({ALLEN_NATURAL_SCENES})
    tsvd_n_components: int = 40
    alpha: float = 1.0
    reliability_threshold: dict[str, float] = dataclasses.field(default_factory=dict)
    batch_size: int = 32
    bootstrap: int = 0
    bootstrap_fraction: float = 0.8
    ci_level: float = 0.95
    seed: int = 0
    zero_variance_stimuli: str = "unscored"
    permutations: int = 100

    OPTION: ClassVar[str] = "--protocol"
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "time_reduce": _TIME_REDUCTIONS, "zero_variance_stimuli": ZERO_VARIANCE_POLICIES}

    def __post_init__(self):
        # each field to its declared type, strictly (zscore=0 and zscore=False are one
        # protocol with one fingerprint; zscore="maybe" is rejected), and the choices checked
        super().__post_init__()
        self.check_minimum(1, "time_steps", "svcca_n_components", "tsvd_n_components", "batch_size")
        self.check_minimum(0, "permutations", "bootstrap", note="0 disables")
        self.check_minimum(0, "alpha")
        if not 0 < self.bootstrap_fraction < 1:
            raise ValidationError(
                f"Protocol.bootstrap_fraction must lie in (0, 1), found {self.bootstrap_fraction}"
            )
        if not 0 < self.ci_level < 1:
            raise ValidationError(f"Protocol.ci_level must lie in (0, 1), found {self.ci_level}")
        for dataset, threshold in self.reliability_threshold.items():
            if not -1 <= threshold <= 1:
                raise ValidationError(
                    f"Protocol.reliability_threshold[{dataset!r}]={threshold} is not a "
                    "correlation; expected a value in [-1, 1]"
                )

    # -- derived choices ---------------------------------------------------------------
    def reduces_neural(self, dataset: str) -> bool:
        """Whether SVCCA reduces ``dataset``'s neural data to ``svcca_n_components`` dims."""
        return dataset in self.reduce_neural_for

    # -- serialisation -----------------------------------------------------------------
    def to_json(self) -> str:
        """Canonical JSON (sorted keys); the input of :attr:`fingerprint`."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Protocol":
        """Rebuild a protocol from :meth:`to_json` output (the scores' ``protocol`` attr)."""
        return cls.from_dict(json.loads(text))

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
