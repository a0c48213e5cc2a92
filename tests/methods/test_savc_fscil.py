"""The FSCIL protocol: split files (generated, CEC index and path formats, CUB/miniImageNet loaders),
prototypes, session accuracy, frozen backbone, and the separation analysis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from workbench.data.training import load_training_data
from workbench.errors import DataError
from workbench.methods.savc import fscil
from workbench.methods.savc.analysis import separation_rsa
from workbench.models.savc import SAVCNet, apply_fantasy


class Labelled(TensorDataset):
    def __init__(self, x, y):
        super().__init__(x, y)
        self.targets = y.tolist()

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x, int(y)


TARGETS = np.repeat(np.arange(6), 8)  # 6 classes x 8 items


def test_make_split_base_all_items_and_seeded_shots(tmp_path):
    split = fscil.make_split(TARGETS, base_classes=2, ways=2, shots=3, sessions=2, seed=4)
    assert split.classes == ((0, 1), (2, 3), (4, 5))
    assert np.array_equal(split.sessions[0], np.arange(16))
    for s, classes in ((1, (2, 3)), (2, (4, 5))):
        labels = TARGETS[split.sessions[s]]
        assert sorted(labels.tolist()) == sorted([c for c in classes for _ in range(3)])
        assert len(set(split.sessions[s].tolist())) == 6
    again = fscil.make_split(TARGETS, base_classes=2, ways=2, shots=3, sessions=2, seed=4)
    other = fscil.make_split(TARGETS, base_classes=2, ways=2, shots=3, sessions=2, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(split.sessions, again.sessions))
    assert not all(np.array_equal(a, b) for a, b in zip(split.sessions[1:], other.sessions[1:]))
    fscil.write_split(split, tmp_path / "split")
    assert (tmp_path / "split" / "session_2.txt").read_text().splitlines() == [str(i) for i in split.sessions[1]]
    back = fscil.read_split(tmp_path / "split", TARGETS)
    assert back.classes == split.classes
    assert all(np.array_equal(a, b) for a, b in zip(split.sessions, back.sessions))
    assert split.seen(1) == 2 and split.seen(3) == 6 and split.order == (0, 1, 2, 3, 4, 5)


def test_read_split_renumbers_in_session_order_and_reports_errors(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "session_1.txt").write_text("40\n41\n8\n")   # classes 5 and 1
    (folder / "session_2.txt").write_text("0\n1\n")        # class 0
    split = fscil.read_split(folder, TARGETS)
    assert split.classes == ((1, 5), (0,))
    assert split.relabel() == {1: 0, 5: 1, 0: 2}
    (folder / "session_4.txt").write_text("2\n")
    with pytest.raises(DataError, match="session_1.txt .. session_3.txt without gaps"):
        fscil.read_split(folder, TARGETS)
    (folder / "session_4.txt").unlink()
    (folder / "session_2.txt").write_text("0\n99\n")
    with pytest.raises(DataError, match=r"session_2.txt line 2: index 99 is out of range.*48 items"):
        fscil.read_split(folder, TARGETS)
    (folder / "session_2.txt").write_text("9\n")  # class 1 again: nothing new
    with pytest.raises(DataError, match="session 2 introduces no new class"):
        fscil.read_split(folder, TARGETS)
    (folder / "session_2.txt").write_text("MINI-ImageNet/train/n01/n0100000001.jpg\n")
    with pytest.raises(DataError, match="not an integer index"):
        fscil.read_split(folder, TARGETS)


def _png(path, value):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((10, 12, 3), value, dtype=np.uint8)).save(path)


def test_cub200_loader_and_path_split_files(tmp_path):
    root = tmp_path / "cub"
    cub = root / "CUB_200_2011"
    names = {1: "001.Albatross/Albatross_0001.jpg", 2: "001.Albatross/Albatross_0002.jpg",
             3: "002.Auklet/Auklet_0003.jpg", 4: "002.Auklet/Auklet_0004.jpg", 5: "003.Cowbird/Cowbird_0005.jpg",
             6: "003.Cowbird/Cowbird_0006.jpg"}
    for i, name in names.items():
        _png(cub / "images" / name, 20 * i)
    (cub / "images.txt").write_text("".join(f"{i} {n}\n" for i, n in names.items()))
    (cub / "train_test_split.txt").write_text("1 1\n2 0\n3 1\n4 0\n5 1\n6 0\n")
    (cub / "image_class_labels.txt").write_text("1 1\n2 1\n3 2\n4 2\n5 3\n6 3\n")
    data = load_training_data("cub200", root=root, augment=False)
    assert data.train.targets == [0, 1, 2] and data.test.targets == [0, 1, 2]
    assert data.train.paths[1].endswith("Auklet_0003.jpg")
    image, label = data.test[2]
    assert image.shape == (3, 224, 224) and label == 2
    split_dir = tmp_path / "index_list" / "cub200"
    split_dir.mkdir(parents=True)
    (split_dir / "session_1.txt").write_text("CUB_200_2011/images/001.Albatross/Albatross_0001.jpg\n"
                                             "CUB_200_2011/images/002.Auklet/Auklet_0003.jpg\n")
    (split_dir / "session_2.txt").write_text("CUB_200_2011/images/003.Cowbird/Cowbird_0005.jpg\n")
    split = fscil.read_split(split_dir, data.train.targets, data.train.paths)
    assert split.classes == ((0, 1), (2,))
    assert [s.tolist() for s in split.sessions] == [[0, 1], [2]]
    (split_dir / "session_2.txt").write_text("CUB_200_2011/images/003.Cowbird/Cowbird_0006.jpg\n")
    with pytest.raises(DataError, match="Cowbird_0006.jpg.*is not in the training split"):
        fscil.read_split(split_dir, data.train.targets, data.train.paths)
    (cub / "train_test_split.txt").write_text("1 1\n2 0\n3 1\n4 0\n5 1\n")
    with pytest.raises(DataError, match=r"train_test_split.txt lacks image id\(s\) \[6\]"):
        load_training_data("cub200", root=root)


def test_mini_imagenet_loader_and_path_split_files(tmp_path):
    mini = tmp_path / "miniimagenet"
    rows_train = [("n0200000001.jpg", "n02"), ("n0100000001.jpg", "n01"), ("n0200000002.jpg", "n02"),
                  ("n0300000001.jpg", "n03")]
    rows_test = [("n0100000009.jpg", "n01"), ("n0300000009.jpg", "n03")]
    for k, (name, _) in enumerate(rows_train + rows_test):
        _png(mini / "images" / name, 30 * k)
    (mini / "split").mkdir()
    (mini / "split" / "train.csv").write_text("filename,label\n" + "".join(f"{a},{b}\n" for a, b in rows_train))
    (mini / "split" / "test.csv").write_text("filename,label\n" + "".join(f"{a},{b}\n" for a, b in rows_test))
    data = load_training_data("mini_imagenet", root=tmp_path, augment=False)
    assert data.train.targets == [0, 1, 0, 2] and data.test.targets == [1, 2]
    assert data.classes == ("n02", "n01", "n03")
    assert data.test[0][0].shape == (3, 84, 84)
    split_dir = tmp_path / "index_list" / "mini_imagenet"
    split_dir.mkdir(parents=True)
    (split_dir / "session_1.txt").write_text("MINI-ImageNet/train/n02/n0200000001.jpg\n"
                                             "MINI-ImageNet/train/n02/n0200000002.jpg\n")
    (split_dir / "session_2.txt").write_text("MINI-ImageNet/train/n01/n0100000001.jpg\n")
    (split_dir / "session_3.txt").write_text("MINI-ImageNet/train/n03/n0300000001.jpg\n")
    split = fscil.read_split(split_dir, data.train.targets, data.train.paths)
    assert split.classes == ((0,), (1,), (2,)) and split.sessions[2].tolist() == [3]
    (mini / "split" / "test.csv").write_text("filename,label\nn0900000001.jpg,n09\n")
    with pytest.raises(DataError, match=r"wnid\(s\) \['n09'\] that train.csv lacks"):
        load_training_data("mini_imagenet", root=tmp_path)


def _tiny_net(fantasy="rotation2", classes=4):
    torch.manual_seed(1)
    return SAVCNet(classes, fantasy=fantasy, backbone="tiny", widths=(4, 4, 8, 8), moco_dim=4).eval()


def test_prototypes_equal_class_means_of_each_view():
    net = _tiny_net()
    x = torch.randn(6, 3, 16, 16)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    feats, labels = fscil.view_features(net, Labelled(x, y))
    with torch.no_grad():
        direct = net.features(apply_fantasy(x, "rotation2")).reshape(6, 2, -1)
    assert torch.allclose(feats, direct, atol=1e-6) and labels.tolist() == y.tolist()
    untouched = net.fc.weight[4:].clone()
    fscil.set_prototypes(net, feats, labels, [0, 1])
    for c in (0, 1):
        for m in (0, 1):
            assert torch.allclose(net.fc.weight[c * 2 + m], direct[y == c, m].mean(0), atol=1e-6)
    assert torch.equal(net.fc.weight[4:], untouched)


def test_sessions_keep_the_backbone_bit_identical_and_accuracy_is_direct():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, 16, 16, generator=g)
    y = torch.arange(4).repeat(6)
    train, test = Labelled(x[:16], y[:16]), Labelled(x[16:] + 0.05, y[16:])
    split = fscil.FSCILSplit((np.flatnonzero(y[:16].numpy() < 2), np.array([2, 3, 6, 7])), ((0, 1), (2, 3)))
    net = _tiny_net()
    net.num_seen.fill_(2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rows = fscil.run_sessions(net, train, test, split)
    after = net.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert sorted(changed) == ["fc.weight", "num_seen"]
    assert [r["classes"] for r in rows] == [2, 4] and rows[0]["acc_novel"] is None
    with torch.no_grad():
        pred = net(test.tensors[0]).argmax(1)
    truth = test.tensors[1]
    assert rows[1]["acc_all"] == pytest.approx(float((pred == truth).float().mean()))
    assert rows[1]["acc_novel"] == pytest.approx(float((pred == truth)[truth >= 2].float().mean()))
    assert rows[1]["acc_base"] == pytest.approx(float((pred == truth)[truth < 2].float().mean()))


def test_separation_rsa_matches_scipy_spearman():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2, 3], 4)
    x = rng.normal(size=(16, 5)) + 2 * np.eye(5)[labels]
    out = separation_rsa(x, labels, num_base=2)
    model = 1 - np.corrcoef(x)
    cat = (labels[:, None] != labels[None, :]).astype(float)
    iu = np.triu_indices(16, 1)
    base = labels < 2
    pair_sets = {"base_base": base[iu[0]] & base[iu[1]], "novel_novel": ~base[iu[0]] & ~base[iu[1]],
                 "base_novel": (base[iu[0]] != base[iu[1]]) | (cat[iu] == 0)}
    for name, keep in pair_sets.items():
        assert out[name] == pytest.approx(spearmanr(model[iu][keep], cat[iu][keep])[0], abs=1e-10)
    separated = np.eye(4)[labels] * 5 + rng.normal(size=(16, 4)) * 0.01
    # a binary model caps Spearman's rho below 1; separated classes come close to the cap, noise near 0
    assert separation_rsa(separated, labels, 2)["base_novel"] > 0.7
    assert abs(separation_rsa(rng.normal(size=(16, 4)), labels, 2)["base_novel"]) < 0.3
