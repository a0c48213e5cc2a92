"""Loaders of COCO JSON, OpenImages CSVs + hierarchy, Mapillary Vistas JSON; synthetic data; COCO mAP."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from workbench.errors import DataError
from workbench.methods.unidet.data import (
    DetectionSet,
    load_coco,
    load_openimages,
    load_vistas,
    openimages_parents,
    synthetic_mapping,
    synthetic_sources,
)
from workbench.methods.unidet.evaluation import coco_map


def test_coco_json(tmp_path):
    Image.new("RGB", (40, 20)).save(tmp_path / "a.jpg")
    (tmp_path / "inst.json").write_text(json.dumps({
        "images": [{"id": 7, "file_name": "a.jpg", "width": 40, "height": 20}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 18, "bbox": [2, 3, 10, 5], "iscrowd": 0},
                        {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 4, 4], "iscrowd": 0},
                        {"id": 3, "image_id": 7, "category_id": 3, "bbox": [0, 0, 40, 20], "iscrowd": 1}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}]}))
    s = load_coco(tmp_path / "inst.json", tmp_path)
    assert s.labels == ["car", "dog"]                          # category-id order
    assert s.boxes[0].tolist() == [[2, 3, 12, 8], [0, 0, 4, 4]] and s.classes[0].tolist() == [1, 0]
    ds = DetectionSet([s], {"coco": (0, 1)}, size=20)
    x, t = ds[0]
    assert x.shape == (3, 20, 20)
    assert t["boxes"].tolist() == [[1, 3, 6, 8], [0, 0, 2, 4]]   # x scaled by 20/40
    bad = json.loads((tmp_path / "inst.json").read_text())
    bad["annotations"][0]["category_id"] = 99
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match="bad.json: annotation 1 has category_id 99"):
        load_coco(tmp_path / "bad.json", tmp_path)


def test_openimages_csvs_and_hierarchy(tmp_path):
    (tmp_path / "class-descriptions-boxable.csv").write_text("/m/01,Vehicle\n/m/02,Car\n/m/03,Dog\n")
    (tmp_path / "train-annotations-bbox.csv").write_text(
        "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n"
        "img1,xclick,/m/02,1,0.1,0.5,0.2,0.6,0,0,0,0,0\n"
        "img1,xclick,/m/03,1,0.0,1.0,0.0,1.0,0,0,0,0,0\n")
    (tmp_path / "hier.json").write_text(json.dumps({"LabelName": "/m/0bl9f", "Subcategory": [
        {"LabelName": "/m/01", "Subcategory": [{"LabelName": "/m/02"}]}, {"LabelName": "/m/03"}]}))
    s = load_openimages(tmp_path / "train-annotations-bbox.csv", tmp_path / "class-descriptions-boxable.csv",
                        tmp_path, sizes={"img1": (100, 50)})
    assert s.labels == ["Vehicle", "Car", "Dog"]
    assert np.allclose(s.boxes[0], [[10, 10, 50, 30], [0, 0, 100, 50]]) and s.classes[0].tolist() == [1, 2]
    assert s.images[0].endswith("img1.jpg")
    assert openimages_parents(tmp_path / "hier.json") == [("/m/02", "/m/01")]
    (tmp_path / "b.csv").write_text("ImageID,LabelName,XMin,XMax,YMin,YMax\nimg1,/m/99,0,1,0,1\n")
    with pytest.raises(DataError, match="b.csv line 2: LabelName '/m/99'"):
        load_openimages(tmp_path / "b.csv", tmp_path / "class-descriptions-boxable.csv", tmp_path, sizes={})


def test_vistas_config_and_panoptic_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"labels": [
        {"name": "construction--flat--road", "readable": "Road", "instances": False},
        {"name": "object--vehicle--car", "readable": "Car", "instances": True},
        {"name": "human--person", "readable": "Person", "instances": True}]}))
    (tmp_path / "panoptic.json").write_text(json.dumps({
        "images": [{"id": "x1", "file_name": "x1.jpg"}],
        "categories": [{"id": 1, "name": "construction--flat--road"}, {"id": 5, "name": "object--vehicle--car"},
                       {"id": 9, "name": "human--person"}],
        "annotations": [{"image_id": "x1", "file_name": "x1.png", "segments_info": [
            {"id": 11, "category_id": 1, "bbox": [0, 0, 50, 50]}, {"id": 12, "category_id": 9, "bbox": [5, 6, 7, 8]},
            {"id": 13, "category_id": 5, "bbox": [1, 1, 2, 2]}]}]}))
    s = load_vistas(tmp_path / "config.json", tmp_path / "panoptic.json", tmp_path)
    assert s.labels == ["Car", "Person"]                       # instance classes only
    assert s.boxes[0].tolist() == [[5, 6, 12, 14], [1, 1, 3, 3]] and s.classes[0].tolist() == [1, 0]


def test_synthetic_sources_are_deterministic_and_label_as_specified():
    a = synthetic_sources(3, 5, size=32)
    b = synthetic_sources(3, 5, size=32)
    c = synthetic_sources(4, 5, size=32)
    assert all(np.array_equal(x, y) for s, t in zip(a, b) for x, y in zip(s.images, t.images))
    assert not np.array_equal(a[0].images[0], c[0].images[0])
    names = {s.name: s for s in a}
    assert names["A"].labels == ["square", "disc", "triangle"] and len(names["B"].labels) == 6
    assert names["C"].labels == ["disc", "solid triangle"]
    mapping = synthetic_mapping()
    assert mapping["datasets"]["A"]["disc"] == "disc_super" and mapping["parents"]["disc_striped"] == "disc_super"


def test_coco_map_is_one_for_exact_detections_and_ignores_crowd_regions():
    gt = [{"image_id": 1, "boxes": np.array([[0, 0, 10, 10], [20, 20, 40, 40]]), "labels": np.array([0, 1])}]
    perfect = [{"image_id": 1, "boxes": gt[0]["boxes"], "scores": np.array([0.9, 0.8]), "labels": np.array([0, 1])}]
    assert coco_map(gt, perfect, ["a", "b"]) == {"mAP": pytest.approx(1.0), "AP50": pytest.approx(1.0)}
    # a wrong-class detection ranked first halves class a's precision at full recall
    extra = [{"image_id": 1, "boxes": np.array([[20, 20, 40, 40], [0, 0, 10, 10], [20, 20, 40, 40]]),
              "scores": np.array([0.95, 0.9, 0.8]), "labels": np.array([0, 0, 1])}]
    assert coco_map(gt, extra, ["a", "b"])["mAP"] == pytest.approx((0.5 + 1.0) / 2, abs=0.01)
    crowd = [{**gt[0], "crowd": np.array([False, True])}]
    assert coco_map(crowd, perfect, ["a", "b"])["mAP"] == pytest.approx(1.0)  # the detection on the crowd box is not a false positive
