"""Device registry. One module per device family; import each model here."""

from devices.models.modems import CableModem  # noqa: F401
