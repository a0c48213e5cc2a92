"""Large-UniDet against its reference (linfeng93/Large-UniDet): the sampler and the paper preset's recipe.

The reference rule is recomputed here independently, by running the algorithm of the reference's
``mmdet/datasets/samplers/class_aware_sampler.py`` as configured in ``configs/rvc/`` (a
``ConcatDataset`` of ``RepeatDataset(COCO, 4)``, ``RepeatDataset(OID, 1)``, ``RepeatDataset(MVD, 8)``
whose repeated copies are entries; a shuffled cycle over the classes with an image, one entry per
class from a shuffled cycle over that class's entries; ``len(concat)`` entries per epoch).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.methods.unidet.sampling import WeightedDatasetSampler, sampling_probabilities

FACTORS = (4, 1, 8)   # COCO, OpenImages, Mapillary Vistas in configs/rvc/cascade_rcnn_nasfpn_crpn_32gf_1x_rvc.py


def toy_split():
    """30 / 60 / 10 images; unified classes 0-9 (COCO-like), 5-39 (OpenImages-like), 35-44 (Vistas-like)."""
    rng = np.random.default_rng(0)
    sizes, pools = (30, 60, 10), (np.arange(0, 10), np.arange(5, 40), np.arange(35, 45))
    ids = np.repeat(np.arange(3), sizes)
    classes = [rng.choice(pools[d], size=rng.integers(1, 4)) for d in ids]
    return ids, classes


class _Cycle:
    """A list walked in a shuffled order, reshuffled once exhausted."""

    def __init__(self, items, rng):
        self.items, self.rng, self.order = list(items), rng, []

    def next(self):
        if not self.order:
            self.order = list(self.rng.permutation(len(self.items)))
        return self.items[self.order.pop()]


def reference_epoch_counts(ids, classes, factors, epochs: int, seed: int = 0) -> np.ndarray:
    """How often each image is drawn over ``epochs`` epochs of the reference's sampler."""
    entries = [i for i in range(len(ids)) for _ in range(factors[ids[i]])]   # the repeated concatenation
    holders: dict[int, list[int]] = {}
    for entry, i in enumerate(entries):
        for c in set(classes[i].tolist()):
            holders.setdefault(c, []).append(entry)
    rng = np.random.default_rng(seed)
    counts = np.zeros(len(ids))
    for _ in range(epochs):
        class_cycle = _Cycle(sorted(holders), rng)
        entry_cycles = {c: _Cycle(members, rng) for c, members in holders.items()}
        for _ in range(len(entries)):
            counts[entries[entry_cycles[class_cycle.next()].next()]] += 1
    return counts


def shares(ids, weights) -> np.ndarray:
    return np.array([weights[ids == d].sum() for d in range(3)]) / weights.sum()


def test_class_aware_over_the_concatenation_gives_the_reference_dataset_shares():
    ids, classes = toy_split()
    reference = shares(ids, reference_epoch_counts(ids, classes, FACTORS, epochs=300))
    here = sampling_probabilities(ids, FACTORS, classes, class_aware=True, across_datasets=True)
    assert np.allclose(shares(ids, here), reference, atol=0.01)
    assert np.round(shares(ids, here), 2).tolist() == [0.21, 0.60, 0.19]
    # the per-dataset rules give f_d n_d / sum f n: 120 / 60 / 80 of 260 entries, far from the reference
    for kwargs in ({}, {"class_aware": True}):
        plain = sampling_probabilities(ids, FACTORS, classes, **kwargs)
        assert np.allclose(shares(ids, plain), np.array([120, 60, 80]) / 260)


def test_class_aware_over_the_concatenation_matches_the_reference_per_image():
    ids, classes = toy_split()
    counts = reference_epoch_counts(ids, classes, FACTORS, epochs=300)
    here = sampling_probabilities(ids, FACTORS, classes, class_aware=True, across_datasets=True)
    assert np.abs(here - counts / counts.sum()).max() < 2e-3
    draws = WeightedDatasetSampler(ids, FACTORS, classes, class_aware=True, across_datasets=True,
                                   num_samples=100_000, seed=1)
    freq = np.bincount(list(draws), minlength=len(ids)) / 100_000
    assert np.allclose(shares(ids, freq), shares(ids, here), atol=0.01)


