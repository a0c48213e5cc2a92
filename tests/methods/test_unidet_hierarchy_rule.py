"""The reference's configured hierarchy loss (``hierarchy_rule: oid_child_plus``, loss weight 1.5) in the paper preset.

The reference rule is recomputed here independently from a reading of linfeng93/Large-UniDet
``mmdet/models/losses/hierarchy_loss.py`` (``HierarchyLoss.__init__`` and ``forward`` with
``pos_parents="oid"``, ``ignore="child+"``): targets ``onehot + onehot @ is_parents_oid``, weights
``1 - (is_parents_rvc - is_parents_oid + is_childs_rvc)[target]``, on hand-written matrices in the
form of its ``label_spaces/hierarchy_rvc.json`` (a merged pair each the other's parent, ``is_childs``
the transpose without the pair) and ``hierarchy_oid.json`` (COCO's ``bird`` without parents).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workbench.errors import DataError, ValidationError
from workbench.methods.unidet.labels import build_label_space, with_dataset_hierarchy
from workbench.methods.unidet.loss import hierarchy_bce, oid_child_plus_targets

# OpenImages' labels and where they go in the unified space; COCO's bird is the unified "bird"
OID_LABELS = {"Animal": "animal_super", "Bird": "bird_super", "Sparrow": "sparrow", "Fruit": "fruit",
              "Vegetable": "vegetable", "Tomato": "tomato", "Vehicle": "vehicle", "Car": "car"}
OID_EDGES = [("Bird", "Animal"), ("Sparrow", "Bird"), ("Tomato", "Fruit"), ("Tomato", "Vegetable"), ("Car", "Vehicle")]
# the unified (RVC) tree: bird <-> bird_super merged, tomato under vegetable only (a tree keeps one parent)
TREE = [("bird_super", "animal_super"), ("bird_super", "bird"), ("bird", "bird_super"), ("sparrow", "bird"),
        ("tomato", "vegetable"), ("car", "vehicle")]
# the reference's matrices as its files hold them, by hand: is_parents rows (transitive) of each file
RVC_IS_PARENTS = {"bird_super": ("animal_super", "bird"), "bird": ("animal_super", "bird_super"),
                  "sparrow": ("animal_super", "bird_super", "bird"), "tomato": ("vegetable",), "car": ("vehicle",)}
OID_IS_PARENTS = {"bird_super": ("animal_super",), "sparrow": ("bird_super", "animal_super"),
                  "tomato": ("fruit", "vegetable"), "car": ("vehicle",)}
MERGED = {("bird", "bird_super"), ("bird_super", "bird")}


def toy_space():
    labels = {"coco": ["bird", "car"], "openimages": list(OID_LABELS)}
    maps = [("coco", "bird", "bird"), ("coco", "car", "car")] + [("openimages", k, v) for k, v in OID_LABELS.items()]
    space = build_label_space(maps, [], TREE, labels)
    names = list(OID_LABELS)
    return with_dataset_hierarchy(space, "openimages", [(names.index(c), names.index(p)) for c, p in OID_EDGES])


def reference_child_plus(names, target: torch.Tensor):
    """``HierarchyLoss(pos_parents="oid", ignore="child+")``'s targets and weights, background column last."""
    size = len(names) + 1

    def matrix(rows):
        m = torch.zeros(size, size)
        for child, parents in rows.items():
            for p in parents:
                m[names.index(child), names.index(p)] = 1
        return m

    ip_rvc, ip_oid = matrix(RVC_IS_PARENTS), matrix(OID_IS_PARENTS)
    merged = torch.zeros(size, size)
    for a, b in MERGED:
        merged[names.index(a), names.index(b)] = 1
    ic_rvc = ip_rvc.T - merged
    onehot = torch.nn.functional.one_hot(target, size).float()
    return onehot + onehot @ ip_oid, 1 - (ip_rvc - ip_oid + ic_rvc)[target]


def test_oid_child_plus_targets_and_weights_equal_the_reference_rule():
    space = toy_space()
    names = list(space.names)
    target = torch.arange(len(names) + 1)          # every label, then the background column
    ref_t, ref_w = reference_child_plus(names, target)
    labels = torch.where(target == len(names), -1, target)
    here_t, here_w = oid_child_plus_targets(labels, torch.as_tensor(space.ancestors()),
                                            torch.as_tensor(space.own_ancestor_matrix()))
    assert torch.equal(here_t, ref_t[:, :-1]) and torch.equal(here_w, ref_w[:, :-1])
    row = {n: i for i, n in enumerate(names)}
    # COCO's bird: only itself positive; its RVC parents (not OpenImages') ignored
    assert here_t[row["bird"]].sum() == 1 and here_w[row["bird"], [row["animal_super"], row["bird_super"]]].sum() == 0
    # tomato: OpenImages' second parent fruit positive with weight 2 (an OID parent that is no RVC parent)
    assert here_t[row["tomato"], row["fruit"]] == 1 and here_w[row["tomato"], row["fruit"]] == 2
    # sparrow: bird (an RVC parent only) ignored
    assert here_t[row["sparrow"], row["bird"]] == 0 and here_w[row["sparrow"], row["bird"]] == 0


