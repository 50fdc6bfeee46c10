"""The seismograph models move here from the devices app: state only, the tables (and
their data, constraints and indexes) keep their names. Content types follow, so
permissions (erase_seismograph) and admin history stay attached."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import seismographs.models

MODELS = ("seismograph", "seismoevent", "seismowaveform")


def move_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        if not ContentType.objects.filter(app_label="seismographs", model=model).exists():
            ContentType.objects.filter(app_label="devices", model=model).update(
                app_label="seismographs"
            )


def restore_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="seismographs", model__in=MODELS).update(
        app_label="devices"
    )


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('devices', '0002_seismographs'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Seismograph',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('conn_key', models.CharField(max_length=255, unique=True, validators=[seismographs.models.validate_conn_key])),
                        ('name', models.CharField(blank=True, max_length=100)),
                        ('serial_number', models.CharField(blank=True, db_index=True, max_length=32)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('link_timeout_s', models.FloatField(blank=True, null=True)),
                        ('idle_gap_s', models.FloatField(blank=True, null=True)),
                        ('info', models.JSONField(blank=True, null=True)),
                        ('info_fetched_at', models.DateTimeField(blank=True, null=True)),
                        ('config_dirty', models.BooleanField(default=False)),
                        ('event_count', models.PositiveIntegerField(blank=True, null=True)),
                        ('events_checked_at', models.DateTimeField(blank=True, null=True)),
                        ('events_stale', models.BooleanField(default=False)),
                        ('last_error_kind', models.CharField(blank=True, max_length=20)),
                        ('last_error', models.TextField(blank=True)),
                        ('last_error_at', models.DateTimeField(blank=True, null=True)),
                        ('offline', models.BooleanField(default=False)),
                        ('last_contact_at', models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        'db_table': 'devices_seismograph',
                        'ordering': ['id'],
                        'permissions': [('erase_seismograph', "Can erase a seismograph's event memory")],
                    },
                ),
                migrations.CreateModel(
                    name='SeismoEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('serial_number', models.CharField(blank=True, max_length=32)),
                        ('waveform_key', models.CharField(max_length=8)),
                        ('timestamp', models.DateTimeField()),
                        ('device_index', models.PositiveIntegerField(blank=True, null=True)),
                        ('record_type', models.CharField(blank=True, max_length=30)),
                        ('sample_rate', models.PositiveIntegerField(blank=True, null=True)),
                        ('peak_vector_sum', models.FloatField(blank=True, null=True)),
                        ('header', models.JSONField()),
                        ('fetched_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('device', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='seismographs.seismograph')),
                    ],
                    options={
                        'db_table': 'devices_seismoevent',
                        'ordering': ['device', 'device_index', 'timestamp'],
                    },
                ),
                migrations.CreateModel(
                    name='SeismoWaveform',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('data', models.BinaryField()),
                        ('encoding', models.CharField(max_length=40)),
                        ('raw_size', models.PositiveIntegerField()),
                        ('compressed_size', models.PositiveIntegerField()),
                        ('sha256', models.CharField(max_length=64)),
                        ('sample_rate', models.PositiveIntegerField()),
                        ('channels', models.JSONField()),
                        ('meta', models.JSONField(default=dict)),
                        ('fetched_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('event', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='waveform', to='seismographs.seismoevent')),
                    ],
                    options={
                        'db_table': 'devices_seismowaveform',
                    },
                ),
                migrations.AddConstraint(
                    model_name='seismoevent',
                    constraint=models.UniqueConstraint(fields=('device', 'waveform_key', 'timestamp'), name='seismo_event_identity'),
                ),
                migrations.AddConstraint(
                    model_name='seismoevent',
                    constraint=models.UniqueConstraint(condition=models.Q(('device_index__isnull', False)), fields=('device', 'device_index'), name='seismo_event_slot'),
                ),            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, restore_content_types),
    ]
