"""The names of dimensions and coordinates, defined once for the whole workbench.

Assemblies are xarray objects with flat coordinates (never a MultiIndex).

- Neural assemblies: ``(stimulus, neuroid)``, optionally with ``repetition`` and ``time_bin``.
- Model activations: ``(stimulus, neuroid)``, or ``(stimulus, time_step, neuroid)`` for
  spiking networks kept per time step.
- Scores: ``(model, layer, region, metric)``.
"""

# dimensions
STIMULUS = "stimulus"
NEUROID = "neuroid"
REPETITION = "repetition"
TIME_BIN = "time_bin"
TIME_STEP = "time_step"
MODEL = "model"
LAYER = "layer"
REGION = "region"
METRIC = "metric"

# coordinates
STIMULUS_ID = "stimulus_id"
NEUROID_ID = "neuroid_id"
SPECIES = "species"
DATASET = "dataset"
CHANNEL = "channel"
SPATIAL_Y = "spatial_y"
SPATIAL_X = "spatial_x"
TOKEN = "token"
