"""Routes under /api/v1/audit/."""

from rest_framework.routers import SimpleRouter

from audit.api.views import AuditEventViewSet

router = SimpleRouter()
router.register("events", AuditEventViewSet, basename="audit-event")

urlpatterns = router.urls
