"""Browser pages of the monitoring app (the dashboard)."""

from django.urls import path

from monitoring import views

app_name = "monitoring"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
