"""The unified label space from YAML and CSV mapping files, and its errors (file, label, problem)."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.methods.unidet.labels import read_label_space, write_label_space

LABELS = {"A": ["car", "vehicle"], "B": ["Car", "truck"]}
YAML = """\
datasets:
  A: {car: car, vehicle: vehicle_super}
  B: {Car: car, truck: truck}
nodes: [vehicle_super]
parents:
  car: vehicle_super
  truck: vehicle_super
"""


def write(tmp_path, text, name="map.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_builds_the_tree_and_merges_duplicates(tmp_path):
    s = read_label_space(write(tmp_path, YAML), LABELS)
    assert s.names == ("vehicle_super", "car", "truck")       # parents first
    assert s.parent == (-1, 0, 0)
    assert s.to_unified == {"A": (1, 0), "B": (1, 2)}          # A's "car" and B's "Car" share one class
    assert s.leaves().tolist() == [False, True, True]
    assert s.assignable("A").tolist() == [True, True, False]   # A's labels and their ancestors
    assert s.tree_distance().tolist() == [[0, 1, 1], [1, 0, 2], [1, 2, 0]]
    again = read_label_space(write_label_space(s, tmp_path / "back.yaml"), LABELS)
    assert again.names == s.names and again.parent == s.parent and again.to_unified == s.to_unified


def test_csv_gives_the_same_space(tmp_path):
    csv = ("kind,dataset,label,target\nmap,A,car,car\nmap,A,vehicle,vehicle_super\nmap,B,Car,car\n"
           "map,B,truck,truck\nnode,,vehicle_super,\nparent,,car,vehicle_super\nparent,,truck,vehicle_super\n")
    s = read_label_space(write(tmp_path, csv, "map.csv"), LABELS)
    y = read_label_space(write(tmp_path, YAML), LABELS)
    assert (s.names, s.parent, s.to_unified) == (y.names, y.parent, y.to_unified)
    assert np.array_equal(s.ancestors(), y.ancestors())


@pytest.mark.parametrize("text,labels,pattern", [
    (YAML.replace("  truck: vehicle_super\n", "  truck: car\n  vehicle_super: truck\n"), LABELS,
     r"map.yaml: the parents of 'car' form a cycle: car -> vehicle_super -> truck -> car"),
    (YAML.replace("  car: vehicle_super\n  truck: vehicle_super\n",
                  "  car: [vehicle_super, truck]\n  truck: car\n  vehicle_super: car\n"), LABELS,
     r"map.yaml: unified label 'car' is merged with two labels \('vehicle_super' and 'truck'"),
    (YAML.replace("[vehicle_super]", "[vehicle_super, road_super]").replace(
        "  car: vehicle_super\n  truck: vehicle_super\n", "  car: [vehicle_super, truck]\n  truck: [road_super, car]\n"),
     LABELS, r"map.yaml: the merged labels 'car' and 'truck' \(each the other's parent\) have two further parents "
             r"\('vehicle_super' and 'road_super'\)"),
    (YAML.replace("{car: car, vehicle: vehicle_super}", "{car: car, car: truck, vehicle: vehicle_super}"), LABELS,
     r"map.yaml: label 'car' of dataset 'A' is mapped twice \(to 'car' and to 'truck'\)"),
    (YAML.replace("truck: vehicle_super", "truck: lorry_super"), LABELS,
     r"map.yaml: the parent 'lorry_super' of the edge 'truck' -> 'lorry_super' does not exist"),
    (YAML, {**LABELS, "B": ["Car", "truck", "bus"]}, r"map.yaml: label 'bus' of dataset 'B' has no mapping"),
    (YAML, {"A": ["car", "vehicle"]}, r"map.yaml: dataset 'B' \(label 'Car'\) is unknown"),
    (YAML.replace("  truck: vehicle_super\n", "  truck: vehicle_super\n  truck: car\n"), LABELS,
     r"map.yaml: unified label 'truck' is given a parent twice"),
])
def test_bad_mapping_files_name_the_file_label_and_problem(tmp_path, text, labels, pattern):
    with pytest.raises(ValidationError, match=pattern):
        read_label_space(write(tmp_path, text), labels)


MERGED = YAML.replace("nodes: [vehicle_super]", "nodes: [vehicle_super, sedan]").replace(
    "  truck: vehicle_super\n", "  truck: vehicle_super\n  vehicle_super: car\n  sedan: vehicle_super\n")


def test_a_two_cycle_is_a_merged_category(tmp_path):
    # car and vehicle_super each the other's parent (the reference's bird <-> bird_super): one category, two names
    s = read_label_space(write(tmp_path, MERGED), LABELS)
    assert s.names == ("vehicle_super", "car", "truck", "sedan") and s.parent == (-1, 0, 0, 0)
    assert s.merged == ((1, 0),)     # car, listed first, hangs below vehicle_super in the tree
    anc = s.ancestors()
    # [i, j]: j is an ancestor of i; truck and sedan (below vehicle_super) get car as an ancestor too
    assert anc.astype(int).tolist() == [[0, 1, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]]
    # neither member of the pair is the other's descendant
    assert s.descendants().astype(int).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert s.assignable("B").tolist() == [True, True, True, False]
    again = read_label_space(write_label_space(s, tmp_path / "back.yaml"), LABELS)
    assert (again.names, again.parent, again.merged) == (s.names, s.parent, s.merged)
    assert "vehicle_super: car" in (tmp_path / "back.yaml").read_text()
    csv = ("kind,dataset,label,target\nmap,A,car,car\nmap,A,vehicle,vehicle_super\nmap,B,Car,car\nmap,B,truck,truck\n"
           "node,,vehicle_super,\nnode,,sedan,\nparent,,car,vehicle_super\nparent,,truck,vehicle_super\n"
           "parent,,vehicle_super,car\nparent,,sedan,vehicle_super\n")
    c = read_label_space(write(tmp_path, csv, "map.csv"), LABELS)
    assert (c.names, c.parent, c.merged) == (s.names, s.parent, s.merged)
    assert s.flat().merged == () and not s.flat().ancestors().any()


def test_csv_errors_name_the_line(tmp_path):
    with pytest.raises(ValidationError, match=r"map.csv line 2: kind 'edge'"):
        read_label_space(write(tmp_path, "kind,dataset,label,target\nedge,,a,b\n", "map.csv"), {})
    with pytest.raises(ValidationError, match=r"map.csv has the header \['a', 'b'\]"):
        read_label_space(write(tmp_path, "a,b\n", "map.csv"), {})


def test_transitive_closure_equals_reachability_by_walking_the_parents():
    """A chain, a label with two parents and a 2-cycle: every label reachable upwards is an
    ancestor, none is its own (the cycle's diagonal cleared), against a walk done by hand."""
    from workbench.methods.unidet.labels import transitive_closure

    edges = [(1, 0), (2, 1), (3, 2), (3, 4), (4, 5), (5, 4), (6, 6)]
    parents = np.zeros((7, 7), bool)
    for child, parent in edges:
        parents[child, parent] = True
    expected = np.zeros((7, 7), bool)
    for start in range(7):
        stack = [p for c, p in edges if c == start]
        while stack:
            node = stack.pop()
            if not expected[start, node]:
                expected[start, node] = True
                stack += [p for c, p in edges if c == node]
    np.fill_diagonal(expected, False)
    closure = transitive_closure(parents)
    assert np.array_equal(closure, expected)
    assert sorted(map(tuple, np.argwhere(closure[3]))) == [(0,), (1,), (2,), (4,), (5,)]
    assert closure[4, 5] and closure[5, 4] and not closure.diagonal().any()
    assert parents.sum() == len(edges)  # the input is left as it was
