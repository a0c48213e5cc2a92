"""The OpenImages challenge metric (workbench.methods.unidet.oid_metric) on hand-built cases, its loader and its use.

Every expected AP is worked out by hand in the comments: the detections of a class sorted by score,
precision and recall after each, the precision envelope integrated over recall (Pascal VOC, all points).
"""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import DataError
from workbench.methods.unidet.oid_metric import average_precision, match_detections, oid_challenge_map

FLAT2 = np.zeros((2, 2), bool)
#: 0 vehicle, 1 car (car's parent is vehicle): ``[i, j]``, ``j`` an ancestor of ``i``
VEHICLE_CAR = np.array([[False, False], [True, False]])


def det(image_id, rows):
    """Detections of one image from rows (x1, y1, x2, y2, score, label)."""
    rows = np.array(rows, float).reshape(-1, 6)
    return {"image_id": image_id, "boxes": rows[:, :4], "scores": rows[:, 4], "labels": rows[:, 5].astype(int)}


def truth(image_id, boxes, labels, group_of=None, positive=(), negative=()):
    return {"image_id": image_id, "boxes": np.array(boxes, float).reshape(-1, 4), "labels": np.array(labels, int),
            "group_of": np.array(group_of if group_of is not None else [False] * len(labels), bool),
            "positive": np.array(positive, int), "negative": np.array(negative, int)}


def test_group_of_box_counts_once_and_its_other_detections_are_ignored():
    gt = [truth(0, [[0, 0, 10, 10], [20, 0, 40, 20]], [0, 0], group_of=[False, True], positive=[0])]
    found = [det(0, [[0, 0, 10, 10, .9, 0],      # the single box: TP
                     [21, 1, 29, 9, .4, 0],      # inside the group-of box (IoA 1): one TP at .4 ...
                     [30, 10, 38, 18, .3, 0],    # ... this one ignored
                     [50, 50, 60, 60, .6, 0],    # nothing: FP
                     [1, 1, 10, 10, .5, 0]])]    # IoU .81 with the taken single box, outside the group: FP
    scores, tp = match_detections(found[0]["boxes"], found[0]["scores"], gt[0]["boxes"], gt[0]["group_of"])
    assert sorted(zip(scores.tolist(), tp.tolist())) == [(.4, True), (.5, False), (.6, False), (.9, True)]
    # 2 instances (the single box, the group); by score .9 TP, .6 FP, .5 FP, .4 TP:
    # precision 1, 1/2, 1/3, 2/4 at recall 1/2, 1/2, 1/2, 1; envelope 1 up to recall 1/2, then 1/2
    assert oid_challenge_map(gt, found, FLAT2)["AP"] == {0: pytest.approx(.5 * 1 + .5 * .5)}
    # without the group-of flag the group box is a second single box: .4 and .3 miss it (IoU < .5)
    plain = [dict(gt[0], group_of=np.zeros(2, bool))]
    # by score .9 TP, .6, .5, .4, .3 FP: precision 1 at recall 1/2, then nothing reaches recall 1
    assert oid_challenge_map(plain, found, FLAT2)["AP"] == {0: pytest.approx(.5)}


def test_classes_not_verified_on_an_image_are_ignored():
    gt = [truth(0, [[0, 0, 10, 10]], [0], positive=[0]),           # car verified, dog not
          truth(1, [], [], negative=[1]),                          # dog verified absent
          truth(2, [[0, 0, 10, 10]], [1], positive=[1])]           # a dog
    found = [det(0, [[0, 0, 10, 10, .9, 0], [20, 20, 30, 30, .8, 1]]),   # the dog here is ignored
             det(1, [[0, 0, 10, 10, .7, 1]]),                             # FP
             det(2, [[0, 0, 10, 10, .6, 1]])]                             # TP
    result = oid_challenge_map(gt, found, FLAT2)
    # car: one TP, AP 1; dog: .7 FP, .6 TP: precision 1/2 at recall 1, AP 1/2 (counting the ignored .8 as a FP: 1/3)
    assert result["AP"] == {0: pytest.approx(1.0), 1: pytest.approx(.5)}
    assert result["mAP"] == pytest.approx(.75)


def test_hierarchical_expansion_of_ground_truth_labels_and_detections():
    gt = [truth(0, [[0, 0, 10, 10]], [1], positive=[1]),     # a car box: also a vehicle box; car and vehicle verified
          truth(1, [], [], negative=[0])]                      # no vehicle here: no car either
    found = [det(0, [[0, 0, 10, 10, .9, 1]]), det(1, [[0, 0, 10, 10, .95, 1]])]
    # car: .95 FP (image 1), .9 TP: precision 0 then 1/2 at recall 1: AP 1/2; vehicle the same through the
    # expanded detections
    assert oid_challenge_map(gt, found, VEHICLE_CAR)["AP"] == {0: pytest.approx(.5), 1: pytest.approx(.5)}
    # without expanding the detections, vehicle has a box and no detection: AP 0, mean (0 + 1/2) / 2
    unexpanded = oid_challenge_map(gt, found, VEHICLE_CAR, expand_detections=False)
    assert unexpanded["AP"] == {0: 0.0, 1: pytest.approx(.5)} and unexpanded["mAP"] == pytest.approx(.25)
    # without the hierarchy: car not verified on image 1 (its .95 ignored), vehicle has no ground truth
    assert oid_challenge_map(gt, found, FLAT2)["AP"] == {1: pytest.approx(1.0)}


