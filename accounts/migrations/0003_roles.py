"""Create the role groups (viewer, operator, integrator, admin) with their permissions.

Permissions are normally created after all migrations (post_migrate); they are created
here first so the groups can be given them. See accounts.roles for what each role holds.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from accounts.roles import seed_roles


def create_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    seed_roles(apps, using=schema_editor.connection.alias)


def drop_roles(apps, schema_editor):
    names = ["viewer", "operator", "integrator", "admin"]
    apps.get_model("auth", "Group").objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_hash_drf_tokens"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("captures", "0004_feed_indexes"),
        ("devices", "0004_modem_registry"),
        ("seismographs", "0002_permissions"),
        ("monitoring", "0003_ingest_permission"),
        ("django_celery_beat", "__latest__"),
        ("django_celery_results", "__latest__"),
    ]

    operations = [migrations.RunPython(create_roles, drop_roles)]
