"""The few-shot class-incremental (FSCIL) protocol: session split files, prototypes, session accuracy.

Protocol
--------
A *base session* (session 1) trains on every training image of the base classes; each of the
``S - 1`` *incremental sessions* brings ``W`` new classes with ``K`` training images each
(W-way K-shot). After each session the network is tested on every test image of the classes
seen so far: top-1 accuracy on all of them, on the base classes and on the novel classes.

Split files (the CEC / SAVC ``data/index_list/<dataset>/`` format)
------------------------------------------------------------------
A split is a folder of ``session_1.txt .. session_S.txt``, one training item per line, no
header. Session ``s`` introduces the classes of its items that no earlier session had. A
line is either

- an integer: the index of the item in the dataset's training split (CIFAR-100 in the
  reference split lists: ``session_1.txt`` lists the 30,000 images of classes 0-59, each of
  ``session_2.txt .. session_9.txt`` 25 indices: 5 classes x 5 shots; ``digits32`` here); or
- a relative image path, matched by its *file name* against the dataset's ``paths``
  (CUB-200: ``CUB_200_2011/images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg``;
  miniImageNet: ``MINI-ImageNet/train/n01532829/n0153282900000005.jpg``).

Classes are renumbered in the order the sessions introduce them (base classes first, each
session's classes in increasing original label): with the reference lists this is the
identity.

The tiny preset's split (:func:`make_split`, written into ``RUN/split/`` by ``train``):
``digits32`` classes 0-5 are the base classes (every training image), then sessions of
``ways`` classes in label order (6-7, 8-9), each class with ``shots`` training images drawn
without replacement by ``numpy.random.default_rng(split_seed)`` (class by class, in label
order) and written sorted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from workbench.errors import DataError, ValidationError
from workbench.storage import atomic_path

_SESSION_FILE = re.compile(r"^session_(\d+)\.txt$")


@dataclass(frozen=True)
class FSCILSplit:
    """Sessions of a few-shot class-incremental protocol over one dataset.

    Attributes
    ----------
    sessions : tuple of ndarray of int64
        Training-split indices of each session's items (session 1 = base).
    classes : tuple of tuple of int
        Original labels introduced by each session, in the renumbered order.
    """

    sessions: tuple[np.ndarray, ...]
    classes: tuple[tuple[int, ...], ...]

    @property
    def order(self) -> tuple[int, ...]:
        """Original labels in renumbered order: ``order[new] = original``."""
        return tuple(c for session in self.classes for c in session)

    @property
    def num_base(self) -> int:
        return len(self.classes[0])

    @property
    def num_sessions(self) -> int:
        return len(self.sessions)

    def seen(self, session: int) -> int:
        """Number of classes seen after session ``session`` (1-based)."""
        return sum(len(c) for c in self.classes[:session])

    def relabel(self) -> dict[int, int]:
        """``{original label: new label}`` for every class of the split."""
        return {c: i for i, c in enumerate(self.order)}

    def describe(self) -> dict:
        return {"sessions": self.num_sessions, "base_classes": list(self.classes[0]),
                "novel_classes": [list(c) for c in self.classes[1:]],
                "items": [int(len(s)) for s in self.sessions]}


def _classes_of(sessions: list[np.ndarray], targets: np.ndarray) -> tuple[tuple[int, ...], ...]:
    known: set[int] = set()
    classes = []
    for s, indices in enumerate(sessions, 1):
        new = sorted(set(int(t) for t in targets[indices]) - known)
        if not new:
            raise DataError(f"session {s} introduces no new class")
        known.update(new)
        classes.append(tuple(new))
    return tuple(classes)


def make_split(targets, *, base_classes: int, ways: int, shots: int, sessions: int, seed: int = 0) -> FSCILSplit:
    """The tiny preset's split: classes in label order, ``shots`` seeded training images per novel class.

    Parameters
    ----------
    targets : array-like of int, shape (n_train,)
        Labels of the training split.
    base_classes, ways, shots : int
        Base classes (every image), classes per incremental session, images per novel class.
    sessions : int
        Incremental sessions (``base_classes + sessions * ways`` classes are needed).
    seed : int
        Seeds ``numpy.random.default_rng`` that draws the shots.
    """
    targets = np.asarray(targets, dtype=np.int64)
    labels = np.unique(targets)
    needed = base_classes + sessions * ways
    if min(base_classes, ways, shots) < 1 or sessions < 0:
        raise ValidationError(f"base_classes, ways and shots must be >= 1 and sessions >= 0; found "
                              f"{base_classes}, {ways}, {shots}, {sessions}")
    if needed > len(labels):
        raise ValidationError(f"{base_classes} base classes + {sessions} sessions x {ways} ways = {needed} classes, "
                              f"but the data have {len(labels)}")
    rng = np.random.default_rng(seed)
    base = labels[:base_classes]
    out = [np.flatnonzero(np.isin(targets, base))]
    for s in range(sessions):
        picked = []
        for c in labels[base_classes + s * ways: base_classes + (s + 1) * ways]:
            pool = np.flatnonzero(targets == c)
            if len(pool) < shots:
                raise ValidationError(f"class {c} has {len(pool)} training images, fewer than shots={shots}")
            picked.append(rng.choice(pool, size=shots, replace=False))
        out.append(np.sort(np.concatenate(picked)))
    return FSCILSplit(tuple(o.astype(np.int64) for o in out), _classes_of(out, targets))


def write_split(split: FSCILSplit, folder: str | os.PathLike) -> list[Path]:
    """Write ``session_1.txt .. session_S.txt`` (one training index a line) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s, indices in enumerate(split.sessions, 1):
        path = folder / f"session_{s}.txt"
        with atomic_path(path) as tmp:
            tmp.write_text("".join(f"{int(i)}\n" for i in indices))
        paths.append(path)
    return paths


