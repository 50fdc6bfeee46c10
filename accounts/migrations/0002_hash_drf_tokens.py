"""Move DRF authtoken keys into hashed, scoped API tokens, then drop their plain-text table.

Existing clients keep their ``Authorization: Token <key>`` header: each old key becomes a
token named "migrated" with every scope (the user's permissions still limit it). The old
table held keys in clear, which is what this replaces, so it is dropped.
"""

import hashlib

from django.db import migrations

OLD_TABLE = "authtoken_token"


def hash_old_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return
    api_token = apps.get_model("accounts", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id FROM {OLD_TABLE}")  # noqa: S608 - fixed name
        rows = cursor.fetchall()
    api_token.objects.bulk_create(
        api_token(
            user_id=user_id,
            name="migrated",
            prefix=key[:8],
            key_hash=hashlib.sha256(key.encode()).hexdigest(),
            scope_read=True,
            scope_operate=True,
            scope_ingest=True,
        )
        for key, user_id in rows
    )
    schema_editor.execute(f"DROP TABLE {OLD_TABLE}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(hash_old_tokens, migrations.RunPython.noop)]
