"""workbench: compare deep networks' internal representations with visual-cortex recordings.

The subpackages follow the pipeline, in order:

``data`` (neural datasets) -> ``models`` (model zoo) -> ``activations`` (extraction)
-> ``metrics`` (similarity) -> ``analysis`` (sweeps and statistics) -> ``reports``
(figures and notebooks).
"""

__version__ = "0.1.0"
