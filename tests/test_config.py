"""The config base shared by Protocol and TrainConfig: types, spellings, hints, one fingerprint."""

import dataclasses
import hashlib
import json
from typing import ClassVar

import numpy as np
import pytest

from workbench.analysis import Protocol
from workbench.config import FINGERPRINT_DIGITS, Config
from workbench.errors import ValidationError
from workbench.training import TrainConfig, config_hash


@dataclasses.dataclass(frozen=True)
class Toy(Config):
    OPTION: ClassVar[str] = "--toy"
    CHOICES: ClassVar[dict] = {"mode": ("fast", "slow")}

    flag: bool = False
    count: int = 1
    rate: float = 0.5
    mode: str = "fast"
    root: str | None = None
    steps: tuple[int, ...] = ()
    names: frozenset[str] = frozenset()
    weights: dict[str, float] = dataclasses.field(default_factory=dict)


@pytest.mark.parametrize("text, value", [(w, True) for w in ("true", "YES", "on", "1")]
                         + [(w, False) for w in ("false", "No", "off", "0")])
def test_one_set_of_boolean_spellings_for_every_config(text, value):
    assert Toy.parse_overrides([f"flag={text}"]) == {"flag": value}
    assert Protocol.parse_overrides([f"zscore={text}"]) == {"zscore": value}
    assert TrainConfig.parse_overrides([f"augment={text}"]) == {"augment": value}


def test_values_parse_to_the_annotated_types():
    parsed = Toy.parse_overrides(["count=7", "rate=1e-3", "root=none", "steps=[3, 5]", "names=b, 'a'",
                                  "weights={x: 0.25, y:1}"])
    assert parsed == {"count": 7, "rate": 1e-3, "root": None, "steps": (3, 5), "names": ["a", "b"],
                      "weights": {"x": 0.25, "y": 1.0}}
    assert Toy.parse_overrides(["root=/data", "steps=", "names=none"]) == {"root": "/data", "steps": (), "names": []}


def test_a_dict_with_nested_values_is_read_as_yaml_flow_syntax():
    """A dict field's nested lists and dicts (``--set arch_kwargs={widths: [8, 8], norm: group}``)."""
    parsed = TrainConfig.parse_overrides(["arch_kwargs={widths: [8, 8, 8], feature_dim: 8, norm: group}"])
    assert parsed == {"arch_kwargs": {"feature_dim": 8, "norm": "group", "widths": [8, 8, 8]}}
    nested = TrainConfig.parse_overrides(["arch_kwargs={block: {width: 8, depth: 2}}"])  # ends in "}}"
    assert nested == {"arch_kwargs": {"block": {"width": 8, "depth": 2}}}
    with pytest.raises(ValidationError, match="arch_kwargs"):
        TrainConfig.parse_overrides(["arch_kwargs={widths: [8, 8}"])


@pytest.mark.parametrize("pair, message", [
    ("count=2.5", "--toy 'count=2.5': count expects an integer, found '2.5'"),
    ("flag=maybe", "--toy 'flag=maybe': flag expects true or false (also yes/no, on/off, 1/0), found 'maybe'"),
    ("steps=1,x", "--toy 'steps=1,x': steps expects a comma-separated list, found '1,x'"),
    ("weights=x", "--toy 'weights=x': weights expects KEY:VALUE pairs separated by commas, found 'x'"),
    ("count", "--toy expects FIELD=VALUE, found 'count'; it takes every value up to the next option, so put "
              "positional arguments before --toy (or end its values with --)"),
    ("cont=2", "--toy 'cont=2': Toy has no field 'cont'; did you mean 'count'? (fields: flag, count, rate, mode, "
               "root, steps, names, weights)"),
])
def test_parse_errors_name_the_option_the_text_and_what_was_expected(pair, message):
    with pytest.raises(ValidationError) as info:
        Toy.parse_overrides([pair])
    assert str(info.value) == message


