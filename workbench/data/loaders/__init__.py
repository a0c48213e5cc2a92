"""One module per data format; importing this package registers every loader."""

from workbench.data.loaders import allen, brainscore, cowley, kriegeskorte, local  # noqa: F401