def test_direct_formula_on_a_hand_example():
    # two datasets, factors 2 and 1: entries {0, 0, 1, 1, 2}; class 7 in images 0 and 2, class 8 in image 1
    ids = np.array([0, 0, 1])
    classes = [np.array([7]), np.array([8, 8]), np.array([7])]
    p = sampling_probabilities(ids, [2, 1], classes, class_aware=True, across_datasets=True)
    # K = 2; n_7 = 2 + 1 entries, n_8 = 2 entries
    assert np.allclose(p, [0.5 * 2 / 3, 0.5 * 2 / 2, 0.5 * 1 / 3])


def test_paper_preset_is_the_reference_recipe():
    from workbench.methods import get_method
    from workbench.training.runner import resolve_config

    config = resolve_config(get_method("unidet"), "paper")
    assert config.sampler == "class_aware_concat"
    assert dict(config.dataset_factors) == {"coco": 4.0, "openimages": 1.0, "vistas": 8.0}
    assert (config.lr, config.epochs, tuple(config.milestones), config.gamma) == (0.01, 8, (6, 7), 0.1)
    assert (config.grad_clip, config.batch_size, config.momentum, config.weight_decay) == (35.0, 16, 0.9, 1e-4)
    assert config.ignore_descendants and not config.ignore_unassignable
    assert (config.focal_gamma, config.focal_alpha) == (0.0, -1.0)


@pytest.mark.parametrize("sampler, message", [
    ("class_aware", r"^class_aware sampling: dataset 0 has no boxes; .*sampler 'repeat' or 'weighted'"),
    ("class_aware_concat", r"^class_aware_concat sampling: no item .* has a box; .*sampler 'repeat' or 'weighted'")])
def test_class_aware_needs_boxes(sampler, message):
    from workbench.errors import ValidationError

    with pytest.raises(ValidationError, match=message):
        sampling_probabilities(np.array([0, 1]), [1, 1], [np.array([], int)] * 2, class_aware=True,
                               across_datasets=sampler == "class_aware_concat")


# --- the loss --------------------------------------------------------------------------------------------
# A toy unified space in the reference's form: 0 animal_super, 1 bird_super, 2 bird, 3 sparrow, 4 car, and
# the background column 5, shaped like its label_spaces/: in hierarchy_rvc.json bird and bird_super are each
# the other's parent (8 such merged pairs: ball, bear, bed, bird, boat, car, clock, person) and neither the
# other's child (is_childs = is_parents.T without the merged pairs); in hierarchy_oid.json bird_super is
# OpenImages' Bird and COCO's bird has no parent. ``[c, p]``: ``p`` is an ancestor of ``c``.
TOY_RVC_PARENTS = {1: (0, 2), 2: (0, 1), 3: (0, 1, 2)}
TOY_OID_PARENTS = {1: (0,), 3: (0, 1)}


def _matrix(parents: dict, size: int = 6) -> torch.Tensor:
    m = torch.zeros(size, size)
    for c, ps in parents.items():
        m[c, list(ps)] = 1
    return m


def reference_loss(pred, target, *, pos_parents: str, ignore: str, loss_weight: float,
                   rvc_parents: dict = TOY_RVC_PARENTS) -> torch.Tensor:
    """The reference's HierarchyLoss as read: pred (B, C+1), target (B,) with C = background; sum / B x weight."""
    is_parents = {"oid": _matrix(TOY_OID_PARENTS), "rvc": _matrix(rvc_parents)}
    children_rvc = is_parents["rvc"].T * (1 - is_parents["rvc"])
    t = torch.nn.functional.one_hot(target, pred.shape[1]).float()
    t = t + t @ is_parents[pos_parents]
    ignored = children_rvc if ignore == "child" else is_parents["rvc"] - is_parents["oid"] + children_rvc
    bce = torch.nn.functional.binary_cross_entropy_with_logits(pred, t, reduction="none")
    return loss_weight * (bce * (1 - ignored[target])).sum() / len(target)


