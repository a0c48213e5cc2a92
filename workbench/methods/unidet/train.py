"""Train Large-UniDet (hierarchy-aware RetinaNet over a unified label space) and its baselines.

A run (``workbench train unidet``):

1. builds the sources (:mod:`.data`): the synthetic datasets A, B, C (``sources: {}``, the tiny
   preset) or the official-format datasets named in ``sources``; each is split into train and
   test (synthetic: separately drawn test images; official: the last ``test_fraction``);
2. builds the unified label space (:mod:`.labels`) from ``label_map`` (the synthetic mapping when
   unset) and writes it to ``RUN/label_space.yaml``;
3. when ``baselines``: trains the **flat** detector (the same detector, loss, data, sampler and
   seed over the same unified labels, but every label its own root: plain sigmoid BCE over the
   union of the datasets' labels) into ``RUN/snapshots/flat/``, and, with
   ``per_dataset_baselines``, one detector per dataset over its own labels into
   ``RUN/snapshots/only_<dataset>/``;
4. trains the main ``variant`` (``hierarchy``: the hierarchy-aware loss) into ``RUN``;
5. fine-tunes it once per dataset named in ``finetune`` (:mod:`.finetune`, the reference's
   ``configs/rvc/finetune``): the joint detector's weights, that dataset's images, the entry's
   schedule, into ``RUN/snapshots/finetune_<dataset>/`` (evaluated on that dataset's test images).

Every detector: the zoo backbone ``unidet_backbone`` (``arch_kwargs``), torchvision's FPN and
RetinaNet (:mod:`.detector`), trained by the shared loop :func:`workbench.training.fit` (the
detector is the trained module; its optimiser, schedule and ``grad_clip``) for ``epochs``
passes of the multi-dataset sampler (``sampler``: ``repeat`` with ``dataset_factors``,
``weighted``, ``class_aware`` or the reference's ``class_aware_concat``; ``fit``'s ``sampler_fn``), batches of images and target dicts
(``DetectionData.collate_fn``). After every epoch, COCO mAP per dataset and leaf mAP on the test
split (:mod:`.evaluation`). Each run directory saves the backbone (``model.pt``, a
classifier-free feature extractor the study layer scores) and the whole detector
(``detector.pt``).

Each detector has its own run directory (``RUN`` or ``RUN/snapshots/<name>/``) with its
``metrics.csv`` and checkpoint: ``--resume`` skips the finished baselines and continues the
unfinished detector from its last checkpoint (mid-epoch with ``checkpoint_every``).
Under torchrun every process draws the same multi-dataset order and takes its slice of each
global batch (``training.loop.EpochBatches``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from workbench.errors import DataError, ValidationError
from workbench.methods.unidet import data as unidet_data
from workbench.methods.unidet.detector import build_detector
from workbench.methods.unidet.evaluation import evaluate_detections, predict
from workbench.methods.unidet.finetune import (
    PREFIX,
    check_finetune,
    finetune_config,
    finetune_datasets,
)
from workbench.methods.unidet.labels import (
    LabelSpace,
    build_label_space,
    read_label_space,
    with_dataset_hierarchy,
    write_label_space,
)
from workbench.methods.unidet.loss import HIERARCHY_RULES
from workbench.methods.unidet.sampling import RepeatFactorSampler, WeightedDatasetSampler
from workbench.models.preprocessing import Preprocessing
from workbench.training import TrainConfig, TrainOutcome, build_network, fit, read_card
from workbench.training.rundir import RunDir

logger = logging.getLogger(__name__)

VARIANTS = ("hierarchy", "flat")
DETECTOR_FILE = "detector.pt"
LABEL_SPACE_FILE = "label_space.yaml"


@dataclasses.dataclass(frozen=True)
class UniDetConfig(TrainConfig):
    """Shared training fields plus the detector's, the data's and the loss's.

    Parameters
    ----------
    variant : {"hierarchy", "flat"}
        The main run: the hierarchy-aware loss, or plain sigmoid BCE over the flattened labels.
    baselines : bool
        Also train the flat detector (``snapshots/flat``) when the variant is ``hierarchy``.
    per_dataset_baselines : bool
        Also train one detector per dataset on its own labels (``snapshots/only_<d>``).
    sources : dict
        Official-format datasets ``{name: {format: coco|openimages|vistas, ...paths}}``
        (:func:`build_sources`); empty: the synthetic datasets A, B, C.
    label_map : str or None
        Mapping file (YAML or CSV, :mod:`.labels`); ``None``: the synthetic datasets' mapping.
    synthetic_train, synthetic_test : int
        Images per synthetic dataset in each split.
    test_fraction : float
        Share of each official-format source held out for testing (its last images).
    image_size : int
        Side of the (square) detector input, in pixels.
    fpn_channels : int
        Channels of the FPN and of RetinaNet's heads.
    anchor_sizes : tuple of int
        Anchor side per pyramid level (strides 8, 16, 32), pixels.
    dataset_factors : dict
        Re-sampling factor per dataset name (missing: 1).
    sampler : {"repeat", "weighted", "class_aware", "class_aware_concat"}
        :mod:`.sampling`: deterministic repeats, weighted draws, class-aware draws within each
        dataset (dataset shares ``f_d n_d``), or the reference's class-aware draws over the
        concatenation of the repeated datasets, on unified classes (``across_datasets``).
    ignore_descendants : bool
        Descendants of a label get zero weight (False: negatives; the reference's "child" case);
        the ``rvc_child`` rule only.
    hierarchy_rule : {"rvc_child", "oid_child_plus"}
        :mod:`.loss`: positives and ignored classes from the unified tree (``rvc_child``), or the
        reference's configured rule (``oid_child_plus``: OpenImages' own hierarchy positive, the
        tree's other ancestors and descendants ignored), which needs an ``openimages`` source
        with its ``hierarchy`` file (``bbox_labels_600_hierarchy.json``).
    cls_loss_weight : float
        Factor on the classification loss (the reference's ``loss_weight=1.5``).
    ignore_unassignable : bool
        Zero weight on the classes a sample's dataset can never assign.
    focal_gamma, focal_alpha : float
        Focal modulation of the BCE (0 and -1: plain BCE, the paper's loss).
    score_thresh : float
        Minimum score of a kept detection (torchvision post-processing, for mAP).
    grad_clip : float
        As :class:`TrainConfig`; 10 here (the gradient norm is clipped at 10 unless set).
    finetune : dict
        ``{dataset: {field: value}}``: after the joint run, fine-tune its detector on each named
        dataset alone, with these training fields changed (:mod:`.finetune`); empty: none.
    finetune_only : tuple of str
        Run only these entries of ``finetune`` (empty: every entry), e.g. one dataset per job.
    """

    arch: str = "unidet_backbone"
    dataset: str = "synthetic"
    variant: str = "hierarchy"
    baselines: bool = True
    per_dataset_baselines: bool = True
    sources: dict = dataclasses.field(default_factory=dict)
    label_map: str | None = None
    synthetic_train: int = 300
    synthetic_test: int = 80
    test_fraction: float = 0.1
    image_size: int = 64
    fpn_channels: int = 32
    anchor_sizes: tuple[int, ...] = (16, 32, 64)
    dataset_factors: dict = dataclasses.field(default_factory=dict)
    sampler: str = "repeat"
    ignore_descendants: bool = True
    hierarchy_rule: str = "rvc_child"
    cls_loss_weight: float = 1.0
    ignore_unassignable: bool = False
    focal_gamma: float = 0.0
    focal_alpha: float = -1.0
    score_thresh: float = 0.05
    grad_clip: float = 10.0
    finetune: dict = dataclasses.field(default_factory=dict)
    finetune_only: tuple[str, ...] = ()

    CHOICES = {**TrainConfig.CHOICES, "variant": VARIANTS, "hierarchy_rule": HIERARCHY_RULES,
               "sampler": ("repeat", "weighted", "class_aware", "class_aware_concat")}

    def __post_init__(self):
        super().__post_init__()
        self.check_minimum(1, "synthetic_train", "synthetic_test", "image_size", "fpn_channels")
        if len(self.anchor_sizes) != 3:
            raise ValidationError(f"config field 'anchor_sizes' needs 3 sizes (strides 8, 16, 32), found {self.anchor_sizes}")
        if not self.cls_loss_weight > 0:
            raise ValidationError(f"config field 'cls_loss_weight' must be > 0, found {self.cls_loss_weight}")
        if not 0 < self.test_fraction < 1:
            raise ValidationError(f"config field 'test_fraction' must be in (0, 1), found {self.test_fraction}")
        for name, instead in (("limit_train", "synthetic_train"), ("limit_test", "synthetic_test")):
            if getattr(self, name):
                raise ValidationError(f"config field {name!r} is {getattr(self, name)}; unidet needs 0 (whole "
                                      f"detection sets; choose the size with {instead!r} or test_fraction)")
        check_finetune(self)


@dataclass
class DetectionData:
    """What a run trains on: train/test :class:`~.data.DetectionSet`, the label space, and the card's description."""

    name: str
    train: object
    test: object
    space: LabelSpace
    fingerprint: str
    description: str
    preprocessing: Preprocessing

    @staticmethod
    def collate_fn(batch):
        """The shared loop's batching: (list of images, list of target dicts), :func:`.data.collate`."""
        return unidet_data.collate(batch)


# --- data ---------------------------------------------------------------------------------
def build_sources(config: UniDetConfig) -> tuple[list, list]:
    """``(train sources, test sources)`` of the config (see :class:`UniDetConfig`)."""
    if not config.sources:
        train = unidet_data.synthetic_sources(config.seed, config.synthetic_train, size=config.image_size)
        test = unidet_data.synthetic_sources(config.seed + 10_000, config.synthetic_test, size=config.image_size)
        return train, test
    train, test = [], []
    for name, spec in config.sources.items():
        if not isinstance(spec, dict) or "format" not in spec:
            raise ValidationError(f"config field 'sources': {name!r} needs a mapping with 'format' "
                                  "(coco, openimages or vistas) and its paths")
        fmt = spec["format"]
        try:
            if fmt == "coco":
                source = unidet_data.load_coco(spec["annotations"], spec["images"], name)
            elif fmt == "openimages":
                source = unidet_data.load_openimages(spec["boxes"], spec["classes"], spec["images"], name,
                                                     image_labels=spec.get("image_labels"),
                                                     hierarchy=spec.get("hierarchy"))
            elif fmt == "vistas":
                source = unidet_data.load_vistas(spec["config"], spec["panoptic"], spec["images"], name)
            else:
                raise ValidationError(f"config field 'sources': {name!r} has format {fmt!r}; "
                                      "expected coco, openimages or vistas")
        except KeyError as exc:
            raise ValidationError(f"config field 'sources': {name!r} ({fmt}) lacks the path {exc}") from None
        cut = len(source) - max(1, int(round(len(source) * config.test_fraction)))
        train.append(source.subset(range(cut)))
        test.append(source.subset(range(cut, len(source))))
    return train, test


def build_space(config: UniDetConfig, sources) -> LabelSpace:
    labels = {s.name: list(s.labels) for s in sources}
    if config.label_map:
        return read_label_space(config.label_map, labels)
    if config.sources:
        raise ValidationError("config field 'label_map' must name a mapping file when 'sources' are given")
    m = unidet_data.synthetic_mapping()
    maps = [(d, lab, u) for d, pairs in m["datasets"].items() if d in labels for lab, u in pairs.items()]
    return build_label_space(maps, m["nodes"], list(m["parents"].items()), labels, source="(synthetic mapping)")


def _with_openimages_hierarchy(space: LabelSpace, sources) -> LabelSpace:
    """``space`` with the OpenImages source's own hierarchy as its ``own_ancestors`` (``oid_child_plus``)."""
    with_hierarchy = [s for s in sources if s.hierarchy]
    if len(with_hierarchy) != 1:
        raise ValidationError("config field 'hierarchy_rule' is 'oid_child_plus', which needs exactly one source "
                              "with its own hierarchy (an openimages source with 'hierarchy': "
                              f"bbox_labels_600_hierarchy.json); found {[s.name for s in with_hierarchy]}")
    return with_dataset_hierarchy(space, with_hierarchy[0].name, with_hierarchy[0].hierarchy)


def load_data(config: UniDetConfig) -> DetectionData:
    """The run's data and unified label space."""
    train_sources, test_sources = build_sources(config)
    space = build_space(config, train_sources)
    if config.hierarchy_rule == "oid_child_plus":
        space = _with_openimages_hierarchy(space, train_sources)
    for field in ("dataset_factors", "finetune"):
        unknown = sorted(set(getattr(config, field)) - set(space.datasets))
        if unknown:
            raise ValidationError(f"{config.label(field)} names {unknown}, which are not datasets of the run "
                                  f"({list(space.datasets)})")
    to_u = space.to_unified
    train = unidet_data.DetectionSet(train_sources, to_u, config.image_size, hflip=config.augment)
    test = unidet_data.DetectionSet(test_sources, to_u, config.image_size)
    sizes = ", ".join(f"{s.name} {len(s)}/{len(t)}" for s, t in zip(train_sources, test_sources))
    name = "unidet_synthetic" if not config.sources else "unidet_" + "+".join(config.sources)
    return DetectionData(name=name, train=train, test=test, space=space,
                         fingerprint=unidet_data.fingerprint(train_sources + test_sources),
                         description=f"detection datasets (train/test images): {sizes}; "
                                     f"{space.num_classes} unified labels",
                         preprocessing=Preprocessing(input_size=config.image_size, mean=(0.5, 0.5, 0.5),
                                                     std=(0.25, 0.25, 0.25)))


def make_sampler(config: UniDetConfig, dataset) -> torch.utils.data.Sampler:
    names = [s.name for s in dataset.sources]
    factors = [float(config.dataset_factors.get(n, 1.0)) for n in names]
    ids = dataset.dataset_ids
    if config.sampler == "repeat":
        return RepeatFactorSampler(ids, factors, seed=config.seed)
    num = int(sum(f * (ids == d).sum() for d, f in enumerate(factors)))
    across = config.sampler == "class_aware_concat"
    classes = [dataset.unified_classes(i) if across else dataset.local_classes(i) for i in range(len(dataset))]
    return WeightedDatasetSampler(ids, factors, classes, class_aware=config.sampler.startswith("class_aware"),
                                  across_datasets=across, num_samples=num, seed=config.seed)


# --- one detector -------------------------------------------------------------------------
def make_detector(config: UniDetConfig, space: LabelSpace, *, seed: int):
    """``(network, detector)``: the zoo backbone (a :class:`Network`) inside a hierarchy-aware RetinaNet."""
    kwargs = {**config.arch_kwargs, "input_size": config.image_size}
    network = build_network(config.arch, seed=seed, **kwargs)
    masks = np.stack([space.assignable(d) for d in space.datasets])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        detector = build_detector(network.module, space.num_classes, space.ancestors(), masks,
                                  image_size=config.image_size, fpn_channels=config.fpn_channels,
                                  anchor_sizes=tuple(config.anchor_sizes),
                                  ignore_descendants=config.ignore_descendants,
                                  ignore_unassignable=config.ignore_unassignable, gamma=config.focal_gamma,
                                  alpha=config.focal_alpha, score_thresh=config.score_thresh,
                                  oid_ancestors=space.own_ancestor_matrix()
                                  if config.hierarchy_rule == "oid_child_plus" else None,
                                  loss_weight=config.cls_loss_weight)
    return network, detector


def detection_step(network, module, images, targets, config) -> tuple[torch.Tensor, dict]:
    """The shared loop's ``step_fn``: RetinaNet's classification (hierarchy-aware) + box-regression loss."""
    losses = module(images, targets)
    loss = losses["classification"] + losses["bbox_regression"]
    return loss, {"loss": loss.detach(), "cls": losses["classification"].detach(),
                  "box": losses["bbox_regression"].detach()}


def make_eval_fn(space: LabelSpace, *, unified: bool):
    """The shared loop's ``eval_fn``: :func:`.evaluation.evaluate_detections` of the trained detector on the test set."""

    def eval_fn(network, loader, device) -> dict[str, float]:
        detector = network.module
        was_training = detector.training
        try:
            return evaluate_detections(space, loader.dataset, predict(detector, loader.dataset), unified=unified)
        finally:
            detector.train(was_training)

    return eval_fn


def _save_detector(detector, folder: Path, meta: dict) -> None:
    from workbench.storage import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / DETECTOR_FILE) as tmp:
        torch.save({"state_dict": detector.state_dict(), **meta}, tmp)


def _single_dataset(config: UniDetConfig, data: DetectionData, single: str) -> tuple[DetectionData, LabelSpace]:
    """The data of one dataset over its own labels (a per-dataset baseline) and that label space."""
    labels = data.space.dataset_labels[single]
    own = LabelSpace(tuple(labels), (-1,) * len(labels), (single,), {single: labels},
                     {single: tuple(range(len(labels)))})
    keep = [i for i, s in enumerate(data.train.sources) if s.name == single]
    train = unidet_data.DetectionSet([data.train.sources[i] for i in keep], own.to_unified, config.image_size,
                                     hflip=config.augment)
    test = unidet_data.DetectionSet([data.test.sources[i] for i in keep], own.to_unified, config.image_size)
    return dataclasses.replace(data, train=train, test=test), own


def _test_set_of(data: DetectionData, name: str) -> unidet_data.DetectionSet:
    """The test images of dataset ``name`` alone, labelled in the unified space (a fine-tuned detector's test)."""
    keep = [s for s in data.test.sources if s.name == name]
    return unidet_data.DetectionSet(keep, data.space.to_unified, data.test.size)


def _train_variant(config: UniDetConfig, run: RunDir, data: DetectionData, space: LabelSpace, *,
                   single: str | None = None, finetune_on: str | None = None, init: dict | None = None):
    """Train one detector into ``run`` through :func:`fit`: ``(network, detector, evaluation, wall time s)``.

    ``single``: a dataset name for a per-dataset baseline (its own labels, its data only).
    ``finetune_on``: a dataset name for a fine-tuning: the detector starts from ``init`` (the
    joint detector's state dict), samples that dataset's images (``config.dataset_factors``)
    and is evaluated on its test images, in the unified space.
    """
    trained_data = data
    if single is not None:
        trained_data, space = _single_dataset(config, data, single)
    if finetune_on is not None:
        trained_data = dataclasses.replace(data, test=_test_set_of(data, finetune_on))
    network, detector = make_detector(config, space, seed=config.seed)
    if init is not None:
        detector.load_state_dict(init)
    # the detector is the trained module; network.module (the zoo backbone) is trained inside it
    result = fit(config, run, dataclasses.replace(network, module=detector), trained_data,
                 step_fn=detection_step, sampler_fn=lambda train_set: make_sampler(config, train_set),
                 # always the real tree: leaf-level mAP is over its leaves, whatever the detector was trained with
                 eval_fn=make_eval_fn(data.space, unified=single is None))
    detector.cpu().eval()
    evaluation = {k.removeprefix("test_"): v for k, v in result.evaluation.items()}
    run.flush_metrics()
    return network, detector, evaluation, result.wall_time_s


def _train_snapshot(config: UniDetConfig, run, data: DetectionData, name: str, space: LabelSpace,
                    single: str | None, *, finetune_on: str | None = None, init: dict | None = None) -> dict:
    """A baseline or a fine-tuning in ``RUN/snapshots/<name>/`` (its own config, metrics and checkpoint),
    or its card's results when finished."""
    card = run.finished_child(name)
    if card is not None:
        logger.info("%s was finished before; kept", name)
        return {"evaluation": card["evaluation"], "wall_time_s": card.get("wall_time_s", 0.0)}
    sub = run.child(name, config, role="baseline" if finetune_on is None else "snapshot")
    network, detector, evaluation, wall = _train_variant(config, sub, data, space, single=single,
                                                         finetune_on=finetune_on, init=init)
    variant = name if finetune_on is None else config.variant
    if sub.is_main:
        _save_detector(detector, sub.path, {"variant": variant, "dataset": single, "finetuned_on": finetune_on})
    sub.finish(network, network.module.state_dict(), data,
               {"variant": variant, "evaluation": evaluation, "wall_time_s": round(wall, 3), "only_dataset": single,
                "finetuned_on": finetune_on})
    logger.info("%s: %s", name, evaluation)
    return {"evaluation": evaluation, "wall_time_s": round(wall, 3)}


def train(config: UniDetConfig, run) -> TrainOutcome:
    data = load_data(config)
    space = data.space if config.variant == "hierarchy" else data.space.flat()
    if run.is_main:
        run.path.mkdir(parents=True, exist_ok=True)
        write_label_space(data.space, run.path / LABEL_SPACE_FILE)
    variants: dict[str, dict] = {}
    jobs = []
    if config.baselines and config.variant == "hierarchy":
        jobs.append(("flat", data.space.flat(), None))
    if config.per_dataset_baselines:
        jobs += [(f"only_{d}", data.space, d) for d in data.space.datasets]
    for name, job_space, single in jobs:
        variants[name] = _train_snapshot(config, run, data, name, job_space, single)
    run.resume = bool(run.resume and run.checkpoint_file.is_file())  # stopped during a baseline: main not started
    network, detector, evaluation, wall = _train_variant(config, run, data, space)
    if run.is_main:
        _save_detector(detector, run.path, {"variant": config.variant, "dataset": None})
    variants[config.variant] = {"evaluation": evaluation, "wall_time_s": round(wall, 3)}
    joint = detector.state_dict()
    for dataset in finetune_datasets(config):  # the reference's configs/rvc/finetune, from the joint detector
        tuned = finetune_config(config, dataset, data.space.datasets)
        variants[PREFIX + dataset] = _train_snapshot(tuned, run, data, PREFIX + dataset, space, None,
                                                     finetune_on=dataset, init=joint)
    extra = {"unidet": {"variant": config.variant, "label_space": LABEL_SPACE_FILE, "detector_file": DETECTOR_FILE,
                        "unified_labels": list(data.space.names), "variants": variants}}
    # training time of every detector, each summed over the parts of a resumed run
    return TrainOutcome(network, network.module.state_dict(), data, evaluation, extra=extra,
                        wall_time_s=sum(v["wall_time_s"] for v in variants.values()))


# --- reloading ----------------------------------------------------------------------------
def load_run(run_dir: str | os.PathLike):
    """``(config, data, detector, variant, dataset)`` of a finished run or snapshot; detector in eval mode."""
    from workbench.training.evaluation import load_run_config

    run_dir = Path(run_dir)
    path = run_dir / DETECTOR_FILE
    if not path.is_file():
        raise DataError(f"{path} does not exist: {run_dir} is not a finished unidet run or snapshot")
    config = load_run_config(run_dir)
    data = load_data(config)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    single = saved.get("dataset")
    space = data.space
    if saved["variant"] == "flat":
        space = space.flat()
    if single:
        labels = space.dataset_labels[single]
        space = LabelSpace(tuple(labels), (-1,) * len(labels), (single,), {single: labels},
                           {single: tuple(range(len(labels)))})
    _, detector = make_detector(config, space, seed=config.seed)
    detector.load_state_dict(saved["state_dict"])
    detector.eval()
    return config, data, detector, saved["variant"], single


def evaluate(run_dir: str | os.PathLike) -> dict[str, float]:
    """Per-dataset mAP and leaf mAP of a finished run (or snapshot), recomputed from its detector.

    A fine-tuned detector (``snapshots/finetune_<d>``) is evaluated on the test images of ``d`` alone.
    """
    config, data, detector, variant, single = load_run(run_dir)
    tuned_on = read_card(run_dir, verify_weights=False).get("finetuned_on")
    if tuned_on:
        test = _test_set_of(data, tuned_on)
        return evaluate_detections(data.space, test, predict(detector, test))
    test = data.test
    if single:
        keep = [s for s in data.test.sources if s.name == single]
        labels = data.space.dataset_labels[single]
        test = unidet_data.DetectionSet(keep, {single: tuple(range(len(labels)))}, config.image_size)
        return evaluate_detections(data.space, test, predict(detector, test), unified=False)
    return evaluate_detections(data.space, test, predict(detector, test))


def read_label_space_of(run_dir: str | os.PathLike) -> dict:
    """The mapping payload written to ``RUN/label_space.yaml``."""
    return yaml.safe_load((Path(run_dir) / LABEL_SPACE_FILE).read_text())
