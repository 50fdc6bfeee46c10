"""No Docker engine here: check the compose file's shape and that every command runs ours."""

import importlib
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

DOCKER = Path(__file__).resolve().parent.parent / "docker"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yml").read_text())


def entry_point_problem(command: list[str]) -> str | None:
    """Why a service command would not start one of our entry points (None when it would)."""
    # python-tftp: the image's interpreter copy that may bind port 69 (docker/Dockerfile)
    if command[0] in ("python", "python-tftp") and command[1] == "manage.py":
        return None if command[2] in get_commands() else f"no management command {command[2]}"
    if command[0] == "celery":
        app = command[command.index("-A") + 1]
        module = importlib.import_module(app)
        return None if hasattr(module, "celery_app") else f"{app} exposes no celery_app"
    if command[0] == "gunicorn":
        module_name, attribute = command[1].split(":")
        module = importlib.import_module(module_name)
        return None if hasattr(module, attribute) else f"{command[1]} does not exist"
    return f"unknown entry point {command[0]}"


def test_every_service_command_names_a_real_entry_point(compose):
    project_services = {
        name: service for name, service in compose["services"].items() if "build" in service
    }
    assert {"migrate", "web", "beat", "flower", "tftp", "worker-snmp"} <= set(project_services)
    problems = {
        name: entry_point_problem(service["command"]) for name, service in project_services.items()
    }
    assert {name: p for name, p in problems.items() if p} == {}


def test_one_worker_per_queue_family_and_every_queue_consumed(compose):
    from config.queues import Queue

    consumed = set()
    for service in compose["services"].values():
        command = service.get("command") or []
        if command[:4] == ["celery", "-A", "config", "worker"]:
            consumed |= set(command[command.index("-Q") + 1].split(","))
    assert consumed == {queue.value for queue in Queue}


def test_infrastructure_is_healthchecked_and_ordered(compose):
    services = compose["services"]
    assert "noeviction" in services["redis"]["command"]
    assert services["postgres"]["healthcheck"]["test"]
    assert services["redis"]["healthcheck"]["test"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["web"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    beats = [
        s
        for s in services.values()
        if (s.get("command") or [])[:4] == ["celery", "-A", "config", "beat"]
    ]
    assert len(beats) == 1
    assert beats[0]["deploy"]["replicas"] == 1
    # TFTP answers from ephemeral ports: the receiver must be on the host's network.
    assert services["tftp"]["network_mode"] == "host"
    assert "/data" in " ".join(services["flower"]["volumes"])


def test_env_example_names_every_secret_without_real_values():
    example = (DOCKER / ".env.example").read_text()
    for name in (
        "SECRET_KEY",
        "POSTGRES_PASSWORD",
        "FLOWER_BASIC_AUTH",
        "ALLOWED_HOSTS",
        "SERVER_NAME",
        "TLS_CERT_DIR",
        "MONITORING_LISTENER_TOKEN",
    ):
        assert f"{name}=" in example
    assert "change-me" in example


def test_dockerfile_runs_as_non_root_from_built_wheels():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "AS builder" in dockerfile
    assert "pip wheel" in dockerfile
    assert "USER fieldrelay" in dockerfile


def test_every_long_running_role_has_its_own_probe(compose):
    from config.probe import PROBES

    for name, service in compose["services"].items():
        if "build" not in service or name == "migrate":
            continue
        test = service["healthcheck"]["test"]
        assert test[:4] == ["CMD", "python", "-m", "config.probe"], name
        assert test[4] in PROBES, name
        command = service["command"]
        if test[4] == "worker":  # the probe pings the node the worker names itself
            assert command[command.index("-n") + 1] == f"{test[5]}@%h", name
    assert compose["services"]["migrate"]["healthcheck"] == {"disable": True}


def test_only_the_proxy_tftp_and_listener_face_the_network(compose):
    services = compose["services"]
    published = {
        name: service.get("ports", [])
        for name, service in services.items()
        if any(not str(port).startswith("127.0.0.1:") for port in service.get("ports", []))
    }
    assert published == {"proxy": ["443:443", "80:80"], "listener": ["8094:8094"]}
    assert services["tftp"]["network_mode"] == "host"
    assert services["proxy"]["depends_on"]["web"]["condition"] == "service_healthy"
    # web believes X-Forwarded-Proto from the proxy's fixed address only
    proxy_address = services["proxy"]["networks"]["edge"]["ipv4_address"]
    assert services["web"]["environment"]["FORWARDED_ALLOW_IPS"] == proxy_address
    assert services["web"]["environment"]["AUDIT_TRUSTED_PROXIES"] == proxy_address
    assert services["flower"]["environment"]["FLOWER_URL_PREFIX"] == "flower"


def test_the_proxy_redirects_to_https_and_sets_the_scheme():
    template = (DOCKER / "nginx" / "fieldrelay.conf.template").read_text()
    assert "return 301 https://$host$request_uri;" in template
    assert "proxy_set_header X-Forwarded-Proto https;" in template
    assert "location /flower/" in template
