from rest_framework.routers import SimpleRouter

from captures.api.views import OperationViewSet, TransactionViewSet

router = SimpleRouter()
router.register("operations", OperationViewSet, basename="operation")
router.register("transactions", TransactionViewSet, basename="transaction")

urlpatterns = router.urls
