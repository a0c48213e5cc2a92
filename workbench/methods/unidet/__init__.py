"""Large-UniDet: multi-dataset object detection over a unified label hierarchy with a hierarchy-aware loss.

Lin, Hu, Wang, Tian, Lu, Chen, Xu & Wang, *Universal Object Detection with Large Vision Model*
(Large-UniDet, 2nd place in the Robust Vision Challenge 2022 detection track), arXiv 2212.09408; reference code linfeng93/Large-UniDet (read, not copied).
See README.md beside this file.
"""

from pathlib import Path

from workbench.methods import MethodSpec, register_method
from workbench.methods.unidet.labels import LabelSpace, build_label_space, read_label_space, write_label_space
from workbench.methods.unidet.loss import hierarchy_bce, hierarchy_targets, most_specific
from workbench.methods.unidet.sampling import (
    RepeatFactorSampler,
    WeightedDatasetSampler,
    repeat_indices,
    sampling_probabilities,
)
from workbench.methods.unidet.train import UniDetConfig, evaluate, load_run, train

register_method(MethodSpec(
    name="unidet",
    paper="Lin, Hu, Wang, Tian, Lu, Chen, Xu & Wang 2022, Universal Object Detection with Large Vision Model "
          "(Large-UniDet, RVC 2022 detection track, 2nd place), arXiv:2212.09408",
    summary="one RetinaNet over a unified label tree of several detection datasets, hierarchy-aware sigmoid BCE "
            "(parents positive, descendants ignored); flat and per-dataset baselines",
    config_cls=UniDetConfig,
    train=train,
    evaluate=evaluate,
    presets_dir=Path(__file__).parent / "presets",
    notebook="methods/unidet.ipynb",
))

__all__ = ["LabelSpace", "RepeatFactorSampler", "UniDetConfig", "WeightedDatasetSampler", "build_label_space",
           "evaluate", "hierarchy_bce", "hierarchy_targets", "load_run", "most_specific", "read_label_space",
           "repeat_indices", "sampling_probabilities", "train", "write_label_space"]
