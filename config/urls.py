"""URL map: admin, health, the versioned REST API and its documentation."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.permissions import read
from config.views import health


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema: for any token that may read (no data in it)."""

    access = {"get": read()}


class DocsView(SpectacularSwaggerView):
    access = {"get": read()}


api_v1 = [
    path("audit/", include("audit.api.urls")),
    path("captures/campaigns/", include("campaigns.api.urls")),
    path("captures/", include("captures.api.urls")),
    path("devices/", include("devices.api.urls")),
    path("devices/", include("seismographs.api.urls")),
    path("monitoring/", include("monitoring.api.urls")),
]

handler404 = "config.api.not_found"

urlpatterns = [
    path("health/", health, name="health"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", DocsView.as_view(url_name="schema"), name="swagger-ui"),
    path("monitoring/", include("monitoring.urls")),
]
