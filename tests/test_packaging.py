"""The set-up promises of the README: one place for pins, a mirror for conda, two commands."""

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _requirements(name="requirements.txt"):
    lines = (ROOT / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _name(requirement):
    """The normalised project name of a requirement (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[ (]", requirement, maxsplit=1)[0]).lower()


def test_every_requirement_is_pinned_exactly():
    for requirement in _requirements():
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.+\-]*", requirement), requirement


def test_environment_yml_mirrors_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1
    pinned = [entry for entry in pip_sections[0] if not entry.startswith("-e")]
    assert pinned == _requirements()


def test_pyproject_reads_requirements_and_declares_console_script():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["dynamic"]["dependencies"]["file"] == ["requirements.txt"]
    assert project["project"]["scripts"]["workbench"] == "workbench.cli:main"


def test_readme_and_ci_use_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_only_the_readme_of_reports_is_tracked():
    ignore = (ROOT / ".gitignore").read_text().splitlines()
    assert "/reports/*" in ignore and "!/reports/README.md" in ignore


def test_allensdk_is_pinned_apart_and_installed_without_its_own_pins():
    # allensdk's own pins (numpy<1.24, pandas==1.5.3, ...) clash with requirements.txt, so it
    # has its own file, installed by `make setup` with --no-deps after requirements.txt
    pins = _requirements("requirements-allensdk.txt")
    assert pins == ["allensdk==2.16.2"]
    assert not {_name(p) for p in pins} & {_name(r) for r in _requirements()}
    recipe = (ROOT / "Makefile").read_text()
    stamp_rule = re.search(r"^\$\(STAMP\):(.*)$", recipe, re.M).group(1).split()
    assert "requirements.txt" in stamp_rule and "requirements-allensdk.txt" in stamp_rule
    main_install = recipe.index("pip install --quiet -r requirements.txt")
    allensdk_install = recipe.index("pip install --quiet --no-deps -r requirements-allensdk.txt")
    assert main_install < allensdk_install < recipe.index("touch $(STAMP)")
    # conda: pip cannot take --no-deps inside environment.yml, so the file says to run it after
    env_text = (ROOT / "environment.yml").read_text()
    assert "pip install --no-deps -r requirements-allensdk.txt" in env_text
    assert all(pin in env_text for pin in pins)
    env = yaml.safe_load(env_text)
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "allensdk" not in {_name(entry) for entry in pip_section}


def test_allensdk_runtime_dependencies_are_pinned_in_requirements():
    # every dependency that the installed allensdk declares is pinned in requirements.txt
    # (numpy, pandas, scipy, xarray at the workbench's versions, not allensdk's)
    from importlib import metadata

    assert metadata.version("allensdk") == "2.16.2"
    declared = {_name(r) for r in metadata.requires("allensdk") if "extra ==" not in r}
    pinned = {_name(r) for r in _requirements()}
    assert declared - pinned == set()
    assert {"setuptools", "argschema", "pynwb", "hdmf"} <= pinned
    for requirement in _requirements():
        if _name(requirement) in declared | {"setuptools"}:
            name, version = requirement.split("==")
            assert metadata.version(name) == version, requirement


@pytest.mark.parametrize("user_id, allow_root", [("0", True), ("1000", False)])
def test_make_lab_starts_jupyter_as_root_too(user_id, allow_root):
    """Jupyter refuses to run as root without --allow-root (containers, cloud notebooks)."""
    dry_run = subprocess.run(["make", "-n", "lab", f"USER_ID={user_id}"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    lab = [line for line in dry_run.splitlines() if "jupyter lab notebooks" in line]
    assert len(lab) == 1 and ("--allow-root" in lab[0]) == allow_root
