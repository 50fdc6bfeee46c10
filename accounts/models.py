"""Scoped API tokens: several named ones per user, stored as a hash, shown once.

A key is 43 URL-safe characters (256 random bits). Its first 8 characters are stored as
``prefix`` to find the row; the rest is only ever compared as a SHA-256 digest, in constant
time. A plain digest is enough: the key is random, not a password, so there is nothing to
guess that a slow hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

PREFIX_LEN = 8
# last_used is written at most this often per token (one UPDATE, not one per request).
LAST_USED_RESOLUTION = timedelta(minutes=1)


class Scope(models.TextChoices):
    READ = "read", "read: every GET of the API"
    OPERATE = "operate", "operate: start/stop captures, device writes, forced reads"
    INGEST = "ingest", "ingest: post instrument samples"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def issue(
        self, user, name: str, scopes: set[str], expires: datetime | None = None
    ) -> tuple[ApiToken, str]:
        """A new token and its key: the only moment the key exists outside the client."""
        token = ApiToken(
            user=user,
            name=name,
            expires=expires,
            **{f"scope_{scope}": scope in scopes for scope in Scope.values},
        )
        key = token.set_new_key()
        token.save(using=self.db)
        return token, key

    def authenticate(self, key: str) -> ApiToken | None:
        """The usable token this key belongs to, or None (also for a revoked/expired one)."""
        digest = hash_key(key)
        candidates = self.select_related("user").filter(prefix=key[:PREFIX_LEN])
        for token in candidates:
            if hmac.compare_digest(token.key_hash, digest):
                return token if token.usable() and token.user.is_active else None
        return None


class ApiToken(models.Model):
    """One named credential of a user, limited to its scopes (and the user's permissions)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What uses it, e.g. 'grafana ingest'")
    prefix = models.CharField(max_length=PREFIX_LEN, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scope_read = models.BooleanField("read", default=False)
    scope_operate = models.BooleanField("operate", default=False)
    scope_ingest = models.BooleanField("ingest", default=False)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires")
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()
    # The clear key of a token just issued in the admin, in memory only, for the page that
    # shows it once (never saved: the table keeps its hash).
    issued_key: str = ""

    class Meta:
        ordering = ["user", "name"]
        verbose_name = "API token"
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="apitoken_unique_name_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def set_new_key(self) -> str:
        """Give this (unsaved) token a fresh key; returns it, keeps only its hash."""
        key = secrets.token_urlsafe(32)
        self.prefix, self.key_hash = key[:PREFIX_LEN], hash_key(key)
        return key

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(scope for scope in Scope.values if getattr(self, f"scope_{scope}"))

    def usable(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.revoked is None and (self.expires is None or self.expires > now)

    def revoke(self) -> None:
        if self.revoked is None:
            self.revoked = timezone.now()
            self.save(update_fields=["revoked"])

    def touch(self) -> None:
        """Record use, at most once per LAST_USED_RESOLUTION."""
        now = timezone.now()
        if self.last_used is None or now - self.last_used >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=self.pk).update(last_used=now)
            self.last_used = now
