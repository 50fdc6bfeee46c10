from django.urls import re_path
from rest_framework.routers import SimpleRouter

from monitoring.api.views import (
    InstrumentSeriesView,
    InstrumentViewSet,
    MultiSeriesView,
    SampleIngestView,
)

router = SimpleRouter()  # DRF reads trailing_slash as a bool: "/?" meant "/"
router.register("instruments", InstrumentViewSet, basename="monitoring-instrument")

urlpatterns = [
    re_path(r"^samples/?$", SampleIngestView.as_view(), name="monitoring-samples"),
    re_path(r"^series/?$", MultiSeriesView.as_view(), name="monitoring-series"),
    re_path(
        r"^instruments/(?P<pk>[0-9]+)/series/?$",
        InstrumentSeriesView.as_view(),
        name="monitoring-instrument-series",
    ),
    *router.urls,
]
