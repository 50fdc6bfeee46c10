"""Routes under /api/v1/devices/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from devices.api.modems import ModemViewSet
from devices.api.views import SeismographViewSet, TaskStatusView

router = SimpleRouter()
router.register("modems", ModemViewSet, basename="modem")
router.register("seismographs", SeismographViewSet, basename="seismograph")

urlpatterns = [
    *router.urls,
    path("tasks/<str:task_id>/", TaskStatusView.as_view(), name="seismo-task"),
]
