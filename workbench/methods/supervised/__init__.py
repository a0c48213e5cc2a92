"""Supervised: plain cross-entropy training of a zoo architecture, the baseline of every method.

No paper of its own: it is the shared loop with nothing added, used as the dense baseline the
methods are compared with, by the framework's tests and by the overhead benchmark.
"""

from pathlib import Path

from workbench.methods import MethodSpec, register_method
from workbench.methods.supervised.train import SupervisedConfig, evaluate, train

register_method(MethodSpec(
    name="supervised",
    paper="(baseline, no paper): cross-entropy training on the shared loop",
    summary="plain supervised classification; the dense baseline of every method",
    config_cls=SupervisedConfig,
    train=train,
    evaluate=evaluate,
    presets_dir=Path(__file__).parent / "presets",
    notebook="methods/supervised.ipynb",
))
