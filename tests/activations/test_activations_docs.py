"""The README says where the activation cache lives and that the snippet's weights are random."""

import re
from pathlib import Path

from workbench.activations import default_cache_dir
from workbench.models import create

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_names_the_activation_cache_and_how_to_move_it(monkeypatch, tmp_path):
    assert "`$WORKBENCH_CACHE/activations`" in README
    assert re.search(r"to move the cache to a larger disk, set\s+`WORKBENCH_CACHE=", README)
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "activations"  # what the README says


def test_readme_snippet_says_its_weights_are_random():
    snippet = README.split("```python", 1)[1].split("```", 1)[0]
    assert "random weights" in snippet
    name = re.search(r'models\.create\("([^"]+)"\)', snippet).group(1)
    assert create(name).weights.startswith("random")  # true of the code, not only the comment
    assert "**random weights**" in README and 'weights="imagenet"' in README
