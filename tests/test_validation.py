"""The shared input checkers: what they accept, and that their messages name the problem."""

import numpy as np
import pytest
import torch

from workbench.errors import ValidationError
from workbench.validation import as_numpy, check_array, check_choice, check_finite, check_same_rows, did_you_mean


def test_as_numpy_detaches_torch_tensors():
    tensor = torch.arange(6.0, requires_grad=True).reshape(2, 3)
    arr = as_numpy(tensor, "x")
    assert isinstance(arr, np.ndarray)
    np.testing.assert_array_equal(arr, [[0, 1, 2], [3, 4, 5]])


def test_check_array_keeps_float_precision_and_converts_the_rest():
    assert check_array(np.ones((2, 2), dtype=np.float32), "x").dtype == np.float32
    assert check_array(np.ones((2, 2), dtype=np.float64), "x").dtype == np.float64
    assert check_array(np.ones((2, 2), dtype=np.int16), "x").dtype == np.float64
    assert check_array(np.ones((2, 2), dtype=bool), "x").dtype == np.float64


def test_check_array_messages():
    with pytest.raises(ValidationError, match=r"feats must be a 2-D array, found 3-D with shape \(1, 2, 3\)"):
        check_array(np.zeros((1, 2, 3)), "feats")
    with pytest.raises(ValidationError, match=r"feats has 2 row\(s\) \(shape=\(2, 4\)\); at least 3 required"):
        check_array(np.zeros((2, 4)), "feats", min_rows=3)
    with pytest.raises(ValidationError, match=r"feats has 0 column\(s\) \(shape=\(2, 0\)\); at least 1 required"):
        check_array(np.zeros((2, 0)), "feats")
    with pytest.raises(ValidationError, match=r"feats must be numeric, found dtype <U1"):
        check_array(np.array([["a", "b"]]), "feats")
    bad = np.zeros((3, 3))
    bad[2, 1] = -np.inf
    with pytest.raises(ValidationError, match=r"feats contains 1 NaN or inf value\(s\) \(first at index \(2, 1\), shape=\(3, 3\)\)"):
        check_array(bad, "feats")


def test_check_array_can_leave_finiteness_to_the_caller():
    bad = np.full((2, 2), np.nan)
    assert np.isnan(check_array(bad, "x", finite=False)).all()
    with pytest.raises(ValidationError, match="x contains 4 NaN"):
        check_finite(bad, "x")


def test_check_same_rows_and_check_choice():
    check_same_rows(np.zeros((3, 1)), np.zeros((3, 5)))
    with pytest.raises(ValidationError, match=r"found 3 rows in X \(shape=\(3, 1\)\) and 4 rows in Y \(shape=\(4, 5\)\)"):
        check_same_rows(np.zeros((3, 1)), np.zeros((4, 5)))
    check_choice("a", "mode", {"a", "b"})
    with pytest.raises(ValidationError, match=r"mode='c' is not valid; expected one of \['a', 'b'\]"):
        check_choice("c", "mode", {"a", "b"})


def test_did_you_mean_names_up_to_three_close_choices_or_nothing():
    assert did_you_mean("resnet19", ["resnet18", "alexnet"]) == "; did you mean 'resnet18'?"
    assert did_you_mean("time_step", ["time_steps", "time_reduce", "seed"]) == "; did you mean 'time_steps', 'time_reduce'?"
    assert did_you_mean("mnist", ["cifar10", "digits32"]) == ""
    assert did_you_mean(7, ["7a", "x"]) == "; did you mean '7a'?"  # non-string values are compared as text


def test_check_choice_adds_the_hint():
    with pytest.raises(ValidationError) as info:
        check_choice("linaer", "kernel", ("linear", "rbf"))
    assert str(info.value) == "kernel='linaer' is not valid; expected one of ['linear', 'rbf']; did you mean 'linear'?"
