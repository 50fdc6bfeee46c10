"""Routes under /api/v1/devices/ that belong to the modem registry."""

from rest_framework.routers import SimpleRouter

from devices.api.modems import ModemViewSet

router = SimpleRouter()
router.register("modems", ModemViewSet, basename="modem")

urlpatterns = router.urls