#: The toy as a tree without its merged pair (bird_super is bird's parent only; the merge: the test on the excerpt below).
TOY_TREE = {1: (0,), 2: (0, 1), 3: (0, 1, 2)}


def test_hierarchy_bce_is_the_reference_rule_on_one_tree_without_background_column():
    # on a tree, the reference's "rvc"/"child" case is hierarchy_bce once the background column is dropped
    # (here: logits of +-1e4 that make it cost nothing) and the weight is 1
    from workbench.methods.unidet.loss import hierarchy_bce

    torch.manual_seed(0)
    pred, target = torch.randn(64, 6), torch.randint(0, 6, (64,))
    pred[:, 5] = torch.where(target == 5, 1e4, -1e4)
    ref = reference_loss(pred, target, pos_parents="rvc", ignore="child", loss_weight=1.0, rvc_parents=TOY_TREE)
    labels = torch.where(target == 5, -1, target)
    here = hierarchy_bce(pred[:, :5], labels, _matrix(TOY_TREE, 5).bool()) / len(target)
    assert torch.allclose(here, ref, atol=1e-5)


def test_the_configured_reference_loss_differs_from_the_single_tree_rule():
    # the README's numbers: configs/rvc uses pos_parents="oid", ignore="child+", loss_weight=1.5, a background column
    from workbench.methods.unidet.loss import hierarchy_bce, hierarchy_targets

    target = torch.tensor([1, 2, 3, 5])    # bird_super, bird, sparrow, background
    t = torch.nn.functional.one_hot(target, 6).float()
    t = t + t @ _matrix(TOY_OID_PARENTS)
    rvc = _matrix(TOY_RVC_PARENTS)
    weights = 1 - (rvc - _matrix(TOY_OID_PARENTS) + rvc.T * (1 - rvc))[target]
    here_t, here_w = hierarchy_targets(torch.where(target == 5, -1, target), _matrix(TOY_TREE, 5).bool())
    # bird: only itself positive, animal_super and bird_super ignored (RVC parents without an OID parent);
    # sparrow: bird ignored, not positive; bird_super: the same as here
    assert t[1].tolist() == [0, 0, 1, 0, 0, 0] and weights[1].tolist() == [0, 0, 1, 0, 1, 1]
    assert (t[:, :5] != here_t).sum(1).tolist() == [0, 2, 1, 0]
    assert (weights[:, :5] != here_w).sum(1).tolist() == [0, 2, 1, 0]
    torch.manual_seed(0)
    pred = torch.randn(4, 6)
    configured = reference_loss(pred, target, pos_parents="oid", ignore="child+", loss_weight=1.5)
    unweighted = reference_loss(pred, target, pos_parents="oid", ignore="child+", loss_weight=1.0)
    assert torch.isclose(configured, 1.5 * unweighted)
    without_background = unweighted - torch.nn.functional.binary_cross_entropy_with_logits(
        pred[:, 5], t[:, 5], reduction="sum") / 4
    here = hierarchy_bce(pred[:, :5], torch.where(target == 5, -1, target), _matrix(TOY_TREE, 5).bool()) / 4
    # logits N(0, 1): the targets and weights cost 0.965 per sample more here; the background column is
    # 29.6 % of the reference's loss (6 columns; 0.2 % of a foreground RoI's and 8 % of a background RoI's
    # with the 541 columns of its files and logits N(-4, 2))
    assert round(float(here - without_background), 3) == 0.965
    assert round(float(1 - without_background / unweighted), 3) == 0.296


