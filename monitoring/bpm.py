"""The beam position monitor's geometry, shared by the model, the dashboard and the
simulator (which imports no Django, hence this module of plain constants)."""

from __future__ import annotations

BPM_CHANNELS = ["top_in", "bot_in", "bot_out", "top_out"]
# Difference-over-sum constants of the position readout, in millimetres. They are the
# values of the CESR cbpm3 display; a per-monitor calibration is not modelled.
BPM_KX_MM = 20.0
BPM_KY_MM = 10.0
