"""URL map: admin, health, the versioned REST API and its documentation."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.views import health

api_v1 = [
    path("audit/", include("audit.api.urls")),
    path("captures/", include("captures.api.urls")),
    path("devices/", include("devices.api.urls")),
    path("monitoring/", include("monitoring.api.urls")),
]

handler404 = "config.api.not_found"

urlpatterns = [
    path("health/", health, name="health"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("monitoring/", include("monitoring.urls")),
]
