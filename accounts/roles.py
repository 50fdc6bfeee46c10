"""Roles are Django groups. They are seeded once (data migration, and again after a test
flush): a group that exists is never changed, so an admin's edits survive migrate. Only the
``admin`` role is kept complete, since it is defined as every permission."""

from __future__ import annotations

from django.apps import apps as global_apps
from django.apps.registry import Apps

ADMIN = "admin"
# Apps whose records every role may read (nothing here shows a credential: the API, admin
# and exports never output one). Tokens, users, groups and the audit trail are not included.
READABLE_APPS = (
    "devices",
    "seismographs",
    "captures",
    "campaigns",
    "monitoring",
    "django_celery_beat",
    "django_celery_results",
)
START_STOP_CAPTURES = (
    "captures.add_operation",
    "captures.change_operation",
    "campaigns.add_campaign",
    "campaigns.change_campaign",
)
REGISTER_MODEMS = ("devices.add_cablemodem", "devices.change_cablemodem")
ROLES: dict[str, tuple[str, ...]] = {
    "viewer": (),
    "operator": (
        *START_STOP_CAPTURES,
        *REGISTER_MODEMS,
        "devices.delete_cablemodem",
        "seismographs.add_seismograph",
        "seismographs.change_seismograph",
        "seismographs.delete_seismograph",
        "seismographs.operate_seismograph",
        "seismographs.erase_seismograph",
        "seismographs.force_read",
        "seismographs.clear_cache",
    ),
    "integrator": (*START_STOP_CAPTURES, *REGISTER_MODEMS, "monitoring.ingest_samples"),
}


def seed_roles(apps: Apps = global_apps, using: str = "default") -> None:
    """Create the missing role groups with their permissions; complete ``admin``."""
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    permissions = permission_model.objects.using(using)
    readable = permissions.filter(
        content_type__app_label__in=READABLE_APPS, codename__startswith="view_"
    )
    for name, extra in ROLES.items():
        group, created = group_model.objects.using(using).get_or_create(name=name)
        if created:
            group.permissions.add(*readable, *_named(permissions, extra))
    admin, _ = group_model.objects.using(using).get_or_create(name=ADMIN)
    admin.permissions.add(*permissions.all())


def grant_new_app(apps: Apps, app_label: str, using: str = "default") -> None:
    """Give the existing role groups what ``ROLES`` says of an app added after they were
    seeded (seeding never changes a group that exists). Its permissions must exist."""
    group_model = apps.get_model("auth", "Group")
    permissions = apps.get_model("auth", "Permission").objects.using(using)
    of_app = permissions.filter(content_type__app_label=app_label)
    readable = of_app.filter(codename__startswith="view_") if app_label in READABLE_APPS else []
    for group in group_model.objects.using(using).filter(name__in=[*ROLES, ADMIN]):
        if group.name == ADMIN:
            group.permissions.add(*of_app)
            continue
        named = [name for name in ROLES[group.name] if name.startswith(f"{app_label}.")]
        group.permissions.add(*readable, *_named(permissions, tuple(named)))


def _named(permissions, names: tuple[str, ...]) -> list:
    """The permissions ``names`` spell. Those of an app whose tables do not exist yet (its
    migrations run after the roles') are left out: its own migration grants them with
    ``grant_new_app``. A misspelt name of a migrated app raises."""
    content_types = permissions.model._meta.get_field("content_type").related_model
    found = []
    for name in names:
        app_label, codename = name.split(".", 1)
        if not content_types.objects.filter(app_label=app_label).exists():
            continue
        found.append(permissions.get(content_type__app_label=app_label, codename=codename))
    return found


def seed_after_migrate(sender, using: str = "default", **kwargs) -> None:
    """post_migrate of this app (the last installed): every permission exists by now."""
    seed_roles(using=using)


def grant(user, *roles: str) -> None:
    """Put a user in role groups (tests, benches, scripts)."""
    group_model = global_apps.get_model("auth", "Group")
    groups = list(group_model.objects.filter(name__in=roles))
    if len(groups) != len(set(roles)):
        raise LookupError(f"unknown role among {roles}")
    user.groups.add(*groups)