def read_split(folder: str | os.PathLike, targets, paths=None) -> FSCILSplit:
    """Read a split folder (see the module docstring) against a training split.

    Parameters
    ----------
    folder : path
        Holds ``session_1.txt .. session_S.txt`` (numbered 1..S without gaps).
    targets : array-like of int, shape (n_train,)
        Labels of the training split.
    paths : sequence of str, optional
        Image path of every training item (needed by split files of path lines).

    Raises
    ------
    DataError
        Missing folder or session file, a gap in the numbering, an index out of range, a path
        that matches no training image, a session without new class; the message names the file
        and line.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"split folder {folder} does not exist; expected session_1.txt .. session_S.txt in it")
    numbers = sorted(int(m.group(1)) for p in folder.iterdir() if (m := _SESSION_FILE.match(p.name)))
    if not numbers:
        raise DataError(f"split folder {folder} holds no session_<n>.txt file")
    if numbers != list(range(1, len(numbers) + 1)):
        raise DataError(f"split folder {folder}: session files {numbers}; expected session_1.txt .. "
                        f"session_{len(numbers)}.txt without gaps")
    targets = np.asarray(targets, dtype=np.int64)
    by_name = None
    sessions = []
    for s in numbers:
        file = folder / f"session_{s}.txt"
        lines = [(i, line.strip()) for i, line in enumerate(file.read_text().splitlines(), 1) if line.strip()]
        if not lines:
            raise DataError(f"{file} is empty; expected one training item per line")
        indices = []
        for lineno, text in lines:
            if text.isdigit():
                index = int(text)
                if index >= len(targets):
                    raise DataError(f"{file} line {lineno}: index {index} is out of range; the training split "
                                    f"has {len(targets)} items")
            else:
                if paths is None:
                    raise DataError(f"{file} line {lineno}: {text!r} is not an integer index, and this dataset "
                                    "has no image paths to match it against")
                if by_name is None:
                    by_name = {}
                    for i, p in enumerate(paths):
                        by_name.setdefault(Path(p).name, i)
                name = Path(text).name
                if name not in by_name:
                    raise DataError(f"{file} line {lineno}: image {text!r} (file name {name!r}) is not in the "
                                    "training split")
                index = by_name[name]
            indices.append(index)
        sessions.append(np.asarray(indices, dtype=np.int64))
    try:
        classes = _classes_of(sessions, targets)
    except DataError as exc:
        raise DataError(f"split folder {folder}: {exc}") from None
    return FSCILSplit(tuple(sessions), classes)


class SessionSubset(Dataset):
    """Items ``indices`` of ``dataset`` with labels renumbered by ``mapping`` (original -> new)."""

    def __init__(self, dataset, indices, mapping: dict[int, int]):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        base_targets = np.asarray(dataset.targets)
        self.targets = [mapping[int(base_targets[i])] for i in self.indices]
        self.mapping = dict(mapping)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        image, label = self.dataset[int(self.indices[i])]
        return image, self.mapping[int(label)]


def session_test_set(test, split: FSCILSplit, session: int) -> SessionSubset:
    """Every test item of the classes seen after ``session`` (1-based), renumbered."""
    seen = set(split.order[:split.seen(session)])
    targets = np.asarray(test.targets)
    indices = np.flatnonzero(np.isin(targets, sorted(seen)))
    return SessionSubset(test, indices, split.relabel())


@torch.no_grad()
def view_features(net, dataset, *, batch_size: int = 256, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of every fantasy view: ``(features (N, M, d), labels (N,))`` (network in eval mode)."""
    from workbench.models.savc import apply_fantasy

    was_training = net.training
    net.eval()
    feats, labels = [], []
    try:
        for images, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            f = net.features(apply_fantasy(images.to(device), net.fantasy))
            feats.append(f.reshape(len(images), net.m, -1).cpu())
            labels.append(torch.as_tensor(y))
    finally:
        net.train(was_training)
    return torch.cat(feats), torch.cat(labels)


