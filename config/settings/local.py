"""Development and the embedded demo: debug on, everything else from the environment."""

from config.settings.base import *  # noqa: F403
from config.settings.base import env

DEBUG = env.bool("DEBUG", True)
