"""The seismograph permissions the roles use (accounts.roles): operate, force a read, clear a cache."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('seismographs', '0001_initial'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='seismograph',
            options={'ordering': ['id'], 'permissions': [('erase_seismograph', "Can erase a seismograph's event memory"), ('operate_seismograph', 'Can write config and start/stop monitoring'), ('force_read', 'Can force a re-read from the unit'), ('clear_cache', "Can clear a unit's cache (stored history included)")]},
        ),
    ]