def test_loss_weight_scales_the_loss_by_exactly_its_value():
    space = toy_space()
    torch.manual_seed(0)
    logits, labels = torch.randn(32, space.num_classes), torch.randint(-1, space.num_classes, (32,))
    args = (logits, labels, torch.as_tensor(space.ancestors()))
    oid = torch.as_tensor(space.own_ancestor_matrix())
    once = hierarchy_bce(*args, oid_ancestors=oid)
    assert torch.equal(hierarchy_bce(*args, oid_ancestors=oid, loss_weight=1.5), 1.5 * once)
    assert not torch.isclose(once, hierarchy_bce(*args))   # the configured rule is not the default one here


def test_paper_preset_selects_the_configured_rule_and_the_detector_uses_it(tmp_path):
    from workbench.methods import get_method
    from workbench.methods.unidet.train import load_data, make_detector
    from workbench.training.runner import resolve_config

    config = resolve_config(get_method("unidet"), "paper")
    assert (config.hierarchy_rule, config.cls_loss_weight) == ("oid_child_plus", 1.5)
    assert config.sources["openimages"]["hierarchy"].endswith("bbox_labels_600_hierarchy.json")
    smoke = resolve_config(get_method("unidet"), "paper", smoke_data=tmp_path)
    space = load_data(smoke).space
    edges = {(space.names[i], space.names[j]) for i, j in space.own_ancestors}
    assert edges == {("openimages: oid class 1", "openimages: oid class 0"),
                     ("openimages: oid class 2", "openimages: oid class 0"),
                     ("openimages: oid class 2", "openimages: oid class 3")}
    micro = resolve_config(get_method("unidet"), "micro").replace(hierarchy_rule="oid_child_plus",
                                                                  cls_loss_weight=1.5)
    _, detector = make_detector(micro, toy_space(), seed=0)
    head = detector.head.classification_head
    assert head.loss_weight == 1.5
    assert np.array_equal(head.oid_ancestors.numpy(), toy_space().own_ancestor_matrix())


def test_the_rule_needs_the_openimages_hierarchy():
    from workbench.methods import get_method
    from workbench.methods.unidet.train import load_data
    from workbench.training.runner import resolve_config

    micro = resolve_config(get_method("unidet"), "micro")
    with pytest.raises(ValidationError, match="'hierarchy_rule' is 'oid_child_plus', which needs exactly one source"):
        load_data(micro.replace(hierarchy_rule="oid_child_plus"))
    with pytest.raises(ValidationError, match="hierarchy_rule"):
        micro.replace(hierarchy_rule="oid")
    with pytest.raises(ValidationError, match="'cls_loss_weight' must be > 0"):
        micro.replace(cls_loss_weight=0.0)


def test_hierarchy_file_errors_name_the_file(tmp_path):
    from workbench.methods.unidet.data import load_openimages, openimages_edges

    (tmp_path / "classes.csv").write_text("/m/01,Animal\n/m/02,Bird\n")
    (tmp_path / "boxes.csv").write_text("ImageID,LabelName,XMin,XMax,YMin,YMax\na,/m/02,0,1,0,1\n")
    hierarchy = tmp_path / "hier.json"
    hierarchy.write_text(json.dumps({"LabelName": "/m/0bl9f", "Subcategory": [
        {"LabelName": "/m/01", "Subcategory": [{"LabelName": "/m/02"}, {"LabelName": "/m/03"}]}]}))
    assert openimages_edges(hierarchy) == [("/m/02", "/m/01"), ("/m/03", "/m/01")]
    with pytest.raises(DataError, match=r"hier.json: LabelName '/m/03' is not in the class file"):
        load_openimages(tmp_path / "boxes.csv", tmp_path / "classes.csv", tmp_path, sizes={"a": (4, 4)},
                        hierarchy=hierarchy)
    with pytest.raises(DataError, match=r"OpenImages hierarchy file .*missing.json does not exist"):
        load_openimages(tmp_path / "boxes.csv", tmp_path / "classes.csv", tmp_path, sizes={"a": (4, 4)},
                        hierarchy=tmp_path / "missing.json")
    hierarchy.write_text(json.dumps({"LabelName": "/m/0bl9f", "Subcategory": [
        {"LabelName": "/m/01", "Subcategory": [{"LabelName": "/m/02"}]}]}))
    source = load_openimages(tmp_path / "boxes.csv", tmp_path / "classes.csv", tmp_path, sizes={"a": (4, 4)},
                             hierarchy=hierarchy)
    assert source.hierarchy == [(1, 0)] and source.subset([0]).hierarchy == [(1, 0)]