def test_average_precision_by_hand():
    # by score: TP, FP, TP, FP with 3 instances: precision 1, 1/2, 2/3, 1/2 at recall 1/3, 1/3, 2/3, 2/3
    # envelope: 1 up to 1/3, 2/3 up to 2/3, nothing beyond
    assert average_precision([.9, .8, .7, .6], [True, False, True, False], 3) == pytest.approx(1 / 3 + 1 / 3 * 2 / 3)
    assert average_precision([], [], 2) == 0.0


OID_CLASSES = "/m/01,Vehicle\n/m/02,Car\n"
OID_BOXES = ("ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,"
             "IsDepiction,IsInside\n"
             "img0,xclick,/m/02,1,0.0,0.5,0.0,0.5,0,0,0,0,0\n"
             "img0,xclick,/m/01,1,0.5,1.0,0.5,1.0,0,0,1,0,0\n")
OID_LABELS = "ImageID,Source,LabelName,Confidence\nimg0,verification,/m/02,1\nimg0,verification,/m/01,0\n" \
             "img0,verification,/m/99,1\n"


def test_openimages_loader_reads_group_of_and_image_level_labels(tmp_path):
    from workbench.methods.unidet.data import load_openimages

    for name, text in (("classes.csv", OID_CLASSES), ("boxes.csv", OID_BOXES), ("labels.csv", OID_LABELS)):
        (tmp_path / name).write_text(text)
    s = load_openimages(tmp_path / "boxes.csv", tmp_path / "classes.csv", tmp_path, sizes={"img0": (20, 10)},
                        image_labels=tmp_path / "labels.csv")
    assert s.group_of[0].tolist() == [False, True]
    assert {k: v.tolist() for k, v in s.image_labels[0].items()} == {"positive": [1], "negative": [0]}
    assert s.subset([0]).image_labels[0] is s.image_labels[0]
    assert load_openimages(tmp_path / "boxes.csv", tmp_path / "classes.csv", tmp_path,
                           sizes={"img0": (20, 10)}).image_labels == [None]


@pytest.mark.parametrize("name,text,pattern", [
    ("labels.csv", "ImageID,Source,LabelName\nimg0,v,/m/02\n",
     r"image-level label file .*labels.csv lacks the column 'Confidence'"),
    ("labels.csv", "ImageID,Source,LabelName,Confidence\nimg0,v,/m/02,0.7\n",
     r"OpenImages file .*labels.csv line 2: column Confidence is '0.7'; expected 0 or 1"),
    ("boxes.csv", OID_BOXES.replace(",0,0,1,0,0", ",0,0,yes,0,0"),
     r"OpenImages file .*boxes.csv line 3: column IsGroupOf is 'yes'; expected 0 or 1"),
])
def test_bad_openimages_files_name_the_file_and_column(tmp_path, name, text, pattern):
    from workbench.methods.unidet.data import load_openimages

    for file, content in (("classes.csv", OID_CLASSES), ("boxes.csv", OID_BOXES), ("labels.csv", OID_LABELS)):
        (tmp_path / file).write_text(content)
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=pattern):
        load_openimages(tmp_path / "boxes.csv", tmp_path / "classes.csv", tmp_path, sizes={"img0": (20, 10)},
                        image_labels=tmp_path / "labels.csv")


def seeded_openimages_toy(seed: int = 0, images: int = 24):
    """An OpenImages-like source (Vehicle above Car and Truck; group-of boxes; verified labels) and detections."""
    from workbench.methods.unidet.data import DetectionSource

    rng = np.random.default_rng(seed)
    source, found = DetectionSource("oid", ["Vehicle", "Car", "Truck"]), []
    for i in range(images):
        n = int(rng.integers(1, 4))
        xy = rng.uniform(0, 40, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(12, 24, (n, 2))], 1)
        labels = rng.choice(3, n, p=[.2, .4, .4])
        group_of = rng.random(n) < .2
        negative = [c for c in range(3) if c not in labels][:1]
        source.add(np.zeros((64, 64, 3), np.uint8), boxes, labels, group_of=group_of,
                   image_labels={"positive": np.unique(labels), "negative": np.array(negative, int)})
        # 80 % found, boxes jittered by 2 px, as the leaf (a box labelled only Vehicle is a car or a truck); three
        # small detections inside each group-of box; two random false positives
        rows = []
        for k in np.flatnonzero(rng.random(n) < .8):
            leaf = labels[k] if labels[k] else rng.integers(1, 3)
            if group_of[k]:
                corners = boxes[k, :2] + rng.uniform(0, .5, (3, 2)) * (boxes[k, 2:] - boxes[k, :2])
                rows += [[*c, *(c + .4 * (boxes[k, 2:] - boxes[k, :2])), rng.uniform(.3, 1), leaf] for c in corners]
            else:
                rows.append([*(boxes[k] + rng.normal(0, 2, 4)), rng.uniform(.3, 1), leaf])
        rows += [[*b, rng.uniform(0, .8), rng.integers(3)] for b in [np.r_[p, p + 16] for p in rng.uniform(0, 48, (2, 2))]]
        found.append(det(i, rows))
    return source, found


