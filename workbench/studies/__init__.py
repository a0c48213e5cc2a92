"""Study presets: a published study's protocol as one YAML file, and its published scores.

- :func:`load_study`: a preset (``huang2023``) or a user's YAML file, checked, as a :class:`Study`.
- :func:`list_studies`: the package's presets (``workbench study list``).
- :func:`load_paper_scores`: a study's published per-model scores, under the zoo's names.

``workbench study run NAME|FILE.yaml --out DIR`` runs a preset (:mod:`workbench.cli.studies`).
"""

from workbench.studies.paper_scores import load_paper_scores
from workbench.studies.presets import Study, list_studies, load_study

__all__ = ["Study", "list_studies", "load_paper_scores", "load_study"]
