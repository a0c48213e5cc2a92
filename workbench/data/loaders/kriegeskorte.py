"""Kriegeskorte et al. (2008): 92 object images with monkey-IT and human-IT RDMs.

Files (rsatoolbox ``demos/92imageData/``):

- ``Kriegeskorte_Neuron2008_supplementalData.mat``: ``stimuli_92objs`` (1 x 92 struct with
  field ``image``, 175 x 175 x 3 uint8, and ``category``), ``categoryLabels`` and
  ``categoryVectors`` (92 x 12; they become the RDMs' ``category`` and boolean
  ``category_<label>`` stimulus coordinates, e.g. ``category_animate``), and
  ``RDMs_mIT_hIT_fig1`` (struct with ``name`` and ``RDM``, each RDM the 4,186 upper-triangle
  entries, row by row as MATLAB's ``squareform``).
- ``92_brainRDMs.mat``: ``RDMs``, 1 x 4 subjects x 2 sessions of 92 x 92 human-IT RDMs.

Regions: ``"IT (monkey)"`` (674 neurons, macaque) and ``"IT (human)"`` (316 voxels, human),
both published as RDMs only. The human region's RSA ceiling is the leave-one-subject-out
upper bound over the four subjects' session-averaged RDMs.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import squareform

from workbench.data.assemblies import make_rdm
from workbench.data.dataset import NeuralDataset, RegionData
from workbench.data.loaders._io import mat_string, read_mat
from workbench.data.registry import register_loader
from workbench.data.stimuli import StimulusSet
from workbench.errors import DataError

N_IMAGES = 92
#: published RDM name -> (region, species)
RDM_REGIONS = {"mIT_674neurons": ("IT (monkey)", "macaque"),
               "hITvisStim_316vx": ("IT (human)", "human")}
SUBJECT_REGION = "IT (human)"


def _stimuli(path, data) -> tuple[StimulusSet, list[str]]:
    struct = data["stimuli_92objs"].ravel()
    if struct.size != N_IMAGES or "image" not in (struct.dtype.names or ()):
        raise DataError(f"{path}: stimuli_92objs must be a 1 x {N_IMAGES} struct with field "
                        f"'image', found {struct.size} entries with fields {struct.dtype.names}")
    images = [struct[i]["image"] for i in range(N_IMAGES)]
    ids = [f"obj{i + 1:02d}" for i in range(N_IMAGES)]
    return StimulusSet.from_arrays(images, ids)


def _category_coords(path, data) -> dict:
    """Stimulus coordinates: ``category`` (e.g. 'human face') and one boolean per label."""
    struct = data["stimuli_92objs"].ravel()
    names = [mat_string(struct[i]["category"]) for i in range(N_IMAGES)]
    coords = {"category": ("stimulus", names)}
    labels = [mat_string(label) for label in data["categoryLabels"].ravel()]
    vectors = np.asarray(data["categoryVectors"])
    if vectors.shape != (N_IMAGES, len(labels)):
        raise DataError(f"{path}: categoryVectors has shape {vectors.shape}, expected "
                        f"({N_IMAGES}, {len(labels)}) for labels {labels}")
    for column, label in enumerate(labels):
        coords[f"category_{label}"] = ("stimulus", vectors[:, column].astype(bool))
    return coords


def _published_rdms(path, data) -> dict[str, np.ndarray]:
    rdms = {}
    for entry in data["RDMs_mIT_hIT_fig1"].ravel():
        name = mat_string(entry["name"])
        vector = np.asarray(entry["RDM"], dtype=np.float64).ravel()
        if vector.size != N_IMAGES * (N_IMAGES - 1) // 2:
            raise DataError(f"{path}: RDM {name!r} has {vector.size} entries, expected "
                            f"{N_IMAGES * (N_IMAGES - 1) // 2} (upper triangle of {N_IMAGES} "
                            "images)")
        rdms[name] = squareform(vector)
    missing = set(RDM_REGIONS) - set(rdms)
    if missing:
        raise DataError(f"{path}: RDMs_mIT_hIT_fig1 lacks {sorted(missing)}; found {sorted(rdms)}")
    return rdms


def _subject_rdms(path, data) -> np.ndarray:
    """(subject, 92, 92): each subject's RDM averaged over its sessions."""
    entries = data["RDMs"]
    if entries.ndim != 3 or entries.shape[0] != 1:
        raise DataError(f"{path}: RDMs must be 1 x subject x session, found shape {entries.shape}")
    subjects = []
    for s in range(entries.shape[1]):
        sessions = [np.asarray(entries[0, s, k]["RDM"], dtype=np.float64)
                    for k in range(entries.shape[2])]
        for k, matrix in enumerate(sessions):
            if matrix.shape != (N_IMAGES, N_IMAGES):
                raise DataError(f"{path}: RDM of subject {s + 1}, session {k + 1} has shape "
                                f"{matrix.shape}, expected ({N_IMAGES}, {N_IMAGES})")
        subjects.append(np.mean(sessions, axis=0))
    return np.stack(subjects)


@register_loader("kriegeskorte2008_92")
def load_kriegeskorte2008(manifest, files, **options) -> NeuralDataset:
    """Load the 92-image RDM dataset (no options)."""
    if options:
        raise DataError(
            f"{manifest.name}: unknown option(s) {sorted(options)}; this loader takes none"
        )
    supp = files[manifest.file("Kriegeskorte_Neuron2008_supplementalData.mat").path]
    brain = files[manifest.file("92_brainRDMs.mat").path]
    data = read_mat(supp, ("stimuli_92objs", "RDMs_mIT_hIT_fig1", "categoryLabels",
                           "categoryVectors"))
    stimuli = _stimuli(supp, data)
    categories = _category_coords(supp, data)
    published = _published_rdms(supp, data)
    subject_rdms = _subject_rdms(brain, read_mat(brain, ("RDMs",)))
    regions = []
    for name, (region, species) in RDM_REGIONS.items():
        rdm = make_rdm(published[name], stimulus_ids=stimuli.ids, region=region, species=species,
                       dataset=manifest.name, where=f"{supp} ({name})")
        rdm = rdm.assign_coords(categories)
        regions.append(RegionData(name=region, species=species, rdm=rdm,
                                  subject_rdms=subject_rdms if region == SUBJECT_REGION else None))
    return NeuralDataset(manifest, stimuli, regions)
