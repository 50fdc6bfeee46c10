"""Records every state-changing request to the API and the admin, after its response.

New endpoints are audited by default: nothing to add to a view. A view opts out with
``audit_exempt = True`` (sample ingest: data, not control, and far too frequent).
API requests give one event each (the object is looked up before the view runs, so a
deleted object still has its text); admin requests give one per LogEntry they wrote
(bulk deletions included) plus one per changelist action other than delete.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

from audit.services import names, outcome_of, record

log = logging.getLogger(__name__)

SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
ADMIN_FLAGS = {ADDITION: "addition", CHANGE: "change", DELETION: "deletion"}
MAX_IDS = 100

# The audit call each state-changing request will record once its response exists.
_pending: weakref.WeakKeyDictionary[HttpRequest, _ApiCall | _AdminCall] = (
    weakref.WeakKeyDictionary()
)


class AuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        pending = _pending.pop(request, None)
        user = getattr(request, "user", None)
        if pending is not None and user is not None and user.is_authenticated:
            try:
                pending(request, response)
            except DatabaseError:  # the change is done; a lost audit row must be seen
                log.exception("audit event for %s %s not written", request.method, request.path)
        return response

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        if request.method in SAFE_METHODS:
            return
        cls = getattr(view_func, "cls", None) or getattr(view_func, "model_admin", None)
        if getattr(cls, "audit_exempt", False):
            return
        if request.path.startswith("/api/") and hasattr(view_func, "initkwargs"):  # DRF
            _pending[request] = _ApiCall(view_func, view_kwargs)
        elif request.resolver_match and request.resolver_match.app_name == "admin":
            _pending[request] = _AdminCall()


class _ApiCall:
    """One DRF view call: action ``<basename>.<viewset action>`` or ``<url name>.<method>``."""

    def __init__(self, view_func, kwargs: dict) -> None:
        cls = view_func.cls
        actions = getattr(view_func, "actions", None) or {}
        self.view_cls = cls
        self.name = view_func.initkwargs.get("basename")
        self.verb = actions.get
        self.obj = None
        lookup = getattr(cls, "lookup_url_kwarg", None) or getattr(cls, "lookup_field", None)
        queryset = getattr(cls, "queryset", None)
        if queryset is not None and lookup in kwargs:
            try:
                self.obj = queryset.model._default_manager.filter(
                    **{cls.lookup_field: kwargs[lookup]}
                ).first()
            except (ValueError, TypeError, ValidationError):
                self.obj = None

    def __call__(self, request: HttpRequest, response: HttpResponse) -> None:
        method = (request.method or "").lower()
        name = self.name or (request.resolver_match.url_name if request.resolver_match else "")
        action = f"{name}.{self.verb(method) or method}"
        context = getattr(response, "renderer_context", None) or {}
        drf_request = context.get("request")
        detail: dict[str, list[str]] = {}
        if drf_request is not None:
            detail["query"] = names(drf_request.query_params)
            data = getattr(drf_request, "_full_data", None)
            if isinstance(data, dict):
                detail["fields"] = names(data)
        data = getattr(response, "data", None)
        if response.status_code >= 400 and isinstance(data, dict):
            detail["refused"] = names(data)
        obj = self.obj or self._created(response)
        record(
            request,
            action,
            obj=obj,
            outcome=outcome_of(response.status_code),
            status_code=response.status_code,
            detail={k: v for k, v in detail.items() if v},
        )

    def _created(self, response: HttpResponse):
        """The object a successful create answered with (its id is in the body)."""
        data = getattr(response, "data", None)
        queryset = getattr(self.view_cls, "queryset", None)
        field = getattr(self.view_cls, "lookup_field", "pk")
        key = "id" if field == "pk" else field
        if response.status_code != 201 or queryset is None or not isinstance(data, dict):
            return None
        if data.get(key) is None:
            return None
        return queryset.model._default_manager.filter(**{field: data[key]}).first()


class _AdminCall:
    """An admin POST: the LogEntry rows it wrote, and a changelist action if one ran."""

    def __init__(self) -> None:
        self.mark = LogEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    def __call__(self, request: HttpRequest, response: HttpResponse) -> None:
        outcome = outcome_of(response.status_code)
        if request.user.pk is None:  # the middleware records authenticated requests only
            return
        entries = LogEntry.objects.filter(pk__gt=self.mark, user_id=request.user.pk)
        for entry in entries.select_related("content_type").order_by("pk"):
            changed = _changed_fields(entry)
            record(
                request,
                f"admin.{ADMIN_FLAGS.get(entry.action_flag, 'other')}",
                outcome=outcome,
                status_code=response.status_code,
                detail={"fields": changed} if changed else {},
                object_type=_label(entry),
                object_id=entry.object_id or "",
                object_repr=entry.object_repr,
            )
        name = request.POST.get("action", "")
        if name and name != "delete_selected":
            ids = names(request.POST.getlist("_selected_action"))[:MAX_IDS]
            match = request.resolver_match
            model_admin = getattr(match.func, "model_admin", None) if match else None
            target = {"object_type": model_admin.model._meta.label_lower} if model_admin else {}
            record(
                request,
                f"admin.action.{name}"[:100],
                outcome=outcome,
                status_code=response.status_code,
                detail={"ids": ids},
                **target,
            )


def _label(entry: LogEntry) -> str:
    ct = entry.content_type
    return f"{ct.app_label}.{ct.model}" if ct else ""


def _changed_fields(entry: LogEntry) -> list[str]:
    """Field names only, from the admin's structured change message (never values)."""
    try:
        items = json.loads(entry.change_message or "[]")
    except ValueError:
        return []
    names: set[str] = set()
    for item in items if isinstance(items, list) else []:
        for change in item.values() if isinstance(item, dict) else []:
            if isinstance(change, dict):
                names.update(map(str, change.get("fields", [])))
    return sorted(names)
