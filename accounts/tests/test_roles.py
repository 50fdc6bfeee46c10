"""Roles are groups seeded by a migration; the admin obeys the same permissions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission

from accounts.roles import seed_roles
from seismographs.models import Seismograph
from tests.factories import make_operation
from tests.helpers import role_user

pytestmark = pytest.mark.django_db


def names(group: str) -> set[str]:
    perms = Group.objects.get(name=group).permissions.select_related("content_type")
    return {f"{p.content_type.app_label}.{p.codename}" for p in perms}


def test_roles_hold_what_they_need_and_no_more():
    viewer, operator, integrator, admin = (
        names(n) for n in ("viewer", "operator", "integrator", "admin")
    )
    assert all(".view_" in name for name in viewer)
    assert {"devices.view_cablemodem", "captures.view_transaction"} <= viewer
    assert not {n for n in viewer if n.startswith(("accounts.", "auth."))}
    assert {
        "seismographs.force_read",
        "seismographs.clear_cache",
        "seismographs.erase_seismograph",
    } <= operator
    assert {"captures.add_operation", "captures.change_operation"} <= operator & integrator
    assert "monitoring.ingest_samples" in integrator - operator
    assert not {n for n in integrator if n.endswith("seismograph") and ".view_" not in n}
    assert admin == {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.all()}


def test_seeding_again_keeps_an_admins_edit():
    group = Group.objects.get(name="viewer")
    group.permissions.clear()
    seed_roles()
    assert not group.permissions.exists()


def actions(response) -> set[str]:
    form = response.context["action_form"]  # None when no action is offered
    return {name for name, _label in form.fields["action"].choices} if form else set()


def test_admin_pages_follow_the_role(client):
    make_operation()
    client.force_login(role_user("view-staff", "viewer", is_staff=True))
    assert client.get("/admin/devices/cablemodem/").status_code == 200
    assert client.get("/admin/devices/cablemodem/add/").status_code == 403
    assert client.get("/admin/accounts/apitoken/").status_code == 403
    assert client.get("/admin/auth/user/").status_code == 403
    assert "stop_operations" not in actions(client.get("/admin/captures/operation/"))
    Seismograph.objects.create(conn_key="tcp:127.0.0.1:9")
    assert not {"refresh", "clear_cache"} & actions(client.get("/admin/seismographs/seismograph/"))
    client.force_login(role_user("op-staff", "operator", is_staff=True))
    assert {"refresh", "clear_cache"} <= actions(client.get("/admin/seismographs/seismograph/"))
    assert "stop_operations" in actions(client.get("/admin/captures/operation/"))
    assert client.get("/admin/devices/cablemodem/add/").status_code == 200


def test_dashboard_needs_the_instrument_view_permission(client):
    client.force_login(role_user("staffer", is_staff=True))
    assert client.get("/monitoring/").status_code == 403
    client.force_login(role_user("watcher", "viewer"))
    assert client.get("/monitoring/").status_code == 200
