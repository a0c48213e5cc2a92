"""``workbench models list``."""

from workbench.cli import main
from workbench.models import list_models, model_info


def test_models_list_shows_families_and_layer_counts(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for family in ("snn", "cnn", "vit"):
        assert f"{family} ({len(list_models(family=family))} models)" in out
    line = next(l for l in out.splitlines() if l.strip().startswith("sew_resnet18 "))
    assert f"{len(model_info('sew_resnet18').layers)} layers" in line and "T=4" in line


def test_models_list_filters(capsys):
    assert main(["models", "list", "--family", "vit", "--pattern", "vit_*"]) == 0
    out = capsys.readouterr().out
    assert "vit (4 models)" in out and "swin_t" not in out and "snn" not in out  # vit_b/l_16/32
