"""The API keeps its published contract: schemathesis generates requests from the served
schema (/api/schema/) and checks every response against it, all checks on.

Bounded: a fixed number of examples per operation, derandomized, so a run is repeatable
and stays within a minute or two. The app is called in-process (WSGI), inside each
test's transaction, with an admin's token so every permission path is reachable.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from accounts.models import ApiToken, Scope
from config.wsgi import application
from monitoring.models import Instrument
from seismographs.models import Seismograph
from tests.factories import make_modem, make_operation, stored_transaction
from tests.helpers import ROOT

EXAMPLES_PER_OPERATION = 15

# All checks; the operations whose rules no JSON schema expresses are listed there.
CONFIG = SchemathesisConfig.from_path(ROOT / "schemathesis.toml")


def generated_schema() -> dict:
    """What /api/schema/ serves (test_the_tested_schema_is_the_served_one proves it)."""
    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))


schema = schemathesis.openapi.from_dict(generated_schema(), config=CONFIG)
schema.app = application


@pytest.fixture
def wsgi_in_test_transaction():
    """Django's own test client does this too: a request's end must not close the
    connection that holds the test's transaction."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def token(db, settings, wsgi_in_test_transaction) -> str:
    """An admin and one of each kind of row, so generated ids sometimes hit."""
    settings.SEISMO_API_WAIT_S = 0  # no worker here: device reads answer 202 at once
    admin = get_user_model().objects.create_superuser("contract", password="unused-pw-1")
    operation = make_operation(make_modem())
    stored_transaction(operation)
    Seismograph.objects.create(conn_key="tcp:127.0.0.1:9")
    Instrument.objects.create(name="10AE")
    return ApiToken.objects.issue(admin, "contract", set(Scope.values))[1]


def test_the_tested_schema_is_the_served_one(token):
    response = Client().get("/api/schema/?format=json", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert response.json() == generated_schema()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_contract(case, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"})
