"""Hand-built scores Datasets and test networks for the analysis tests (imported by the test modules)."""

import contextlib

import numpy as np

from workbench.analysis.scores import merge_scores, new_scores, region_label
from workbench.data.assemblies import make_assembly, make_rdm
from workbench.data.dataset import NeuralDataset, RegionData, build_region
from workbench.data.manifest import Manifest
from workbench.data.stimuli import StimulusSet
from workbench.metrics import rdm
from workbench.models import list_models, register_model
from workbench.models import registry as model_registry

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


@contextlib.contextmanager
def registered_models(factories: dict):
    """Register ``{name: (family, factory)}`` for the block (after the zoo, so that the registry
    is complete) and remove them after; yields the names."""
    list_models()
    for name, (family, factory) in factories.items():
        register_model(name, family=family)(factory)
    try:
        yield list(factories)
    finally:
        for name in factories:
            model_registry._REGISTRY.pop(name)


def toy_dataset(name: str, *, region: str, species: str, n_stimuli: int, n_neuroids: int, n_repeats: int,
                noise: float, rdm_features: int, seed: int) -> NeuralDataset:
    """Random 16 px images; ``region``'s responses follow their pixels (a random linear map to
    ``n_neuroids``, ``n_repeats`` repeats with Gaussian ``noise``), and an RDM-only region IT
    (human) is the RDM of another random map of the pixels to ``rdm_features``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_stimuli, 16, 16, 3), dtype=np.uint8)
    ids = [f"img{i:02d}" for i in range(n_stimuli)]
    pixels = images.reshape(n_stimuli, -1).astype(float) / 255
    signal = pixels @ rng.normal(size=(pixels.shape[1], n_neuroids))
    repeats = signal[:, :, None] + rng.normal(scale=noise, size=(n_stimuli, n_neuroids, n_repeats))
    assembly = make_assembly(repeats, stimulus_ids=ids, neuroid_ids=[f"n{i}" for i in range(n_neuroids)],
                             region=region, species=species, dataset=name, where=name)
    it_rdm = make_rdm(rdm(pixels @ rng.normal(size=(pixels.shape[1], rdm_features))), stimulus_ids=ids,
                      region="IT", species="human", dataset=name, where=name)
    manifest = Manifest(name=name, description=name, species=f"{species}, human", regions=(region, "IT"),
                        stimuli={"count": n_stimuli}, files=(), license="-", citation="-", loader="none")
    return NeuralDataset(manifest, StimulusSet.from_arrays(list(images), ids),
                         [build_region(assembly, species=species, threshold=None),
                          RegionData(name="IT", species="human", rdm=it_rdm)])
