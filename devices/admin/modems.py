"""Admin for cable modems. Credentials can be set but are never displayed back."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from devices.models import CableModem

SECRET_FIELDS = ("community", "auth_key", "priv_key")
ADDRESS_FIELDS = ("mac_address", "ip_address", "snmp_port")
GROUPING_FIELDS = ("cmts", "tag")
CREDENTIAL_FIELDS = (
    "snmp_version",
    "community",
    "snmp_username",
    "auth_protocol",
    "auth_key",
    "priv_protocol",
    "priv_key",
)


class CableModemForm(forms.ModelForm):
    """Secrets are write-only: an empty field keeps the stored value."""

    class Meta:
        model = CableModem
        fields = [*ADDRESS_FIELDS, *GROUPING_FIELDS, *CREDENTIAL_FIELDS]
        widgets = {name: forms.PasswordInput(render_value=False) for name in SECRET_FIELDS}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            if name not in self.fields:  # a view-only user's form has no fields
                continue
            self.fields[name].required = False
            if self.instance.pk and getattr(self.instance, name):
                self.fields[name].help_text = "set; leave empty to keep it"

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.instance.pk:
            for name in SECRET_FIELDS:
                if not cleaned.get(name):
                    cleaned[name] = getattr(self.instance, name)
        return cleaned


@admin.register(CableModem)
class CableModemAdmin(admin.ModelAdmin):
    form = CableModemForm
    list_display = [
        "mac_address",
        "ip_address",
        "snmp_port",
        "snmp_version",
        "vendor",
        "model",
        "cmts",
        "tag",
    ]
    list_filter = ["snmp_version", "vendor", "model", "cmts"]
    search_fields = ["mac_address", "ip_address", "cmts", "tag"]
    readonly_fields = (
        "sys_descr",
        "hw_rev",
        "vendor",
        "bootr",
        "sw_rev",
        "model",
        "sys_descr_updated",
        "created",
        "updated",
    )
    fieldsets = [
        (None, {"fields": ADDRESS_FIELDS}),
        ("Grouping", {"fields": GROUPING_FIELDS}),
        ("SNMP credentials (write-only)", {"fields": CREDENTIAL_FIELDS}),
        ("Last known sysDescr", {"fields": readonly_fields}),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: CableModem | None = None) -> list:
        """A view-only page would print every field's value: secrets are named, not shown."""
        if self.has_change_permission(request, obj):
            return self.fieldsets
        return [
            (title, {"fields": [f for f in opts["fields"] if f not in SECRET_FIELDS]})
            for title, opts in self.fieldsets
        ] + [("SNMP secrets", {"fields": ["secrets_set"]})]

    @admin.display(description="secrets stored")
    def secrets_set(self, modem: CableModem) -> str:
        return ", ".join(name for name in SECRET_FIELDS if getattr(modem, name)) or "none"