@torch.no_grad()
def set_prototypes(net, features: torch.Tensor, labels: torch.Tensor, classes) -> torch.Tensor:
    """Set classifier rows ``c * M + m`` to the mean embedding of view ``m`` of class ``c``.

    Parameters
    ----------
    net : SAVCNet
    features : torch.Tensor, shape (N, M, d)
        From :func:`view_features`.
    labels : torch.Tensor, shape (N,)
        Renumbered class of each item.
    classes : iterable of int
        Renumbered classes whose rows are set (each must have at least one item).

    Returns
    -------
    torch.Tensor, shape (len(classes) * M, d)
        The prototypes written, in row order.
    """
    rows = []
    for c in classes:
        mask = labels == int(c)
        if not bool(mask.any()):
            raise DataError(f"class {c} has no training item: cannot compute its prototype")
        proto = features[mask].mean(0)  # (M, d)
        net.fc.weight.data[int(c) * net.m:(int(c) + 1) * net.m] = proto.to(net.fc.weight.dtype)
        rows.append(proto)
    return torch.cat(rows)


@torch.no_grad()
def session_accuracy(net, test, split: FSCILSplit, session: int, *, batch_size: int = 256,
                     device="cpu") -> dict[str, float]:
    """Top-1 accuracy after ``session`` over the seen classes: ``acc_all``, ``acc_base``, ``acc_novel``.

    Inference is the aggregated cosine classifier of :meth:`SAVCNet.forward` restricted to the
    seen classes (``net.num_seen`` is set to their number). ``acc_novel`` is None in session 1 (no novel class yet).
    """
    seen = split.seen(session)
    net.num_seen.fill_(seen)
    was_training = net.training
    net.eval()
    preds, labels = [], []
    try:
        for images, y in DataLoader(session_test_set(test, split, session), batch_size=batch_size, shuffle=False):
            preds.append(net(images.to(device)).argmax(1).cpu())
            labels.append(torch.as_tensor(y))
    finally:
        net.train(was_training)
    pred, label = torch.cat(preds), torch.cat(labels)
    correct = pred == label
    base = label < split.num_base
    return {"acc_all": float(correct.float().mean()),
            "acc_base": float(correct[base].float().mean()),
            "acc_novel": float(correct[~base].float().mean()) if bool((~base).any()) else None}


def run_sessions(net, train_plain, test, split: FSCILSplit, *, device="cpu") -> list[dict]:
    """Prototype classifier over all sessions; the backbone is never updated.

    Session 1 sets the base classes' rows from every base training item, each later session
    the new classes' rows from their K shots (``train_plain``: the training split without
    augmentation). Returns one row per session: ``session``, ``classes`` (seen), accuracies.
    """
    mapping = split.relabel()
    results = []
    for s in range(1, split.num_sessions + 1):
        items = SessionSubset(train_plain, split.sessions[s - 1], mapping)
        feats, labels = view_features(net, items, device=device)
        first = split.seen(s - 1)
        set_prototypes(net, feats, labels, range(first, split.seen(s)))
        results.append({"session": s, "classes": split.seen(s), **session_accuracy(net, test, split, s, device=device)})
    return results
