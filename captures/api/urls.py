from rest_framework.routers import SimpleRouter

from captures.api.views import OperationViewSet, SingleCaptureViewSet, TransactionViewSet

router = SimpleRouter()
router.register("operations", OperationViewSet, basename="operation")
router.register("captures", SingleCaptureViewSet, basename="capture")
router.register("transactions", TransactionViewSet, basename="transaction")

urlpatterns = router.urls

# --- PNM analysis (issue 4) ---
from django.urls import re_path  # noqa: E402

from captures.api.analysis_views import (  # noqa: E402
    OperationAnalysisView,
    TransactionAnalysisView,
    TransactionParsedView,
    TransactionPlotView,
)
from core.urls import api_path  # noqa: E402

urlpatterns += [
    api_path(
        r"operations/(?P<operation_id>[0-9a-f]{16})/analysis",
        OperationAnalysisView.as_view(),
        name="operation-analysis",
    ),
    api_path(
        r"transactions/(?P<transaction_id>[0-9a-f]{16})/parsed",
        TransactionParsedView.as_view(),
        name="transaction-parsed",
    ),
    api_path(
        r"transactions/(?P<transaction_id>[0-9a-f]{16})/analysis",
        TransactionAnalysisView.as_view(),
        name="transaction-analysis",
    ),
    re_path(  # a file name: no trailing slash
        r"^transactions/(?P<transaction_id>[0-9a-f]{16})/plot\.png$",
        TransactionPlotView.as_view(),
        name="transaction-plot",
    ),
]
