"""The audit trail in the admin: to read and filter, never to add, change or delete."""

from __future__ import annotations

from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "actor", "token_name", "action", "object_type", "object_repr", "address"]
    list_display += ["status_code", "outcome"]
    list_filter = ["outcome", "action", "object_type"]
    search_fields = ["actor", "action", "object_repr", "object_id", "address"]
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
