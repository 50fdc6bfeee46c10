"""Dashboard pages. The data comes from the series API; the page keeps its view per tab."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import get_script_prefix, reverse_lazy
from django.views.decorators.http import require_GET

from monitoring.bpm import BPM_KX_MM, BPM_KY_MM

# The browser draws one panel per selected instrument; more would flood the API.
MAX_SELECTED_INSTRUMENTS = 12


@require_GET
@login_required(login_url=reverse_lazy("admin:login"))
@permission_required("monitoring.view_instrument", raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    """The page shell only: instruments, ranges and data are fetched by the script."""
    context = {
        "api_root": f"{get_script_prefix()}api/v1/monitoring/",
        "kx_mm": BPM_KX_MM,
        "ky_mm": BPM_KY_MM,
        "max_selected": MAX_SELECTED_INSTRUMENTS,
    }
    return render(request, "monitoring/dashboard.html", context)
