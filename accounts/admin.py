"""Admin for API tokens: issue one (its key is shown once), see use, revoke."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "user",
        "prefix",
        "scope_read",
        "scope_operate",
        "scope_ingest",
        "created",
        "expires",
        "last_used",
        "revoked",
    ]
    list_filter = ["scope_read", "scope_operate", "scope_ingest", "revoked"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    fields = ("user", "name", "scope_read", "scope_operate", "scope_ingest", "expires")
    readonly_fields = ("prefix", "created", "last_used", "revoked")
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        return self.fields if obj is None else (*self.fields, *self.readonly_fields)

    def get_readonly_fields(
        self, request: HttpRequest, obj: ApiToken | None = None
    ) -> tuple[str, ...]:
        # A token stays its user's: issue a new one for someone else.
        return self.readonly_fields if obj is None else ("user", *self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:
        if not change:
            obj.issued_key = obj.set_new_key()
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue=None):
        """The key on a page of its own, never through message storage (a cookie)."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "token": obj,
            "key": obj.issued_key,
            "changelist_url": reverse("admin:accounts_apitoken_changelist"),
            "title": "API token created",
        }
        # (admin views are never_cache: no-store, private)
        return TemplateResponse(request, "admin/accounts/apitoken/key_once.html", context)

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            token.revoke()
        self.message_user(request, f"{queryset.count()} token(s) revoked.", messages.SUCCESS)
