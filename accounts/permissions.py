"""The one permission layer of the API: every view declares, per action, what it needs.

A view's ``access`` maps each of its actions (viewset action names, or HTTP method names on
a plain APIView) to a ``Rule``: the token scope the call belongs to and the model
permissions the user must hold. ``ActionPermission`` (the default permission class of every
DRF view) grants a call when the user holds those permissions and, for a token, the token
has the scope: scope ∩ permissions. Session users (browser, admin, dashboard) have every
scope. A handled action with no rule is refused, so nothing is open by omission; the matrix
test in accounts/tests fails for it too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db.models import Model
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.models import ApiToken, Scope

log = logging.getLogger(__name__)
DEFAULT_PERMISSIONS = ("view", "add", "change", "delete")


@dataclass(frozen=True)
class Rule:
    """What one action needs. ``scope`` None means public (no credentials at all)."""

    scope: Scope | None
    perms: tuple[str, ...] = ()
    # Applies instead when the request asks ``?force=true`` (a read that reaches the device).
    forced: Rule | None = None


PUBLIC = Rule(None)


def perm(model: type[Model], codename: str) -> str:
    """``perm(Seismograph, "view")`` → ``"seismographs.view_seismograph"``; custom codenames as
    declared in the model's Meta.permissions. Derived from the model, so it follows a move."""
    meta = model._meta
    if codename in DEFAULT_PERMISSIONS:
        codename = f"{codename}_{meta.model_name}"
    return f"{meta.app_label}.{codename}"


def read(*perms: str, forced: Rule | None = None) -> Rule:
    return Rule(Scope.READ, perms, forced)


def operate(*perms: str) -> Rule:
    return Rule(Scope.OPERATE, perms)


def ingest(*perms: str) -> Rule:
    return Rule(Scope.INGEST, perms)


def forced(request: Request) -> bool:
    """``?force=true``: bypass caches and ask the device."""
    from config.api import query_flag  # config.api imports DRF's views, which import us

    return query_flag(request, "force")


class UndeclaredAccess(Exception):
    pass


def rule_for(view: object, request: Request) -> Rule | None:
    """The rule of the handler this request reaches; None when the view has no handler for
    the method (DRF then answers 405). Raises UndeclaredAccess for a handler with no rule."""
    method = (request.method or "").lower()
    if method == "options":  # metadata is switched off (DEFAULT_METADATA_CLASS): 405
        return None
    if hasattr(view, "action_map"):  # a viewset: the action this method is routed to
        key = getattr(view, "action", None)
        if key is None:
            return None
    else:
        key = "get" if method == "head" else method
        if not hasattr(view, key):
            return None
    rule = getattr(view, "access", {}).get(key)
    if rule is None:
        raise UndeclaredAccess(f"{type(view).__name__}.{key} declares no access rule")
    if rule.forced is not None and forced(request):
        return rule.forced
    return rule


def token_of(request: Request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


def granted(user, token: ApiToken | None, rule: Rule) -> bool:
    """The check itself, for callers outside DRF too (e.g. a stream listener's token)."""
    if rule.scope is None:
        return True
    if not (user and user.is_authenticated):
        return False
    if token is not None and rule.scope not in token.scopes:
        return False
    return user.has_perms(rule.perms)


class ActionPermission(BasePermission):
    """Grants a call when the user's permissions and the token's scopes both allow it."""

    def has_permission(self, request: Request, view: object) -> bool:
        try:
            rule = rule_for(view, request)
        except UndeclaredAccess as exc:
            log.error("refused: %s", exc)
            return False
        user, token = request.user, token_of(request)
        if rule is None:
            return bool(user and user.is_authenticated)
        if token is not None and rule.scope is not None and rule.scope not in token.scopes:
            self.message = f"This token lacks the '{rule.scope}' scope."
        return granted(user, token, rule)
