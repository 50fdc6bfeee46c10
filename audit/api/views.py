"""GET /api/v1/audit/events/: the trail, newest first, filtered (the admin role only)."""

from __future__ import annotations

from datetime import UTC, datetime

import django_filters
from rest_framework import viewsets

from accounts.permissions import perm, read
from audit.api.serializers import AuditEventSerializer
from audit.models import AuditEvent, Outcome

AUDIT_READ = read(perm(AuditEvent, "view"))
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """Compared in UTC: PostgreSQL takes offsets up to ±15:59 only, ISO 8601 up to ±23:59.
    A time beyond what UTC can represent is the nearest representable one."""

    def filter(self, qs, value):
        if value is not None:
            try:
                value = value.astimezone(UTC)
            except OverflowError:
                value = EARLIEST if value.year == 1 else LATEST
        return super().filter(qs, value)


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(method="filter_actor", help_text="username or user id")
    action = django_filters.CharFilter(help_text="exact action, e.g. operation.create")
    since = UtcDateTimeFilter(field_name="at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="at", lookup_expr="lt")
    outcome = django_filters.ChoiceFilter(choices=Outcome.choices)

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "since", "until", "outcome"]

    def filter_actor(self, queryset, _name, value: str):
        if value.isdigit():
            return queryset.filter(actor_id=int(value))
        return queryset.filter(actor=value)


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    # The trail is for admins: no other role holds audit.view_auditevent (accounts.roles).
    access = {"list": AUDIT_READ, "retrieve": AUDIT_READ}
    filterset_class = AuditEventFilter
