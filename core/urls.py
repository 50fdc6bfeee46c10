"""The one trailing-slash rule of the API.

Router (viewset) URLs end in ``/``, DRF's default. Hand-written API routes are declared
with ``api_path`` and answer with or without the trailing ``/``: their clients (line
protocol senders, scripts fetching analyses) send both. A file-like route (``plot.png``) is
the exception and has no slash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import URLPattern, re_path


def api_path(route: str, view: Callable[..., Any], name: str) -> URLPattern:
    """``route`` is a regex without anchors or trailing slash, e.g. ``r"series"``."""
    return re_path(rf"^{route}/?$", view, name=name)
