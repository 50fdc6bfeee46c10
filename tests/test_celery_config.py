"""Celery wiring: JSON only, late acks, every project task routed to a consumed queue."""

import re
from pathlib import Path

from config.celery_app import app
from config.queues import Queue

ROOT = Path(__file__).resolve().parent.parent
PROJECT_PREFIXES = ("captures.", "devices.", "monitoring.", "config.", "seismographs.")
# Task names are what queued messages and beat entries carry: they never change when a
# module moves (the seismograph tasks live in seismographs/tasks.py under these names).
DECLARED = {
    "captures.tasks.trigger_capture": Queue.SNMP,
    "captures.tasks.trigger_ticks": Queue.SNMP,
    "captures.tasks.trigger_poll": Queue.SNMP,
    "captures.tasks.stage_captures": Queue.INGEST,
    "captures.tasks.dispatch_ticks": Queue.MAINTENANCE,
    "captures.tasks.sweep_operations": Queue.MAINTENANCE,
    "monitoring.tasks.flush_retention": Queue.MAINTENANCE,
    **{
        f"devices.tasks.{name}": Queue.SERIAL
        for name in (
            "refresh_info",
            "sync_events",
            "refresh_monitor",
            "fetch_waveform",
            "set_monitoring",
            "write_config",
            "erase_device",
        )
    },
}


def _route(task_name: str) -> str:
    route = app.amqp.router.route({}, task_name)
    return route["queue"].name


def _procfile_queues() -> set[str]:
    queues: set[str] = set()
    for line in (ROOT / "Procfile").read_text().splitlines():
        match = re.search(r"celery -A config worker -Q (\S+)", line)
        if match:
            queues |= set(match.group(1).split(","))
    return queues


def test_every_project_task_goes_to_a_queue_a_worker_consumes():
    app.loader.import_default_modules()
    tasks = sorted(name for name in app.tasks if name.startswith(PROJECT_PREFIXES))
    assert len(tasks) >= 10
    consumed = _procfile_queues()
    routes = {name: _route(name) for name in tasks}
    assert set(routes.values()) <= {queue.value for queue in Queue}
    assert set(routes.values()) <= consumed
    assert routes["captures.tasks.trigger_capture"] == Queue.SNMP
    assert routes["captures.tasks.trigger_ticks"] == Queue.SNMP
    assert routes["monitoring.tasks.flush_retention"] == Queue.MAINTENANCE
    assert all(
        queue == Queue.SERIAL for name, queue in routes.items() if name.startswith("devices.tasks.")
    )


def test_every_project_task_declares_its_name_and_queue():
    app.loader.import_default_modules()
    tasks = {name: task for name, task in app.tasks.items() if name.startswith(PROJECT_PREFIXES)}
    assert {name: getattr(task, "queue", None) for name, task in tasks.items()} == DECLARED
    assert all(_route(name) == queue for name, queue in DECLARED.items())


def test_celery_own_tasks_go_to_the_default_queue():
    assert _route("celery.accumulate") == Queue.DEFAULT


def test_reliability_settings():
    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit < conf.task_time_limit
    visibility = conf.broker_transport_options.get("visibility_timeout")
    if visibility is not None:  # Redis transport: a running task is never redelivered
        assert visibility > conf.task_time_limit
    assert conf.beat_scheduler == "config.beat:Scheduler"
    # Off unless CELERY_TASK_EVENTS: Flower switches them on while it watches.
    assert conf.worker_send_task_events is False
    assert conf.task_send_sent_event is False


def test_a_task_sent_by_name_from_a_web_process_goes_to_its_queue():
    """The web process (no worker, task modules not imported) sends a single capture's
    trigger by name: it must reach the snmp workers, not the default queue."""
    import subprocess
    import sys

    probe = (
        "import django; django.setup();"
        "from config.queues import route_task;"
        "print(route_task('captures.tasks.trigger_capture', [], {}, {}))"
    )
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.local", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.strip().splitlines()[-1] == "{'queue': 'snmp'}", result.stderr