def test_evaluation_scores_openimages_with_the_challenge_metric():
    from workbench.methods.unidet.data import DetectionSet
    from workbench.methods.unidet.evaluation import evaluate_detections
    from workbench.methods.unidet.labels import build_label_space

    source, found = seeded_openimages_toy()
    space = build_label_space([("oid", "Vehicle", "vehicle_super"), ("oid", "Car", "car"), ("oid", "Truck", "truck")],
                              [], [("car", "vehicle_super"), ("truck", "vehicle_super")], {"oid": source.labels})
    assert space.names == ("vehicle_super", "car", "truck")          # unified index = local index here
    out = evaluate_detections(space, DetectionSet([source], space.to_unified, 64), found)
    gt = [truth(i, source.boxes[i], source.classes[i], source.group_of[i], **source.image_labels[i])
          for i in range(len(source))]
    expected = oid_challenge_map(gt, found, np.array([[0, 0, 0], [1, 0, 0], [1, 0, 0]], bool))["mAP"]
    assert out["mAP_oid"] == pytest.approx(expected) and out["mAP_mean"] == out["mAP_oid"]
    # the README's numbers: COCO-style AP at IoU .5 (no hierarchy, group-of boxes as single boxes, every class
    # on every image) against the challenge metric on the same detections
    assert (round(out["AP50_oid"], 3), round(out["mAP_oid"], 3), round(out["coco_mAP_oid"], 3)) == (0.16, 0.583, 0.068)


def test_the_sources_own_hierarchy_expands_alike_for_joint_flat_and_per_dataset_detectors():
    """With OpenImages' own hierarchy on the source (Car and Truck under Vehicle), the challenge metric
    expands through it whatever the detector: the flat and the per-dataset detectors get the joint one's mAP
    on the same detections (without it they would be scored unexpanded: 0.375 here, not 0.583)."""
    from workbench.methods.unidet.data import DetectionSet
    from workbench.methods.unidet.evaluation import evaluate_detections
    from workbench.methods.unidet.labels import build_label_space

    source, found = seeded_openimages_toy()
    source.hierarchy = [(1, 0), (2, 0)]
    space = build_label_space([("oid", "Vehicle", "vehicle_super"), ("oid", "Car", "car"), ("oid", "Truck", "truck")],
                              [], [("car", "vehicle_super"), ("truck", "vehicle_super")], {"oid": source.labels})
    test = DetectionSet([source], space.to_unified, 64)
    joint = evaluate_detections(space, test, found)["mAP_oid"]
    assert evaluate_detections(space.flat(), test, found)["mAP_oid"] == joint
    assert evaluate_detections(space, test, found, unified=False)["mAP_oid"] == joint
    gt = [truth(i, source.boxes[i], source.classes[i], source.group_of[i], **source.image_labels[i])
          for i in range(len(source))]
    assert round(joint, 3) == 0.583
    assert round(oid_challenge_map(gt, found, np.zeros((3, 3), bool))["mAP"], 3) == 0.375


def test_the_smoke_files_carry_image_level_labels_and_are_scored_with_the_challenge_metric(tmp_path):
    from workbench.methods import get_method
    from workbench.methods.unidet.data import DetectionSet
    from workbench.methods.unidet.evaluation import evaluate_detections
    from workbench.methods.unidet.train import build_sources, build_space
    from workbench.training.runner import resolve_config

    config = resolve_config(get_method("unidet"), "paper", smoke_data=tmp_path)
    train, test = build_sources(config)
    space = build_space(config, train)
    oid = [s for s in test if s.name == "openimages"]
    assert [{k: v.tolist() for k, v in labels.items()} for labels in oid[0].image_labels] == [
        {"positive": [2], "negative": [3]}]
    test_set = DetectionSet(oid, space.to_unified, 64)
    _, target = test_set[0]
    found = [det(0, [[*target["boxes"][0].tolist(), .9, int(target["labels"][0])]])]
    out = evaluate_detections(space, test_set, found)
    assert out["mAP_openimages"] == 1.0 and out["coco_mAP_openimages"] == pytest.approx(1.0)
