"""The provenance record: Python, platform and the versions of the packages results depend on."""

import platform
from importlib import metadata

from workbench.provenance import PACKAGES, package_versions


def test_versions_name_python_platform_and_every_package():
    versions = package_versions()
    assert list(versions) == ["python", "platform", *PACKAGES]
    assert versions["python"] == platform.python_version() and versions["platform"] == platform.platform()
    assert versions["torch"] == metadata.version("torch") and versions["numpy"] == metadata.version("numpy")


def test_a_package_that_is_not_installed_is_said_so(monkeypatch):
    monkeypatch.setattr("workbench.provenance.PACKAGES", ("numpy", "no-such-package-xyz"))
    assert package_versions()["no-such-package-xyz"] == "not installed"
