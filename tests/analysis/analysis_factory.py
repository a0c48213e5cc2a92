"""Hand-built scores Datasets for the analysis tests (imported by the test modules)."""

import numpy as np

from workbench.analysis.scores import merge_scores, new_scores, region_label

METRICS = ["svcca", "tsvd_regression", "rsa", "cka"]
# dataset -> (species, kind, region names)
DATASETS = {
    "cowley2023_v4": ("macaque", "responses", ["V4"]),
    "kriegeskorte2008_92": ("macaque", "rdm", ["IT (monkey)", "IT (human)"]),
    "toy_mouse": ("mouse", "responses", ["VISp", "VISl"]),
}
MODELS = {
    "sew_resnet18": ("snn", 5),
    "sew_resnet34": ("snn", 7),
    "resnet18": ("cnn", 5),
    "resnet34": ("cnn", 6),
    "vit_tiny": ("vit", 4),
    "alexnet": ("cnn", 3),
}


def make_scores(seed=0, models=MODELS, datasets=DATASETS, metrics=METRICS, with_ci=False):
    """Random scores in [0.05, 0.95] for every applicable cell; ceilings on responses regions."""
    rng = np.random.default_rng(seed)
    ceilings = {d: rng.uniform(0.5, 1.0, size=(len(names), len(metrics))) for d, (_, _, names) in datasets.items()}
    parts = []
    for model, (family, n_layers) in models.items():
        for dataset, (species, kind, names) in datasets.items():
            part = new_scores(
                model=model,
                family=family,
                weights="random(seed=0)",
                layer_names=[f"layer{i}" for i in range(n_layers)],
                regions=[region_label(dataset, r) for r in names],
                datasets=[dataset] * len(names),
                species=[species] * len(names),
                metrics=metrics,
                with_ci=with_ci,
            )
            applicable = np.array([[kind == "responses" or m == "rsa" for m in metrics]] * len(names))
            part["applicable"].values[:] = applicable
            if kind == "responses":
                part["ceiling"].values[:] = ceilings[dataset]
            values = rng.uniform(0.05, 0.95, size=part["score"].shape)
            part["score"].values[:] = np.where(applicable[None, None], values, np.nan)
            if with_ci:
                part["ci_low"].values[:] = part["score"].values - 0.01
                part["ci_high"].values[:] = part["score"].values + 0.01
            parts.append(part)
    return merge_scores(parts, attrs={"seed": seed})
