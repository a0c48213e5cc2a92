"""workbench/metrics/README.md's table of untidy inputs says what each metric does: check it."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.metrics import compare, list_metrics
from workbench.metrics.svcca import RankDeficiencyWarning

README = Path(__file__).resolve().parents[2] / "workbench" / "metrics" / "README.md"


def readme_table() -> dict[tuple[str, str], str]:
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| input |"))
    header = [c.strip(" `") for c in lines[start].strip("|").split("|")]
    table = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        for metric, cell in zip(header[1:], cells[1:]):
            table[cells[0].replace("`", ""), metric] = cell
    return table


def _inputs(case: str):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 30)), rng.normal(size=(40, 8))
    clean = (x, y)
    if case == "constant column in X":
        return clean, (np.hstack([x, np.full((40, 1), 2.0)]), y)
    if case == "constant column in Y":
        return clean, (x, np.hstack([y, np.full((40, 1), 2.0)]))
    if case == "duplicate column in Y":
        return clean, (x, np.hstack([y, y[:, 2:3]]))
    if case == "stimulus (row) with zero variance in X":
        flat = x.copy()
        flat[5] = 1.5
        return clean, (flat, y)
    raise AssertionError(f"README row {case!r} has no test input")


TABLE = readme_table()


def test_table_covers_every_metric():
    assert {metric for _, metric in TABLE} == set(list_metrics())
    assert len({case for case, _ in TABLE}) == 4


@pytest.mark.parametrize("case, metric", sorted(TABLE))
def test_each_cell_matches_the_code(case, metric):
    said = TABLE[case, metric]
    (x0, y0), (x, y) = _inputs(case)
    kw = {"n_components": 5} if metric in ("svcca", "tsvd_regression") else {}

    def score(a, b, **extra):
        return compare(a, b, [metric], errors="raise", **kw, **extra)[metric]

    if said == "raises":
        with pytest.raises(ValidationError):
            score(x, y)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning with the defaults
        value = score(x, y)
    assert np.isfinite(value)
    if said == "no effect":
        assert value == pytest.approx(score(x0, y0), abs=1e-12)
    elif re.fullmatch(r"defined \(reduced to rank without `reduce_y`\)", said):
        with pytest.warns(RankDeficiencyWarning):
            reduced = score(x, y, reduce_y=False)
        # reduced to the centred column space of Y: the same as Y without the extra column
        assert reduced == pytest.approx(score(x0, y0, reduce_y=False), abs=1e-12)
        assert reduced.rank_y == y0.shape[1]
    else:
        assert said == "defined", f"unknown README wording {said!r}"
