"""Per-dataset fine-tuning after the joint run, as the reference's ``configs/rvc/finetune/``.

The reference fine-tunes its joint detector (``load_from`` the joint run's ``epoch_8.pth``: the
weights, a new optimiser) once per dataset: the same detector and unified head (540 classes, the
hierarchy-aware loss), trained on that dataset's images alone (``RepeatDataset`` x1, no
class-aware sampler) and evaluated on its validation set. COCO and Mapillary Vistas get "2x" (24
epochs, mmcv's cyclic lr and momentum over 6 cycles), OpenImages "0.5x" (6 epochs, 2 cycles); SGD
lr 0.01, gradient clip 35, no warm-up.

Here ``UniDetConfig.finetune`` maps a dataset of the run to the training fields its fine-tuning
changes (:data:`FINETUNE_FIELDS`; the others, and everything that defines the detector and the
data, are the joint run's); ``finetune_only`` runs some of the entries. :func:`finetune_config`
is the config one fine-tuning trains with: the joint data, sampled from that dataset only
(``dataset_factors`` 1 for it, 0 for the others, so targets keep their dataset index), through
the shared loop.
"""

from __future__ import annotations

from collections.abc import Sequence

from workbench.errors import ValidationError

#: The fields a fine-tuning entry may set: the schedule and the sampling, nothing that changes the
#: detector, the data, or how and where the run executes (``--smoke`` keeps its settings).
FINETUNE_FIELDS = ("epochs", "optimizer", "lr", "momentum", "nesterov", "weight_decay", "scheduler", "milestones",
                   "gamma", "cycles", "cyclic_momentum", "warmup_epochs", "warmup_steps", "warmup_start_factor",
                   "grad_clip", "augment", "sampler", "seed")

#: Name of the fine-tuned detector of dataset ``d``: ``RUN/snapshots/finetune_<d>/``.
PREFIX = "finetune_"


def check_finetune(config) -> None:
    """Raise a ValidationError naming the entry and the field unless ``config.finetune`` is
    ``{dataset: {field: value}}`` with fields of :data:`FINETUNE_FIELDS` and valid values."""
    label = config.label("finetune")
    for dataset, entry in config.finetune.items():
        if not isinstance(entry, dict):
            raise ValidationError(f"{label}[{dataset!r}] must be a mapping of training fields, found {entry!r}")
        fixed = sorted(set(entry) - set(FINETUNE_FIELDS))
        if fixed:
            raise ValidationError(f"{label}[{dataset!r}] sets {fixed}: a fine-tuning keeps the joint run's detector, "
                                  f"data and execution; it may set only {', '.join(FINETUNE_FIELDS)}")
        try:
            config.replace(**entry, finetune={}, finetune_only=())
        except ValidationError as exc:
            raise ValidationError(f"{label}[{dataset!r}]: {exc}") from None
    missing = [name for name in config.finetune_only if name not in config.finetune]
    if missing:
        raise ValidationError(f"{config.label('finetune_only')} names {missing}, which have no entry in "
                              f"{label} ({list(config.finetune)})")


def finetune_datasets(config) -> list[str]:
    """The datasets to fine-tune on, in ``config.finetune``'s order (``finetune_only`` when set)."""
    return [name for name in config.finetune if not config.finetune_only or name in config.finetune_only]


def finetune_config(config, dataset: str, datasets: Sequence[str]):
    """The config of the fine-tuning on ``dataset``: the joint ``config`` with its entry's fields,
    ``dataset_factors`` 1 for ``dataset`` and 0 for the other ``datasets``, no baselines, no
    further fine-tuning."""
    if dataset not in config.finetune:
        raise ValidationError(f"{config.label('finetune')} has no entry {dataset!r} ({list(config.finetune)})")
    factors = {name: float(name == dataset) for name in datasets}
    return config.replace(**config.finetune[dataset], finetune={}, finetune_only=(), dataset_factors=factors,
                          baselines=False, per_dataset_baselines=False)
