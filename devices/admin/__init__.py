"""Admin for the device registry: one module per device family."""

from devices.admin import modems  # noqa: F401
