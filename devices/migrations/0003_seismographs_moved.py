"""The seismograph models now belong to the seismographs app (its 0001 takes over their
state); their tables stay where they are, so nothing changes in the database."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('devices', '0002_seismographs'),
        ('seismographs', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='SeismoWaveform'),
                migrations.DeleteModel(name='SeismoEvent'),
                migrations.DeleteModel(name='Seismograph'),
            ],
            database_operations=[],
        ),
    ]
