"""Configs, presets and overrides: strict types, named errors, a hash that ignores execution fields."""

import dataclasses

import pytest

from workbench.errors import ValidationError
from workbench.methods import get_method, list_methods
from workbench.training import TrainConfig, config_hash, resolve_config
from workbench.training.config import apply_overrides


def test_methods_are_registered_with_presets():
    assert "supervised" in list_methods()
    assert get_method("supervised").presets() == ["micro", "paper", "tiny"]


def test_unknown_method_suggests_close_name():
    with pytest.raises(ValidationError, match=r"unknown method 'supervized'; did you mean 'supervised'\?"):
        get_method("supervized")


def test_unknown_preset_lists_presets():
    with pytest.raises(ValidationError, match=r"unknown preset 'huge' of method 'supervised'; expected one of \['micro', 'paper', 'tiny'\]"):
        resolve_config(get_method("supervised"), "huge")


def test_unknown_key_lists_valid_keys_and_suggests():
    with pytest.raises(ValidationError, match=r"SupervisedConfig has no field 'epoch'; did you mean 'epochs'.*\(fields: arch, "):
        resolve_config(get_method("supervised"), "tiny", ["epoch=3"])


@pytest.mark.parametrize("pair, message", [
    ("epochs=abc", r"--set 'epochs=abc': epochs expects an integer, found 'abc'"),
    ("augment=maybe", r"--set 'augment=maybe': augment expects true or false \(also yes/no, on/off, 1/0\), found 'maybe'"),
    ("lr=fast", r"--set 'lr=fast': lr expects a number, found 'fast'"),
    ("optimizer=lbfgs", r"SupervisedConfig.optimizer='lbfgs' is not valid; expected one of \['adamw', 'sgd'\]"),
    ("epochs=0", r"SupervisedConfig.epochs must be >= 1, found 0"),
    ("epochs", r"--set expects FIELD=VALUE, found 'epochs'"),
])
def test_bad_values_are_named(pair, message):
    with pytest.raises(ValidationError, match=message):
        resolve_config(get_method("supervised"), "tiny", [pair])


def test_values_parse_to_declared_types():
    assert TrainConfig.parse_value("augment", "false") is False
    assert TrainConfig.parse_value("epochs", "7") == 7
    assert TrainConfig.parse_value("lr", "1e-3") == pytest.approx(1e-3)
    assert TrainConfig.parse_value("data_root", "none") is None
    assert TrainConfig.parse_value("data_root", "/data") == "/data"
    assert TrainConfig.parse_value("arch_kwargs", "{norm: group}") == {"norm": "group"}
    values = apply_overrides(TrainConfig, {}, ["epochs=2", "augment=0"])
    assert values == {"epochs": 2, "augment": False}


def test_a_config_object_rejects_wrong_types():
    with pytest.raises(ValidationError, match=r"TrainConfig.epochs must be an integer, found '3'"):
        TrainConfig(epochs="3")
    with pytest.raises(ValidationError, match=r"TrainConfig.batch_size must be an integer, found True"):
        TrainConfig(batch_size=True)
    assert TrainConfig(lr=1).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)  # one config, one hash
    assert TrainConfig(milestones=[3, 5]).milestones == (3, 5)


def test_hash_ignores_execution_fields_only():
    base = TrainConfig()
    assert config_hash(base) == config_hash(dataclasses.replace(base, device="cuda", log_every=3))
    assert config_hash(base) != config_hash(dataclasses.replace(base, lr=0.1))
    assert config_hash(base) != config_hash(dataclasses.replace(base, seed=1))
    assert len(config_hash(base)) == 16 and int(config_hash(base), 16) >= 0


def test_seed_and_device_options_override_the_preset():
    config = resolve_config(get_method("supervised"), "tiny", ["seed=3"], seed=5, device="cpu")
    assert config.seed == 5 and config.device == "cpu"


def test_lr_schedules_step_by_step():
    import math

    from workbench.training.loop import lr_factor_fn

    cosine = lr_factor_fn(TrainConfig(epochs=2, warmup_epochs=1), steps_per_epoch=4)
    assert [cosine(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert [cosine(s) for s in range(4, 8)] == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)])
    multistep = lr_factor_fn(TrainConfig(epochs=4, scheduler="multistep", milestones=(1, 3), gamma=0.5), 2)
    assert [multistep(s) for s in range(8)] == [1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert TrainConfig.parse_value("milestones", "[30, 60]") == (30, 60)
    assert TrainConfig.parse_value("milestones", "30,60") == (30, 60)


@pytest.mark.parametrize("method, field, value, minimum", [
    ("part", "parts", 0, 1), ("mada", "num_anchors", 0, 1), ("mada", "adapt2_steps", -1, 0),
    ("savc", "small_crops", -1, 0), ("unidet", "fpn_channels", 0, 1), ("qsam", "meta_batch_size", 0, 1),
])
def test_method_config_minimums_name_the_class_and_field(method, field, value, minimum):
    cls = get_method(method).config_cls
    with pytest.raises(ValidationError, match=rf"^{cls.__name__}\.{field} must be >= {minimum}, found {value}$"):
        cls(**{field: value})
    cls(**{field: minimum})  # the bound itself is allowed
