import numpy as np
import pandas as pd
import pytest
import xarray as xr
from analysis_factory import make_scores

from workbench.analysis import load_scores, merge_scores, new_scores, save_scores, to_frame, validate_scores
from workbench.analysis.protocol import Protocol
from workbench.analysis.scores import relative_depths, stamp
from workbench.errors import DataError, ValidationError


def _part(model="m", layers=("a", "b", "c"), regions=("d/V1",), metrics=("cka", "rsa"), **kwargs):
    return new_scores(model=model, family="cnn", weights="random(seed=0)", layer_names=list(layers),
                      regions=list(regions), datasets=[r.split("/")[0] for r in regions],
                      species=["mouse"] * len(regions), metrics=list(metrics), **kwargs)


def test_relative_depths():
    np.testing.assert_allclose(relative_depths(5), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(relative_depths(1), [0])


def test_merge_pads_layers_and_unions_models_and_regions():
    a = _part("m1", layers=("a", "b", "c"), regions=("d1/V1",))
    a["score"].values[:] = 1.0
    a["applicable"].values[:] = True
    b = _part("m2", layers=("x", "y"), regions=("d2/IT",), metrics=("rsa",), n_time_steps=2)
    b["score"].values[:] = 2.0
    b["score_per_step"].values[:] = 3.0
    b["applicable"].values[:] = True
    b["ceiling"].values[:] = 0.5
    merged = merge_scores([a, b])
    assert dict(merged.sizes) == {"model": 2, "layer": 3, "region": 2, "metric": 2, "time_step": 2}
    assert list(merged["layer_name"].sel(model="m2").values) == ["x", "y", ""]
    np.testing.assert_allclose(merged["relative_depth"].sel(model="m2"), [0, 1, np.nan])
    assert merged["score"].sel(model="m2", layer=2).isnull().all()
    assert float(merged["score"].sel(model="m2", layer=1, region="d2/IT", metric="rsa")) == 2.0
    # cells no part computed stay NaN and not applicable
    assert merged["score"].sel(model="m1", region="d2/IT").isnull().all()
    assert not bool(merged["applicable"].sel(region="d2/IT", metric="cka"))
    assert float(merged["ceiling"].sel(region="d2/IT", metric="rsa")) == 0.5
    assert merged["score_per_step"].sel(model="m1").isnull().all()
    assert list(merged["dataset"].values) == ["d1", "d2"]
    validate_scores(merged)


def test_merge_rejects_conflicts():
    a, b = _part(), _part()
    a["score"].values[:] = 1.0
    b["score"].values[:] = 1.0
    with pytest.raises(ValidationError, match="set in two parts"):
        merge_scores([a, b])
    c = _part()
    c = c.assign_coords(family=("model", ["snn"]))
    with pytest.raises(ValidationError, match="family='cnn' in one part and 'snn'"):
        merge_scores([_part(), c])
    with pytest.raises(ValidationError, match="at least one"):
        merge_scores([])
    d, e = _part("m1"), _part("m2")
    d["ceiling"].values[:] = 0.5
    e["ceiling"].values[:] = 0.6
    with pytest.raises(ValidationError, match="2 ceiling"):
        merge_scores([d, e])


def test_merge_keeps_a_failed_models_error_with_no_layers():
    ok = _part("ok")
    failed = _part("bad", layers=(), error="RuntimeError: no weights")
    merged = merge_scores([ok, failed])
    assert merged["error"].sel(model="bad").item() == "RuntimeError: no weights"
    assert merged["error"].sel(model="ok").item() == ""
    assert list(merged["layer_name"].sel(model="bad").values) == ["", "", ""]


def test_error_and_warning_are_kept_apart_in_the_merge_the_files_and_the_csv(tmp_path):
    """Issue 18, point 4: ``error`` (cells without a score) and ``warning`` (caveats of scores)."""
    failed = _part("bad", layers=(), error="d: RuntimeError: no weights")
    warned = _part("silent", warning="rsa: 2 cell(s) left unscored: some stimuli have a zero-variance pattern")
    warned["score"].values[:] = 0.5
    warned["applicable"].values[:] = True
    other = _part("silent", regions=("e/IT",), warning="layer 'a', e/IT: bootstrap subsample of 8 stimuli: ...")
    merged = merge_scores([failed, warned, other])
    assert list(merged["error"].values) == ["d: RuntimeError: no weights", ""]
    assert list(merged["warning"].values) == [
        "", "rsa: 2 cell(s) left unscored: some stimuli have a zero-variance pattern; "
            "layer 'a', e/IT: bootstrap subsample of 8 stimuli: ..."]
    save_scores(merged, tmp_path)
    loaded = load_scores(tmp_path)
    assert list(loaded["warning"].values) == list(merged["warning"].values)
    frame = pd.read_csv(tmp_path / "scores.csv", keep_default_na=False)
    assert list(frame.columns[-2:]) == ["error", "warning"]
    assert set(frame[frame.model == "bad"].warning) == {""}
    assert set(frame[frame.model == "silent"].error) == {""}
    assert frame[frame.model == "silent"].warning.str.startswith("rsa: 2 cell(s) left unscored").all()
    assert frame[frame.model == "bad"].error.eq("d: RuntimeError: no weights").all()

    # a scores.nc written before the split has no `warning`: it reads as no caveats
    old = merged.drop_vars("warning")
    for var in ("layer_name", "error"):
        old[var] = old[var].astype(str)
    old.to_netcdf(tmp_path / "old.nc", engine="h5netcdf")
    legacy = load_scores(tmp_path / "old.nc")
    assert list(legacy["warning"].values) == ["", ""]
    assert list(legacy["error"].values) == ["d: RuntimeError: no weights", ""]
    assert (to_frame(legacy)["warning"] == "").all()
    # and a unit committed before the split merges with one after it
    assert list(merge_scores([old.sel(model=["silent"]), _part("new", warning="w")])["warning"].values) == ["", "w"]


def test_validate_rejects_scores_where_not_applicable():
    part = _part()
    part["score"].values[:] = 0.0
    with pytest.raises(ValidationError, match=r"not applicable: \[\('d/V1', 'cka'\), \('d/V1', 'rsa'\)\]"):
        validate_scores(part)
    with pytest.raises(ValidationError, match="no variable 'ceiling'"):
        validate_scores(_part().drop_vars("ceiling"))
    with pytest.raises(ValidationError, match="has dims"):
        validate_scores(_part().assign(error=("region", ["x"])))


def test_save_load_round_trip_and_tidy_csv(tmp_path):
    scores = stamp(make_scores(seed=2, with_ci=True), protocol=Protocol(bootstrap=10))
    nc_path, csv_path = save_scores(scores, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scores.csv", "scores.nc"]  # no temp leftovers
    loaded = load_scores(tmp_path / "out")
    xr.testing.assert_identical(loaded, scores)
    assert Protocol.from_json(loaded.attrs["protocol"]) == Protocol(bootstrap=10)

    frame = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
    n_layers = (scores["layer_name"] != "").sum("layer")
    assert len(frame) == int(n_layers.sum()) * scores.sizes["region"] * scores.sizes["metric"]
    row = frame[(frame.model == "resnet34") & (frame.layer == 5) & (frame.region == "toy_mouse/VISl") & (frame.metric == "cka")]
    assert len(row) == 1
    row = row.iloc[0]
    cell = dict(model="resnet34", layer=5, region="toy_mouse/VISl", metric="cka")
    assert row.score == pytest.approx(float(scores["score"].sel(cell)))
    assert row.ci_low == pytest.approx(float(scores["ci_low"].sel(cell)))
    assert row.ceiling == pytest.approx(float(scores["ceiling"].sel(region="toy_mouse/VISl", metric="cka")))
    assert row.relative_depth == pytest.approx(1.0)
    assert (row.layer_name, row.family, row.dataset, row.species) == ("layer5", "cnn", "toy_mouse", "mouse")
    not_applicable = frame[(frame.dataset == "kriegeskorte2008_92") & (frame.metric == "cka")]
    assert len(not_applicable) > 0 and not_applicable.score.isna().all() and not not_applicable.applicable.any()


def test_to_frame_without_ci_has_nan_columns():
    frame = to_frame(make_scores(seed=0))
    assert frame["ci_low"].isna().all() and frame["ci_high"].isna().all()


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match="no scores file"):
        load_scores(tmp_path)
    (tmp_path / "scores.nc").write_bytes(b"not netcdf")
    with pytest.raises(DataError, match="not a readable scores file"):
        load_scores(tmp_path / "scores.nc")


def test_stamp_records_protocol_versions_and_seed():
    stamped = stamp(_part(), protocol=Protocol(seed=7))
    assert stamped.attrs["seed"] == 7
    assert stamped.attrs["protocol_fingerprint"] == Protocol(seed=7).fingerprint
    assert '"numpy": "1.26.4"' in stamped.attrs["versions"]
    assert stamped.attrs["created"].endswith("+00:00")
