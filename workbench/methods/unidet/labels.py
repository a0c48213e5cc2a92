"""The unified label space: per-dataset labels mapped onto one tree of unified labels.

A *mapping file* (YAML or CSV) says which unified label each dataset label becomes and which
unified label is the parent of which. As in the reference label-space files of Large-UniDet,
parent-only nodes (nothing maps to them directly) carry a ``_super`` suffix by convention
(``square_super``); they must be declared.

YAML::

    datasets:                     # dataset -> {dataset label: unified label}
      A: {square: square_super, disc: disc_super}
      B: {solid square: square_solid, striped square: square_striped}
    nodes: [square_super, disc_super]   # unified labels nothing maps to directly (optional)
    parents:                      # unified label -> its parent (roots are not listed)
      square_solid: square_super
      square_striped: square_super

CSV (header ``kind,dataset,label,target``)::

    kind,dataset,label,target
    map,A,square,square_super       # dataset A's label "square" -> unified "square_super"
    node,,disc_super,               # a declared parent-only node
    parent,,square_solid,square_super

Duplicates are merged: two datasets mapping onto the same unified label share its class.

*Merged categories*: two labels that are each the other's parent (``bird: bird_super`` and
``bird_super: bird``; in YAML a label's second parent is written as a list,
``bird_super: [animal_super, bird]``, or as a repeated key; in CSV as a second ``parent`` row)
are one category under two names, as the reference's 8 merged pairs (``ball``, ``bear``,
``bed``, ``bird``, ``boat``, ``car``, ``clock``, ``person`` with their ``_super``;
``label_spaces/gen_hierarchy.py``): each is the other's ancestor, both have the pair's
ancestors, every descendant of either has both as ancestors, and neither is the other's
descendant. The pair has at most one further parent (given to one member, or the same to
both). In the tree (``parent``, depths, leaves, tree distances) the member without a further
parent (else the one listed first) hangs below the other one.

Bad input raises :class:`~workbench.errors.ValidationError` naming the file, the label and the
problem: a dataset label mapped twice, a unified label given two parents (other than its merge
partner), a parent that does not exist, a cycle (other than a merged pair), a label merged with
two labels, a merged pair with two further parents, a dataset label with no mapping, a mapping
of a label the dataset does not have, an unknown dataset.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from workbench.errors import ValidationError


@dataclass(frozen=True)
class LabelSpace:
    """A unified label tree and each dataset's labels in it.

    Attributes
    ----------
    names : tuple of str
        The ``C`` unified labels, parents before their children (ordered by depth, then by
        first appearance in the mapping file).
    parent : tuple of int
        Index of each label's parent, -1 for a root.
    datasets : tuple of str
        Dataset names, in mapping-file order.
    dataset_labels : dict of str to tuple of str
        Each dataset's own labels (its local label ``i`` is ``dataset_labels[d][i]``).
    to_unified : dict of str to tuple of int
        Unified index of each local label of each dataset.
    source : str
        The mapping file it was read from ("" when built in memory).
    merged : tuple of (int, int)
        Merged pairs ``(a, s)`` (each the other's parent; module docstring): ``a`` hangs below
        ``s`` in ``parent``.
    own_ancestors : tuple of (int, int)
        ``(label, ancestor)`` pairs of a second parent relation: one dataset's own hierarchy
        mapped into the unified space (:func:`with_dataset_hierarchy`; OpenImages' for the
        reference's ``pos_parents="oid"``), transitive; empty when none was given. Not written
        to the mapping file (:meth:`to_dict`): only the training loss uses it.
    """

    names: tuple[str, ...]
    parent: tuple[int, ...]
    datasets: tuple[str, ...]
    dataset_labels: dict
    to_unified: dict
    source: str = ""
    merged: tuple[tuple[int, int], ...] = ()
    own_ancestors: tuple[tuple[int, int], ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ValidationError(f"unified label {name!r} is not in the label space "
                                  f"{self.source or '(in memory)'}; expected one of {list(self.names)}") from None

    def _tree_ancestors(self) -> np.ndarray:
        """Boolean (C, C): ``[i, j]`` is True when ``j`` is above ``i`` in the tree ``parent``."""
        c = self.num_classes
        out = np.zeros((c, c), dtype=bool)
        for i in range(c):
            j = self.parent[i]
            while j >= 0:
                out[i, j] = True
                j = self.parent[j]
        return out

    def ancestors(self) -> np.ndarray:
        """Boolean (C, C): ``[i, j]`` is True when ``j`` is a proper ancestor of ``i`` (the reference's ``is_parents``).

        The tree's ancestors, and for each merged pair ``(a, s)``: ``a`` is an ancestor of ``s``
        and of everything below ``s`` (so the two are each the other's ancestor).
        """
        out = self._tree_ancestors()
        for a, s in self.merged:
            out[:, a] |= out[:, s]
            out[s, a] = True
            out[a, a] = False
        return out

    def descendants(self) -> np.ndarray:
        """Boolean (C, C): ``[i, j]`` is True when ``j`` is a proper descendant of ``i`` (the reference's ``is_childs``).

        The transpose of :meth:`ancestors` without the merged pairs: a merged label is its
        partner's ancestor, not its descendant.
        """
        anc = self.ancestors()
        return anc.T & ~anc

    def own_ancestor_matrix(self) -> np.ndarray:
        """Boolean (C, C): ``[i, j]`` when ``j`` is an ancestor of ``i`` in :attr:`own_ancestors` (the reference's ``hierarchy_oid.json`` ``is_parents``)."""
        out = np.zeros((self.num_classes, self.num_classes), dtype=bool)
        for i, j in self.own_ancestors:
            out[i, j] = True
        return out

    def depth(self) -> np.ndarray:
        """Depth (C,) of each label in the tree ``parent`` (0 for a root)."""
        return self._tree_ancestors().sum(1)

    def leaves(self) -> np.ndarray:
        """Boolean (C,): labels without children."""
        has_child = np.zeros(self.num_classes, dtype=bool)
        for p in self.parent:
            if p >= 0:
                has_child[p] = True
        return ~has_child

    def assignable(self, dataset: str) -> np.ndarray:
        """Boolean (C,): the unified labels ``dataset`` can ever assign (its labels and their ancestors)."""
        self._check_dataset(dataset)
        out = np.zeros(self.num_classes, dtype=bool)
        anc = self.ancestors()
        for u in self.to_unified[dataset]:
            out[u] = True
            out |= anc[u]
        return out

    def tree_distance(self) -> np.ndarray:
        """Path length (C, C) in the tree (edges between two labels; labels of different roots: depth_i + depth_j + 2)."""
        anc = self._tree_ancestors()
        depth = anc.sum(1)
        c = self.num_classes
        out = np.zeros((c, c))
        for i in range(c):
            for j in range(c):
                common = [k for k in range(c) if (anc[i, k] or k == i) and (anc[j, k] or k == j)]
                if common:
                    lca = max(depth[k] for k in common)
                    out[i, j] = depth[i] + depth[j] - 2 * lca
                else:
                    out[i, j] = depth[i] + depth[j] + 2
        return out

    def flat(self) -> "LabelSpace":
        """The same labels without the tree (every label a root): the flat baseline's space."""
        return LabelSpace(self.names, (-1,) * self.num_classes, self.datasets, self.dataset_labels,
                          self.to_unified, self.source)

    def path(self, index: int) -> list[str]:
        """Names from label ``index`` up to its root (most specific first)."""
        out = []
        while index >= 0:
            out.append(self.names[index])
            index = self.parent[index]
        return out

    def _check_dataset(self, dataset: str) -> None:
        if dataset not in self.to_unified:
            raise ValidationError(f"dataset {dataset!r} is not in the label space {self.source or '(in memory)'}; "
                                  f"expected one of {list(self.datasets)}")

    def to_dict(self) -> dict:
        """A YAML mapping-file payload of this space (round-trips through :func:`read_label_space`)."""
        return {
            "datasets": {d: dict(zip(self.dataset_labels[d], (self.names[u] for u in self.to_unified[d])))
                         for d in self.datasets},
            "nodes": [n for i, n in enumerate(self.names)
                      if not any(i in set(m) for m in self.to_unified.values())],
            "parents": self._parent_entries(),
        }

    def _parent_entries(self) -> dict:
        """``parents`` of :meth:`to_dict`: each label's parent, then ``s: [parent, a]`` (or ``s: a``, listed after ``a``) per merged pair."""
        out: dict = {self.names[i]: self.names[p] for i, p in enumerate(self.parent) if p >= 0}
        for a, s in self.merged:
            name = self.names[s]
            out[name] = [out[name], self.names[a]] if name in out else self.names[a]
        return out


def with_dataset_hierarchy(space: LabelSpace, dataset: str, edges) -> LabelSpace:
    """``space`` with ``dataset``'s own hierarchy as :attr:`LabelSpace.own_ancestors`.

    Parameters
    ----------
    space : LabelSpace
    dataset : str
        The dataset whose hierarchy it is (OpenImages: the source's ``hierarchy``, read from
        ``bbox_labels_600_hierarchy.json`` by :func:`.data.openimages_edges`).
    edges : iterable of (int, int)
        (child, parent) pairs in the dataset's local labels; a class may have several parents.

    Returns
    -------
    LabelSpace
        The same space whose ``own_ancestors`` are the edges mapped through ``to_unified``,
        closed transitively (a grandparent is an ancestor), without a label as its own ancestor
        (an edge whose two ends map to one unified label, or a cycle).
    """
    space._check_dataset(dataset)
    to_u, n = space.to_unified[dataset], len(space.dataset_labels[dataset])
    c = space.num_classes
    closure = np.zeros((c, c), dtype=bool)
    for child, parent in edges:
        if not (0 <= child < n and 0 <= parent < n):
            raise ValidationError(f"hierarchy of dataset {dataset!r}: edge ({child}, {parent}) names a label outside "
                                  f"its {n} labels")
        closure[to_u[child], to_u[parent]] = True
    closure = transitive_closure(closure)
    return dataclasses.replace(space, own_ancestors=tuple((int(i), int(j)) for i, j in zip(*np.nonzero(closure))))


def transitive_closure(parents: np.ndarray) -> np.ndarray:
    """Boolean (C, C) ancestors from boolean (C, C) parents (``[i, j]``: ``j`` a parent of ``i``):
    grandparents and beyond added, no label its own ancestor (a cycle's diagonal cleared).

    The path counts are float32 so that the product runs in BLAS (a 700-label tree: 0.03 s, against
    1.6 s in int64); only whether one is > 0 is used, which float32 keeps."""
    closure = np.asarray(parents, dtype=bool).copy()
    while True:
        paths = closure.astype(np.float32)
        grown = closure | ((paths @ paths) > 0)
        if (grown == closure).all():
            break
        closure = grown
    np.fill_diagonal(closure, False)
    return closure


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that keeps duplicate mapping keys as ``(key, value)`` pairs for checking."""


def _pairs(loader, node):
    return [(loader.construct_object(k, deep=True), loader.construct_object(v, deep=True)) for k, v in node.value]


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _pairs)


def _read_entries(path: Path) -> tuple[list, list, list]:
    """``(maps, nodes, parents)``: lists of (dataset, label, unified), (node,), (child, parent) in file order."""
    maps, nodes, parents = [], [], []
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            top = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or []
        except yaml.YAMLError as exc:
            raise ValidationError(f"mapping file {path} is not valid YAML: {exc}") from None
        if not isinstance(top, list):
            raise ValidationError(f"mapping file {path} must hold a mapping with 'datasets', 'nodes', 'parents'")
        sections = {}
        for key, value in top:
            if key not in ("datasets", "nodes", "parents"):
                raise ValidationError(f"mapping file {path}: unknown section {key!r}; expected 'datasets', 'nodes', 'parents'")
            if key in sections:
                raise ValidationError(f"mapping file {path}: section {key!r} appears twice")
            sections[key] = value
        for dataset, labels in sections.get("datasets") or []:
            if not isinstance(labels, list):
                raise ValidationError(f"mapping file {path}: dataset {dataset!r} must map labels to unified labels")
            maps += [(str(dataset), str(label), str(target)) for label, target in labels]
        raw_nodes = sections.get("nodes") or []
        if not isinstance(raw_nodes, list) or any(isinstance(n, tuple) for n in raw_nodes):
            raise ValidationError(f"mapping file {path}: 'nodes' must be a list of unified labels")
        nodes = [str(n) for n in raw_nodes]
        parents = [(str(c), str(p)) for c, ps in (sections.get("parents") or [])
                   for p in (ps if isinstance(ps, list) else [ps])]
    elif path.suffix.lower() == ".csv":
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            expected = ["kind", "dataset", "label", "target"]
            if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != expected:
                raise ValidationError(f"mapping file {path} has the header {reader.fieldnames}; expected {expected}")
            for line, row in enumerate(reader, start=2):
                kind = (row["kind"] or "").strip()
                dataset, label, target = ((row[k] or "").strip() for k in ("dataset", "label", "target"))
                if kind == "map":
                    maps.append((dataset, label, target))
                elif kind == "node":
                    nodes.append(label)
                elif kind == "parent":
                    parents.append((label, target))
                else:
                    raise ValidationError(f"mapping file {path} line {line}: kind {kind!r}; expected 'map', 'node' or 'parent'")
    else:
        raise ValidationError(f"mapping file {path} must end in .yaml, .yml or .csv")
    return maps, nodes, parents


def read_label_space(path: str | os.PathLike, dataset_labels: dict[str, list[str]]) -> LabelSpace:
    """Build the unified label space from a mapping file and each dataset's label list.

    Parameters
    ----------
    path : path
        The mapping file (``.yaml``/``.yml`` or ``.csv``; format in the module docstring).
    dataset_labels : dict of str to list of str
        Each dataset's own labels, in its local order.

    Raises
    ------
    ValidationError
        Naming the file, the label and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"mapping file {path} does not exist")
    maps, nodes, parents = _read_entries(path)
    return build_label_space(maps, nodes, parents, dataset_labels, source=str(path))


def build_label_space(maps, nodes, parents, dataset_labels: dict[str, list[str]], *, source: str = "") -> LabelSpace:
    """:func:`read_label_space` from entries: ``maps`` (dataset, label, unified), ``nodes``, ``parents`` (child, parent)."""
    where = f"mapping file {source}" if source else "label mapping"
    mapped: dict[tuple[str, str], str] = {}
    order: list[str] = []

    def add(name: str) -> None:
        if name not in order:
            order.append(name)

    for dataset, label, target in maps:
        if dataset not in dataset_labels:
            raise ValidationError(f"{where}: dataset {dataset!r} (label {label!r}) is unknown; "
                                  f"expected one of {sorted(dataset_labels)}")
        if label not in dataset_labels[dataset]:
            raise ValidationError(f"{where}: label {label!r} of dataset {dataset!r} is not one of the dataset's labels")
        if not target:
            raise ValidationError(f"{where}: label {label!r} of dataset {dataset!r} is mapped to an empty unified label")
        if (dataset, label) in mapped:
            raise ValidationError(f"{where}: label {label!r} of dataset {dataset!r} is mapped twice "
                                  f"(to {mapped[(dataset, label)]!r} and to {target!r})")
        mapped[(dataset, label)] = target
        add(target)
    for node in nodes:
        add(node)
    edges: dict[str, list[str]] = {}
    for child, parent in parents:
        for name, role in ((child, "child"), (parent, "parent")):
            if name not in order:
                raise ValidationError(f"{where}: the {role} {name!r} of the edge {child!r} -> {parent!r} does not exist "
                                      "(neither a mapping target nor a declared node)")
        if child == parent:
            raise ValidationError(f"{where}: unified label {child!r} is its own parent (a cycle)")
        edges.setdefault(child, []).append(parent)
    parent_of, merged_names = _tree_and_merges(edges, where)
    for child in parent_of:  # cycle check: walk up from every label
        seen = [child]
        node = parent_of[child]
        while node in parent_of:
            if node in seen:
                cycle = seen[seen.index(node):] + [node]
                raise ValidationError(f"{where}: the parents of {child!r} form a cycle: {' -> '.join(cycle)}")
            seen.append(node)
            node = parent_of[node]
    for dataset, labels in dataset_labels.items():
        for label in labels:
            if (dataset, label) not in mapped:
                raise ValidationError(f"{where}: label {label!r} of dataset {dataset!r} has no mapping")

    def depth(name: str) -> int:
        d = 0
        while name in parent_of:
            name, d = parent_of[name], d + 1
        return d

    names = tuple(sorted(order, key=lambda n: (depth(n), order.index(n))))
    index = {n: i for i, n in enumerate(names)}
    parent = tuple(index[parent_of[n]] if n in parent_of else -1 for n in names)
    datasets = tuple(dataset_labels)
    return LabelSpace(
        names=names, parent=parent, datasets=datasets,
        dataset_labels={d: tuple(dataset_labels[d]) for d in datasets},
        to_unified={d: tuple(index[mapped[(d, lab)]] for lab in dataset_labels[d]) for d in datasets},
        source=source, merged=tuple((index[a], index[b]) for a, b in merged_names),
    )


def _tree_and_merges(edges: dict[str, list[str]], where: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The tree ``{child: parent}`` and the merged pairs ``[(a, s)]`` (``a`` below ``s``) of the parent edges.

    Two labels each listing the other as a parent are a merged pair; every other second parent,
    a label merged with two labels and a pair whose members have two different further parents are
    errors. ``a`` is the member without a further parent, else the one listed first.
    """
    partner: dict[str, str] = {}
    for child, listed in edges.items():
        for parent in listed:
            if child in edges.get(parent, ()):
                if partner.setdefault(child, parent) != parent:
                    raise ValidationError(f"{where}: unified label {child!r} is merged with two labels "
                                          f"({partner[child]!r} and {parent!r}: each is its parent and its child)")
    parent_of: dict[str, str] = {}
    for child, listed in edges.items():
        further = [p for p in listed if p != partner.get(child)]
        if len(further) > 1:
            raise ValidationError(f"{where}: unified label {child!r} is given a parent twice "
                                  f"({further[0]!r} and {further[1]!r})")
        if further:
            parent_of[child] = further[0]
    merged: list[tuple[str, str]] = []
    for child, other in partner.items():
        if any(child in pair for pair in merged):
            continue
        if parent_of.get(child, parent_of.get(other)) != parent_of.get(other, parent_of.get(child)):
            raise ValidationError(f"{where}: the merged labels {child!r} and {other!r} (each the other's parent) "
                                  f"have two further parents ({parent_of[child]!r} and {parent_of[other]!r}); "
                                  "give the pair one")
        below, above = (other, child) if child in parent_of and other not in parent_of else (child, other)
        parent_of[below] = above
        merged.append((below, above))
    return parent_of, merged


def write_label_space(space: LabelSpace, path: str | os.PathLike) -> Path:
    """Write ``space`` as a YAML mapping file (atomically)."""
    from workbench.storage import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(space.to_dict(), sort_keys=False, allow_unicode=True))
    return path