# --- merged categories on the reference's own files ------------------------------------------------------
# Transcribed from linfeng93/Large-UniDet label_spaces/hierarchy_rvc.json: the rows and columns of animal_super,
# bird, bird_super, eagle, sparrow, cat and the background (index 540) of its 541 x 541 matrices, in that order.
RVC_EXCERPT_NAMES = ("animal_super", "bird", "bird_super", "eagle", "sparrow", "cat")
RVC_EXCERPT = {
    "is_parents": [[0, 0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0],
                   [1, 1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]],
    "is_childs": [[0, 1, 1, 1, 1, 1, 0], [0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0, 0],
                  [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]],
}
# the same labels as a mapping file: OpenImages' tree, and the merged pair bird <-> bird_super each the other's parent
MERGED_MAPPING = """\
datasets:
  coco: {bird: bird, cat: cat}
  oid: {Animal: animal_super, Bird: bird_super, Eagle: eagle, Sparrow: sparrow, Cat: cat}
parents:
  bird_super: [animal_super, bird]
  bird: bird_super
  eagle: bird_super
  sparrow: bird_super
  cat: animal_super
"""
MERGED_LABELS = {"coco": ["bird", "cat"], "oid": ["Animal", "Bird", "Eagle", "Sparrow", "Cat"]}


def reference_rvc_child(hierarchy_file, target: torch.Tensor):
    """Targets and weights (B, C+1) of the reference's HierarchyLoss with pos_parents="rvc", ignore="child", as read."""
    import json

    data = json.loads(hierarchy_file.read_text())
    is_parents, is_childs = torch.tensor(data["is_parents"]).float(), torch.tensor(data["is_childs"]).float()
    onehot = torch.nn.functional.one_hot(target, is_parents.shape[0]).float()
    return onehot @ is_parents + onehot, 1 - is_childs[target]


def test_merged_categories_get_the_reference_targets_and_weights(tmp_path):
    import json

    from workbench.methods.unidet.labels import read_label_space
    from workbench.methods.unidet.loss import hierarchy_bce, hierarchy_targets

    hierarchy = tmp_path / "hierarchy_rvc.json"
    hierarchy.write_text(json.dumps(RVC_EXCERPT))
    (tmp_path / "map.yaml").write_text(MERGED_MAPPING)
    space = read_label_space(tmp_path / "map.yaml", MERGED_LABELS)
    order = [space.index(n) for n in RVC_EXCERPT_NAMES]          # the reference's column order
    target = torch.arange(6)
    ref_t, ref_w = reference_rvc_child(hierarchy, target)
    here_t, here_w = hierarchy_targets(torch.tensor(order), torch.as_tensor(space.ancestors()))
    assert torch.equal(here_t[:, order], ref_t[:, :6]) and torch.equal(here_w[:, order], ref_w[:, :6])
    # bird and bird_super: both positive with animal_super either way, eagle and sparrow ignored, cat a negative
    for name in ("bird", "bird_super"):
        k = RVC_EXCERPT_NAMES.index(name)
        assert ref_t[k].tolist() == [1, 1, 1, 0, 0, 0, 0] and ref_w[k].tolist() == [1, 1, 1, 0, 0, 1, 1]
    torch.manual_seed(0)
    pred = torch.randn(6, 7)
    ref_loss = (torch.nn.functional.binary_cross_entropy_with_logits(pred[:, :6], ref_t[:, :6], reduction="none")
                * ref_w[:, :6]).sum()
    here = hierarchy_bce(pred[:, :6][:, torch.argsort(torch.tensor(order))], torch.tensor(order),
                         torch.as_tensor(space.ancestors()))
    assert torch.isclose(here, ref_loss, atol=1e-5)
    # one direction only (bird below bird_super, no merge): 4 of the 6 labels get other targets or weights
    (tmp_path / "tree.yaml").write_text(MERGED_MAPPING.replace("[animal_super, bird]", "animal_super"))
    tree = read_label_space(tmp_path / "tree.yaml", MERGED_LABELS)
    tree_t, tree_w = hierarchy_targets(torch.tensor(order), torch.as_tensor(tree.ancestors()))
    differs = (tree_t[:, order] != ref_t[:, :6]).any(1) | (tree_w[:, order] != ref_w[:, :6]).any(1)
    assert [n for n, d in zip(RVC_EXCERPT_NAMES, differs) if d] == ["bird", "bird_super", "eagle", "sparrow"]
