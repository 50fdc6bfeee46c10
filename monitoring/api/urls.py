from rest_framework.routers import SimpleRouter

from core.urls import api_path
from monitoring.api.views import (
    InstrumentSeriesView,
    InstrumentViewSet,
    MultiSeriesView,
    SampleIngestView,
)

router = SimpleRouter()
router.register("instruments", InstrumentViewSet, basename="monitoring-instrument")

urlpatterns = [
    api_path(r"samples", SampleIngestView.as_view(), name="monitoring-samples"),
    api_path(r"series", MultiSeriesView.as_view(), name="monitoring-series"),
    api_path(
        r"instruments/(?P<pk>[0-9]+)/series",
        InstrumentSeriesView.as_view(),
        name="monitoring-instrument-series",
    ),
    *router.urls,
]
