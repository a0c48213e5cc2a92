"""The provenance record written with every result: which software produced it.

A run's model card (``versions``) and a scores file (its ``versions`` attribute) both hold
:func:`package_versions`, so a number can be traced to the code that computed it.
"""

from __future__ import annotations

import platform
from importlib import metadata

#: The packages a trained network or a score depends on (distribution names).
PACKAGES = ("workbench", "numpy", "scipy", "xarray", "torch", "torchvision", "spikingjelly", "timm",
            "scikit-learn")


def package_versions() -> dict[str, str]:
    """Versions of Python, the platform and :data:`PACKAGES`.

    Returns
    -------
    dict of str to str
        ``{"python": "3.11.9", "platform": "Linux-...", "workbench": "0.1.0", ...}``; a package
        that is not installed maps to ``"not installed"``.
    """
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
