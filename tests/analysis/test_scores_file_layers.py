"""scores.nc indexes its layers by name (issue 30, point 17): ``.sel(layer="layer2.1")`` works on
the file, load_scores restores the positional schema exactly, and files written before are read."""

import numpy as np
import xarray as xr
from analysis_factory import make_scores

from workbench.analysis import load_scores, save_scores
from workbench.analysis.results import LAYER_POSITION


def _scores():
    scores = make_scores(models={"sew_resnet18": ("snn", 5), "resnet18": ("cnn", 4), "alexnet": ("cnn", 3)})
    names = scores["layer_name"].values
    names[0, :5] = ["conv1", "layer1.0", "layer2.1", "layer3.0", "fc"]
    names[1, :4] = ["conv1", "layer2.1", "layer4.1", "fc"]
    return scores


def test_scores_nc_selects_layers_by_name(tmp_path):
    scores = _scores()
    save_scores(scores, tmp_path)
    stored = xr.load_dataset(tmp_path / "scores.nc", engine="h5netcdf")
    # the same layer name is one index entry, each model's cell where the model has it
    cell = stored["score"].sel(model="resnet18", layer="layer2.1", region="cowley2023_v4/V4", metric="rsa")
    assert float(cell) == float(scores["score"].sel(model="resnet18", layer=1, region="cowley2023_v4/V4",
                                                    metric="rsa"))
    sew = stored["score"].sel(model="sew_resnet18", layer="layer2.1")
    np.testing.assert_array_equal(sew.values, scores["score"].sel(model="sew_resnet18", layer=2).values)
    assert list(stored["layer"].values[:6]) == ["conv1", "layer1.0", "layer2.1", "layer3.0", "fc", "layer4.1"]
    assert stored[LAYER_POSITION].sel(model="alexnet", layer="layer4.1").item() == -1
    assert np.isnan(stored["score"].sel(model="alexnet", layer="layer4.1")).all()


def test_load_scores_restores_the_positional_schema_and_reads_older_files(tmp_path):
    scores = _scores()
    save_scores(scores, tmp_path)
    loaded = load_scores(tmp_path)
    for name, var in scores.data_vars.items():
        assert loaded[name].dims == var.dims, name
        if var.dtype.kind == "f":
            np.testing.assert_array_equal(loaded[name].values, var.values)
        else:
            assert (loaded[name].values.astype(str) == var.values.astype(str)).all(), name
    np.testing.assert_array_equal(loaded["layer"].values, np.arange(scores.sizes["layer"]))
    # a file written before names indexed the layers (integer positions) is read as it was
    old = scores.copy()
    for name in ("layer_name", "error", "warning"):
        if name in old:
            old[name] = old[name].astype(str)
    old.to_netcdf(tmp_path / "old.nc", engine="h5netcdf")
    legacy = load_scores(tmp_path / "old.nc")
    np.testing.assert_array_equal(legacy["score"].values, scores["score"].values)
    assert (legacy["layer_name"].values == scores["layer_name"].values.astype(str)).all()
