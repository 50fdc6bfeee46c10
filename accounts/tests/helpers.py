"""Users in roles and API clients holding a real scoped token, for every app's tests."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts.models import ApiToken, Scope
from accounts.roles import grant


def role_user(username: str, *roles: str, **fields):
    user = get_user_model().objects.create_user(username, password="pw-not-secret-1", **fields)
    grant(user, *roles)
    return user


def token_client(user, scopes=tuple(Scope.values), name: str = "test") -> APIClient:
    """An APIClient sending ``Authorization: Token <key>`` of a new token of ``user``."""
    _, key = ApiToken.objects.issue(user, name, set(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client
