"""The metrics, by name, with the facts a report needs about each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from workbench.errors import ValidationError
from workbench.metrics.cka import cka_from_stats
from workbench.metrics.regression import tsvd_regression_from_stats
from workbench.metrics.rsa import rsa_from_stats
from workbench.metrics.svcca import svcca_from_stats
from workbench.validation import did_you_mean

HIGHER_IS_BETTER = "higher is better"


@dataclass(frozen=True)
class MetricInfo:
    """One metric's record.

    Attributes
    ----------
    name : str
        Registry name, also the key in :func:`workbench.metrics.compare`'s result.
    direction : str
        ``"higher is better"`` for every metric here (similarities, not distances).
    description : str
        One sentence on what is computed.
    citation : str
        Short reference for the definition.
    bibtex : str
        BibTeX entry of that reference.
    works_from_rdms : bool
        True if the metric needs only the RDMs of both sides; False if it needs the
        responses (or their Gram statistics) themselves.
    parameters : tuple of str
        The keyword arguments of :func:`workbench.metrics.compare` this metric reads.
    from_stats : callable
        ``from_stats(x, y, **parameters)`` on :class:`~workbench.metrics.derived.DerivedStats`.
    """

    name: str
    direction: str
    description: str
    citation: str
    bibtex: str
    works_from_rdms: bool
    parameters: tuple[str, ...]
    from_stats: Callable[..., float]


_RAGHU = """@inproceedings{raghu2017svcca,
  title = {{SVCCA}: Singular Vector Canonical Correlation Analysis for Deep Learning Dynamics and Interpretability},
  author = {Raghu, Maithra and Gilmer, Justin and Yosinski, Jason and Sohl-Dickstein, Jascha},
  booktitle = {Advances in Neural Information Processing Systems},
  year = {2017}
}"""
_HUANG = """@article{huang2023deep,
  title = {Deep Spiking Neural Networks Achieve Representational Similarity to the Visual Cortex},
  author = {Huang, Liwei and Ma, Zhengyu and Yu, Liutao and Zhou, Huihui and Tian, Yonghong},
  journal = {arXiv preprint arXiv:2303.06060},
  year = {2023}
}"""
_KRIEGESKORTE = """@article{kriegeskorte2008rsa,
  title = {Representational similarity analysis - connecting the branches of systems neuroscience},
  author = {Kriegeskorte, Nikolaus and Mur, Marieke and Bandettini, Peter},
  journal = {Frontiers in Systems Neuroscience},
  volume = {2},
  pages = {4},
  year = {2008}
}"""
_KORNBLITH = """@inproceedings{kornblith2019similarity,
  title = {Similarity of Neural Network Representations Revisited},
  author = {Kornblith, Simon and Norouzi, Mohammad and Lee, Honglak and Hinton, Geoffrey},
  booktitle = {International Conference on Machine Learning},
  pages = {3519--3529},
  year = {2019}
}"""

_METRICS = {
    info.name: info
    for info in (
        MetricInfo(
            name="svcca",
            direction=HIGHER_IS_BETTER,
            description="Mean canonical correlation between the truncated SVDs of features and responses.",
            citation="Raghu et al. 2017 (NeurIPS); protocol of Huang et al. 2023 (arXiv 2303.06060)",
            bibtex=_RAGHU,
            works_from_rdms=False,
            parameters=("n_components", "reduce_y"),
            from_stats=svcca_from_stats,
        ),
        MetricInfo(
            name="tsvd_regression",
            direction=HIGHER_IS_BETTER,
            description=(
                "Mean Pearson r of leave-one-stimulus-out ridge predictions of each neuroid from "
                "the truncated SVD of the features."
            ),
            citation="Huang et al. 2023 (arXiv 2303.06060)",
            bibtex=_HUANG,
            works_from_rdms=False,
            parameters=("n_components", "alpha"),
            from_stats=tsvd_regression_from_stats,
        ),
        MetricInfo(
            name="rsa",
            direction=HIGHER_IS_BETTER,
            description="Spearman correlation of the correlation-distance RDMs' upper triangles.",
            citation="Kriegeskorte et al. 2008 (Front. Syst. Neurosci.)",
            bibtex=_KRIEGESKORTE,
            works_from_rdms=True,
            parameters=(),
            from_stats=rsa_from_stats,
        ),
        MetricInfo(
            name="cka",
            direction=HIGHER_IS_BETTER,
            description="Centred kernel alignment (linear or RBF kernel, optionally debiased HSIC).",
            citation="Kornblith et al. 2019 (ICML)",
            bibtex=_KORNBLITH,
            works_from_rdms=False,
            parameters=("kernel", "debiased"),
            from_stats=cka_from_stats,
        ),
    )
}


def list_metrics() -> list[str]:
    """Names of the registered metrics, in their canonical order."""
    return list(_METRICS)


def get_metric(name: str) -> MetricInfo:
    """The record of metric ``name``; an unknown name raises, suggesting close matches."""
    try:
        return _METRICS[name]
    except (KeyError, TypeError):
        raise ValidationError(
            f"unknown metric {name!r}; expected one of {list(_METRICS)}{did_you_mean(name, _METRICS)}"
        ) from None
