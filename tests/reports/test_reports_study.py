"""The report's header and tables, from the protocol, the manifests and the scores."""

import numpy as np
import pytest

from workbench.analysis import Protocol
from workbench.errors import ValidationError
from workbench.reports.study import make_protocol, report_header, resolve_weights, run_summary


@pytest.mark.parametrize("given, expected", [(None, None), ("", None), ("random", None),
                                             ("imagenet", "imagenet"), ("w.pt", "w.pt")])
def test_weights_spellings(given, expected):
    assert resolve_weights(given) == expected


def test_protocol_from_overrides_and_bad_types():
    assert make_protocol({"bootstrap": 5}) == Protocol(bootstrap=5)
    assert make_protocol(None) == Protocol()
    with pytest.raises(ValidationError, match="Protocol has no field"):
        make_protocol({"bootstraps": 5})
    with pytest.raises(ValidationError, match="found list"):
        make_protocol([("bootstrap", 5)])


def test_header_states_random_weights_first_then_protocol_citations_and_versions(tiny_dataset):
    text = report_header(["cornet_z"], [str(tiny_dataset)], protocol={"seed": 3, "bootstrap": 7})
    first = text.splitlines()[0]
    assert first.startswith("**Weights: random initialisation (seed=3)")
    assert Protocol(seed=3, bootstrap=7).describe() in text
    assert "`tiny_v1` (macaque; V1): Synthetic data written by the test suite. License: CC0." in text
    assert "torch " in text.splitlines()[-1] and "spikingjelly" in text.splitlines()[-1]


def test_header_names_published_weights_and_checkpoints(tiny_dataset):
    assert report_header(["m"], [str(tiny_dataset)], weights="imagenet").startswith("**Weights: published ImageNet")
    assert report_header(["m"], [str(tiny_dataset)], weights="/ckpt/w.pt").startswith("**Weights: checkpoint `/ckpt/w.pt`")


def test_summary_tables_match_a_direct_computation(scores):
    best, families = run_summary(scores)
    row = best[(best.model == "resnet18") & (best.region == "cowley2023_v4/V4") & (best.metric == "cka")].iloc[0]
    values = scores.score.sel(model="resnet18", region="cowley2023_v4/V4", metric="cka").values
    k = int(np.nanargmax(values))
    assert row.score == pytest.approx(values[k]) and row.layer_name == f"layer{k}"
    # not-applicable cells (the RDM-only region with cka) have no row
    assert not ((best.region == "kriegeskorte2008_92/IT (monkey)") & (best.metric == "cka")).any()
    assert len(best) == 4 * (3 + 1)  # 4 models x (3 metrics on V4 + rsa on IT)
    snn = families[(families.family == "snn") & (families.metric == "cka")].iloc[0]
    per_model = [np.nanmax(scores.score.sel(model=m, region="cowley2023_v4/V4", metric="cka").values)
                 for m in ("sew_resnet18", "spiking_vgg")]
    assert snn["mean"] == pytest.approx(np.mean(per_model)) and snn.n_models == 2


def test_a_run_where_no_model_scores_raises_with_each_models_error(tiny_dataset, isolated_caches, tmp_path,
                                                                  monkeypatch):
    from workbench.errors import DataError, WorkbenchError
    from workbench.reports.study import run_study

    # a missing checkpoint is refused before any work (issue 19): no run directory is made
    with pytest.raises(DataError, match=r"--weights for cornet_z: checkpoint .*missing.pt does not exist"):
        run_study(["cornet_z"], [str(tiny_dataset)], tmp_path / "early", weights=str(tmp_path / "missing.pt"),
                  progress=False)
    assert not (tmp_path / "early").exists()

    def failing_extraction(*args, **kwargs):
        raise RuntimeError("extraction failed")

    monkeypatch.setattr("workbench.activations.extract_stats", failing_extraction)
    with pytest.raises(WorkbenchError, match=r"no model produced any score, so no result file was written; "
                                             r"errors: cornet_z: .*tiny_v1.*extraction failed"):
        run_study(["cornet_z"], [str(tiny_dataset)], tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # issue 30: no result file, no store, not even the folder it made
    (tmp_path / "kept").mkdir()  # a folder that was there before the run stays
    with pytest.raises(WorkbenchError, match="no model produced any score"):
        run_study(["cornet_z"], [str(tiny_dataset)], tmp_path / "kept", progress=False)
    assert (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())