def test_construction_coerces_strictly():
    toy = Toy(flag=np.int64(1), count=4.0, rate=2, steps=[1, 2], names=["b", "a"], weights={"b": 1, "a": 0})
    assert (toy.flag, toy.count, toy.rate, toy.steps, toy.names) == (True, 4, 2.0, (1, 2), frozenset({"a", "b"}))
    assert type(toy.count) is int and type(toy.rate) is float and list(toy.weights) == ["a", "b"]
    assert toy == Toy(flag=True, count=4, rate=2.0, steps=(1, 2), names={"a", "b"}, weights={"a": 0.0, "b": 1.0})
    for changes, message in [({"count": True}, "Toy.count must be an integer, found True"),
                             ({"flag": 2}, "Toy.flag must be true or false (also yes/no, on/off, 1/0), found 2"),
                             ({"root": 3}, "Toy.root must be a string or none, found 3"),
                             ({"weights": {"a": "x"}}, "Toy.weights['a'] must be a number, found 'x'"),
                             ({"mode": "fats"}, "Toy.mode='fats' is not valid; expected one of ['fast', 'slow']; "
                                                "did you mean 'fast'?")]:
        with pytest.raises(ValidationError) as info:
            Toy(**changes)
        assert str(info.value) == message


def test_replace_from_dict_and_to_dict():
    toy = Toy().replace(count=3)
    assert toy.count == 3 and Toy.from_dict(toy.to_dict()) == toy
    assert toy.to_dict()["steps"] == [] and Toy(names={"b", "a"}).to_dict()["names"] == ["a", "b"]
    with pytest.raises(ValidationError, match=r"^Toy has no field 'rates'; did you mean 'rate', "):
        toy.replace(rates=1.0)
    with pytest.raises(ValidationError, match=r"^saved.json: Toy.count must be an integer, found 'x'$"):
        Toy.from_dict({"count": "x"}, where="saved.json")


def test_one_fingerprint_length_computed_from_the_canonical_json():
    expected = hashlib.sha256(json.dumps(Toy().to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    assert FINGERPRINT_DIGITS == 16 and Toy().fingerprint == expected
    assert Protocol().fingerprint == hashlib.sha256(Protocol().to_json().encode()).hexdigest()[:16]
    config = TrainConfig()
    payload = {"class": "TrainConfig", "fields": {k: v for k, v in config.to_dict().items()
                                                  if k not in ("device", "num_workers", "log_every", "checkpoint_every")}}
    assert config_hash(config) == hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize("config, keyword, message", [
    (Toy, "cont", "Toy has no field 'cont'; did you mean 'count'? (fields: flag, count, rate, mode, root, steps, "
                  "names, weights)"),
    (Protocol, "timesteps", "Protocol has no field 'timesteps'; did you mean 'time_steps'? (fields: "),
    (TrainConfig, "epoch", "TrainConfig has no field 'epoch'; did you mean 'epochs'? (fields: "),
])
def test_an_unknown_keyword_names_the_field_with_hints_and_every_field(config, keyword, message):
    with pytest.raises(ValidationError) as info:
        config(**{keyword: 8})
    assert str(info.value).startswith(message) and all(name in str(info.value) for name in config.field_names())


def test_a_fingerprint_of_a_set_is_the_same_on_every_run():
    """Sets are hashed in sorted order, not in their (hash-seed dependent) iteration order."""
    from workbench.config import fingerprint_of

    names = [f"region_{i}" for i in range(12)]
    assert fingerprint_of({"regions": frozenset(names)}) == fingerprint_of({"regions": sorted(names)})
    with pytest.raises(TypeError, match="found object"):
        fingerprint_of({"x": object()})


def test_a_positional_argument_after_an_override_option_says_where_to_put_it():
    with pytest.raises(ValidationError, match=r"found 'resnet18'; .*put positional arguments before --toy "
                                              r"\(or end its values with --\)"):
        Toy.parse_overrides(["count=2", "resnet18"])
