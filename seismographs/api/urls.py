"""Routes under /api/v1/devices/."""

from rest_framework.routers import SimpleRouter

from core.urls import api_path
from seismographs.api.views import SeismographViewSet, TaskStatusView

router = SimpleRouter()
router.register("seismographs", SeismographViewSet, basename="seismograph")

urlpatterns = [
    *router.urls,
    api_path(r"tasks/(?P<task_id>[^/]+)", TaskStatusView.as_view(), name="seismo-task"),
]
