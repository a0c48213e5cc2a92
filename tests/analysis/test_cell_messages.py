"""Errors and warnings per cell (issue 30, point 14): scores.csv carries each cell's own error or
caveat, never the model's on rows that have a score, and the terminal heading names the real
cause of each unscored cell."""

import pandas as pd
from test_zero_variance import DARK, dark_dataset, gated_model  # noqa: F401 (fixtures)

from workbench.analysis import Protocol, load_scores, sweep, unscored_summary
from workbench.analysis.sweeps import CellNotes

SVCCA_LIMIT = ("svcca: n_components=10 is out of range for X with 18 stimuli and 8 features; "
               "expected 1 <= n_components <= min(n_stimuli - 1, n_features) = 8")


def test_each_row_of_scores_csv_has_its_own_error_and_warning(gated_model, dark_dataset, tmp_path):  # noqa: F811
    protocol = Protocol(svcca_n_components=10, tsvd_n_components=3, batch_size=6, permutations=0,
                        zero_variance_stimuli="exclude")
    scores = sweep([gated_model], [dark_dataset], protocol=protocol, activation_cache=False, progress=False,
                   output_dir=tmp_path)
    frame = pd.read_csv(tmp_path / "scores.csv", keep_default_na=False)
    errors = frame[frame.error != ""]
    # the 8-unit linear layer "4" cannot give SVCCA 10 components: that cell, and no other row
    assert list(zip(errors.layer_name.astype(str), errors.region, errors.metric)) == [("4", "dark/V1", "svcca")]
    assert errors.error.tolist() == [SVCCA_LIMIT]
    assert (frame[frame.score != ""].error == "").all()
    # the silent layers' RSA rows, scored without the dark images, say so; no other row has a caveat
    warned = frame[frame.warning != ""]
    assert set(zip(warned.layer_name.astype(str), warned.metric)) == {("1", "rsa"), ("2", "rsa")}
    assert warned.warning.eq(f"scored without {len(DARK)} stimuli whose pattern has zero variance").all()
    # scores.nc keeps them per cell
    loaded = load_scores(tmp_path)
    assert loaded["cell_error"].sel(model=gated_model, layer=2, region="dark/V1", metric="svcca").item() == SVCCA_LIMIT
    assert (loaded["cell_error"] != "").sum().item() == 1
    # the terminal heading does not blame the zero-variance policy for the SVCCA cell
    text = unscored_summary(scores)
    assert text.splitlines()[0] == "1 unscored cell(s): the metric applies but gave no score:"
    assert f"  {gated_model} on dark/V1, svcca: 4 ({SVCCA_LIMIT[:117]}...)" in text.splitlines()


def test_cell_notes_attach_messages_to_the_metrics_they_name():
    notes = CellNotes(["svcca", "rsa", "cka"])
    notes.add(0, 0, "svcca: too few features")
    notes.add(0, 0, "bootstrap subsample of 8 stimuli: rsa/cka: undefined")
    notes.add(1, 0, "cka permutation null: failed")
    notes.add(1, 1, "the layer has no features")
    out = notes.array((1, 2, 2, 3))
    assert out[0, 0, 0].tolist() == ["svcca: too few features", "bootstrap subsample of 8 stimuli: rsa/cka: undefined",
                                     "bootstrap subsample of 8 stimuli: rsa/cka: undefined"]
    assert out[0, 1, 0].tolist() == ["", "", "cka permutation null: failed"]
    assert out[0, 1, 1].tolist() == ["the layer has no features"] * 3
