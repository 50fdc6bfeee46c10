"""Browser pages of the monitoring app (the dashboard)."""

urlpatterns: list = []
