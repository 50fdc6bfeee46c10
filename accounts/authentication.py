"""``Authorization: Token <key>`` against the hashed, scoped tokens of accounts.models."""

from __future__ import annotations

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import ApiToken


class ApiTokenAuthentication(TokenAuthentication):
    """The header format DRF's authtoken used, so existing clients keep working."""

    def authenticate_credentials(self, key: str):
        token = ApiToken.objects.authenticate(key)
        if token is None:
            raise AuthenticationFailed("Invalid, expired or revoked token.")
        token.touch()
        return token.user, token
