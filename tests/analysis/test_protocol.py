import dataclasses
import json
import pickle

import pytest

from workbench.analysis import Protocol
from workbench.analysis.protocol import ALLEN_NATURAL_SCENES
from workbench.errors import ValidationError


def test_defaults_are_the_studys_choices():
    p = Protocol()
    assert (p.zscore, p.time_steps, p.time_reduce, p.svcca_n_components) == (True, 4, "mean", 40)
    assert p.reduces_neural(ALLEN_NATURAL_SCENES)
    assert not p.reduces_neural("cowley2023_v4")  # macaque data enter unreduced
    assert p.bootstrap == 0


def test_frozen_and_replace():
    p = Protocol()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.time_steps = 8
    q = p.replace(time_steps=8)
    assert q.time_steps == 8 and p.time_steps == 4
    with pytest.raises(ValidationError, match=r"Protocol has no field 'timesteps'; did you mean 'time_steps'.*\? \(fields: zscore, time_steps, "):
        p.replace(timesteps=8)


def test_json_round_trip_pickle_and_fingerprint():
    p = Protocol(reliability_threshold={"cowley2023_v4": 0.4}, reduce_neural_for={"a", "b"}, bootstrap=5)
    assert Protocol.from_json(p.to_json()) == p
    assert pickle.loads(pickle.dumps(p)) == p
    assert json.loads(p.to_json())["reduce_neural_for"] == ["a", "b"]
    assert p.fingerprint == Protocol.from_json(p.to_json()).fingerprint
    assert p.fingerprint != p.replace(bootstrap=6).fingerprint
    with pytest.raises(ValidationError, match=r"Protocol has no field 'colour' \(fields: zscore, "):
        Protocol.from_dict({"colour": "red"})


def test_describe_lists_every_choice():
    text = Protocol().describe()
    assert text.splitlines()[0] == f"Protocol {Protocol().fingerprint}"
    for field in dataclasses.fields(Protocol):
        assert f"  {field.name} " in text
    assert "manifest defaults" in text


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"time_steps": 0}, "time_steps must be >= 1"),
        ({"bootstrap": -1}, "bootstrap must be >= 0"),
        ({"time_reduce": "sum"}, "time_reduce=.sum. is not valid"),
        ({"bootstrap_fraction": 1.0}, r"bootstrap_fraction must lie in \(0, 1\)"),
        ({"ci_level": 95}, "ci_level must lie"),
        ({"reliability_threshold": {"x": 2.0}}, r"reliability_threshold\['x'\]=2.0 is not a correlation"),
    ],
)
def test_bad_values_raise(changes, match):
    with pytest.raises(ValidationError, match=match):
        Protocol(**changes)
