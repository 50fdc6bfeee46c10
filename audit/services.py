"""Writing audit events: ``record`` for explicit calls, used by the middleware for every
state-changing API and admin request.

Details hold names (fields sent, fields refused), never values: a body may carry SNMP
communities or keys, and an audit row is kept for good.
"""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.db import models, transaction
from django.http import HttpRequest

from audit.models import AuditEvent, Outcome

log = logging.getLogger(__name__)

MAX_NAMES = 50
LIMITS = {"object_type": 100, "object_id": 100, "object_repr": 200}


def clean(text: object, limit: int) -> str:
    """Printable characters only (PostgreSQL refuses NUL), at most ``limit``."""
    return "".join(c for c in str(text) if c.isprintable())[:limit]


def names(keys) -> list[str]:
    """Field or parameter names as sent, cleaned, sorted, bounded in count and length."""
    return sorted({clean(key, 64) for key in keys})[:MAX_NAMES]


def outcome_of(status_code: int) -> Outcome:
    if status_code < 400:
        return Outcome.SUCCESS
    if status_code in (401, 403, 429):
        return Outcome.DENIED
    return Outcome.ERROR


def client_address(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or the last X-Forwarded-For hop before our trusted proxies when
    REMOTE_ADDR is one of AUDIT_TRUSTED_PROXIES (anyone can send the header)."""
    address = request.META.get("REMOTE_ADDR") or None
    trusted = set(settings.AUDIT_TRUSTED_PROXIES)
    if address in trusted:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        for hop in reversed([h for h in hops if h]):
            if hop not in trusted:
                address = hop
                break
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def describe(obj: models.Model | None) -> dict[str, str]:
    """The object's type, id and text as copied strings (they outlive the object)."""
    if obj is None:
        return {}
    return {
        "object_type": obj._meta.label_lower,
        "object_id": str(obj.pk),
        "object_repr": str(obj),
    }


def record(
    request: HttpRequest | None,
    action: str,
    *,
    obj: models.Model | None = None,
    outcome: Outcome | str = Outcome.SUCCESS,
    status_code: int | None = None,
    detail: dict | None = None,
    **fields: str,
) -> AuditEvent:
    """Write one event; ``fields`` may set object_type/object_id/object_repr directly."""
    user = getattr(request, "user", None) if request is not None else None
    auth = getattr(request, "auth", None) if request is not None else None
    values = {key: clean(value, LIMITS[key]) for key, value in {**describe(obj), **fields}.items()}
    # A savepoint: a row that cannot be written must not spoil the caller's transaction.
    with transaction.atomic():
        return AuditEvent.objects.create(
            actor_id=user.pk if user is not None and user.is_authenticated else None,
            actor=user.get_username() if user is not None and user.is_authenticated else "",
            token_name=clean(getattr(auth, "name", "") or "", 100),
            action=clean(action, 100),
            method=(request.method or "") if request is not None else "",
            path=clean(request.path, 500) if request is not None else "",
            address=client_address(request) if request is not None else None,
            status_code=status_code,
            outcome=outcome,
            detail=detail or {},
            **values,
        )
