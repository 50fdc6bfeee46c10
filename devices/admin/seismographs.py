"""Admin for seismographs."""
