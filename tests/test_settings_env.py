"""Environment parsing: good values are read, malformed ones stop start-up naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import Env

ROOT = Path(__file__).resolve().parent.parent


def test_reads_typed_values():
    env = Env(
        {
            "DEBUG": "yes",
            "WORKERS": "4",
            "RATIO": "0.5",
            "HOSTS": "a.example, b.example,,",
            "ROOT": "~/data",
        }
    )
    assert env.bool("DEBUG") is True
    assert env.int("WORKERS", 1) == 4
    assert env.float("RATIO", 1.0) == 0.5
    assert env.list("HOSTS") == ["a.example", "b.example"]
    assert env.path("ROOT", Path("/x")) == Path("~/data").expanduser()
    assert env.int("MISSING", 7) == 7
    assert env.bool("MISSING", True) is True


@pytest.mark.parametrize(
    ("name", "value", "read"),
    [
        ("DEBUG", "maybe", lambda env: env.bool("DEBUG")),
        ("WORKERS", "four", lambda env: env.int("WORKERS", 1)),
        ("WORKERS", "0", lambda env: env.int("WORKERS", 1, minimum=1)),
        ("RATIO", "half", lambda env: env.float("RATIO", 1.0)),
        ("DATABASE_URL", "mysql://x/y", lambda env: env.database("DATABASE_URL", "")),
        ("DATABASE_URL", "postgres://host:port/db", lambda env: env.database("DATABASE_URL", "")),
        ("DATABASE_URL", "postgres://host:5432/", lambda env: env.database("DATABASE_URL", "")),
        ("BROKER", "amqp://x", lambda env: env.url("BROKER", "", ("redis",))),
        ("REDIS_URL", "myredis", lambda env: env.url("REDIS_URL", "", ("redis",))),
        ("REDIS_URL", "redis:///0", lambda env: env.url("REDIS_URL", "", ("redis",))),
        ("REDIS_URL", "redis://r:6379/cache", lambda env: env.url("REDIS_URL", "", ("redis",))),
        ("REDIS_URL", "redis://r:99999/0", lambda env: env.url("REDIS_URL", "", ("redis",))),
        ("LEVEL", "99", lambda env: env.int("LEVEL", 3, minimum=1, maximum=22)),
        ("WAIT_S", "-1", lambda env: env.float("WAIT_S", 1.0, minimum=0)),
        ("WAIT_S", "nan", lambda env: env.float("WAIT_S", 1.0)),
        ("WAIT_S", "inf", lambda env: env.float("WAIT_S", 1.0)),
        ("LOG_LEVEL", "LOUD", lambda env: env.choice("LOG_LEVEL", "INFO", ("INFO", "DEBUG"))),
    ],
)
def test_malformed_values_name_the_variable(name, value, read):
    with pytest.raises(ImproperlyConfigured, match=name):
        read(Env({name: value}))


def test_a_password_never_appears_in_the_message():
    with pytest.raises(ImproperlyConfigured) as refused:
        Env({"BROKER": "amqp://fr:s3cret-pass@mq:5672//"}).url("BROKER", "", ("redis",))
    assert "s3cret-pass" not in str(refused.value)


def test_choices_and_bounds_accept_good_values():
    env = Env({"LOG_LEVEL": "warning", "LEVEL": "22", "WAIT_S": "0"})
    assert env.choice("LOG_LEVEL", "INFO", ("INFO", "WARNING")) == "WARNING"
    assert env.int("LEVEL", 3, minimum=1, maximum=22) == 22
    assert env.float("WAIT_S", 1.0, minimum=0) == 0.0
    assert env.url("R", "redis://cache.internal:6379/15", ("redis",)).endswith("/15")


def test_database_urls():
    pg = Env({"DATABASE_URL": "postgres://u:p%40ss@db.internal:6543/fr?sslmode=require"})
    parsed = pg.database("DATABASE_URL", "")
    assert parsed["ENGINE"] == "config.postgresql"
    assert (parsed["USER"], parsed["PASSWORD"], parsed["HOST"], parsed["PORT"], parsed["NAME"]) == (
        "u",
        "p@ss",
        "db.internal",
        "6543",
        "fr",
    )
    assert parsed["OPTIONS"]["sslmode"] == "require"
    lite = Env({}).database("DATABASE_URL", "sqlite:////tmp/x/fr.sqlite3")
    assert lite["ENGINE"] == "django.db.backends.sqlite3"
    assert lite["NAME"] == "/tmp/x/fr.sqlite3"


PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "SECRET_KEY": "k" * 20 + "-Zq8#vR2!xLm9@pT4&wN7^bH3*cJ6%fG1",
}


def _python(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run our interpreter in a fresh process with no service URLs but the ones given."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "CELERY_"))
    }
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _django_check(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return _python(env_overrides, "manage.py", "check", *args)


def test_start_up_stops_on_malformed_variable():
    result = _django_check({"DJANGO_SETTINGS_MODULE": "config.settings.local", "DEBUG": "perhaps"})
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"REDIS_URL": "myredis"}, "REDIS_URL must be a URL with scheme redis or rediss://"),
        ({"PNM_ZSTD_LEVEL": "99"}, "PNM_ZSTD_LEVEL must be at most 22, got 99"),
        ({"PNM_POLL_INTERVAL_S": "-5"}, "PNM_POLL_INTERVAL_S must be at least 0.05, got -5.0"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL must be one of DEBUG, INFO, WARNING"),
        (
            {"CELERY_TASK_SOFT_TIME_LIMIT": "600", "CELERY_TASK_TIME_LIMIT": "600"},
            "CELERY_TASK_SOFT_TIME_LIMIT (600) must be below CELERY_TASK_TIME_LIMIT (600)",
        ),
        (  # 1 s poll + 3 tries of 5 s: a lease of 10 s would run out inside one slow poll
            {"PNM_SNMP_TIMEOUT_S": "5", "PNM_SNMP_RETRIES": "2"},
            "PNM_LEASE_TTL_S (10.0) must exceed PNM_POLL_INTERVAL_S + PNM_SNMP_TIMEOUT_S x "
            "(PNM_SNMP_RETRIES + 1) (16 s)",
        ),
        ({"PNM_ARRIVAL_WAIT_S": "5"}, "PNM_ARRIVAL_WAIT_S must be at most 4"),
        (  # a 4 s wait and a 6 s poll: the lease taken at the trigger would run out first
            {"PNM_ARRIVAL_WAIT_S": "4", "PNM_SNMP_TIMEOUT_S": "2.5", "PNM_SNMP_RETRIES": "1"},
            "PNM_ARRIVAL_WAIT_S (4.0) + PNM_POLL_INTERVAL_S + PNM_SNMP_TIMEOUT_S x "
            "(PNM_SNMP_RETRIES + 1) must stay below PNM_LEASE_TTL_S (10.0)",
        ),
    ],
)
def test_start_up_names_the_bad_variable(variables, message):
    """One line naming the variable, whatever role starts: settings are read first."""
    result = _django_check({"DJANGO_SETTINGS_MODULE": "config.settings.local", **variables})
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert message in last_line, result.stderr


@pytest.mark.parametrize(
    ("threshold", "options"), [("", "True 5"), ("12", "True 12"), ("0", "None None")]
)
def test_prepared_statements_follow_db_prepare_threshold(threshold, options):
    """On by default; 0 (a PgBouncer in transaction mode) turns off both prepared
    statements and the server-side binding they need."""
    result = _python(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DATABASE_URL": "postgres://fr@db.internal:5432/fieldrelay",
            "DB_PREPARE_THRESHOLD": threshold,
        },
        "-c",
        "import django; django.setup(); from django.conf import settings; "
        "o = settings.DATABASES['default']['OPTIONS']; "
        "print(o.get('server_side_binding'), o.get('prepare_threshold'))",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == options


def test_production_refuses_the_development_secret():
    result = _django_check(
        {"DJANGO_SETTINGS_MODULE": "config.settings.production", "ALLOWED_HOSTS": "fr.example"}
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_settings_pass_check_deploy():
    result = _django_check(
        {
            **PRODUCTION,
            "ALLOWED_HOSTS": "fieldrelay.example.net",
            "DATABASE_URL": "postgres://fr@db.internal:5432/fieldrelay",
            "REDIS_URL": "redis://cache.internal:6379/0",
            "CELERY_BROKER_URL": "redis://cache.internal:6379/1",
        },
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_serves_collected_static_files(tmp_path):
    """gunicorn has no static handler: WhiteNoise serves what collectstatic gathered."""
    env = {
        **PRODUCTION,
        "ALLOWED_HOSTS": "testserver",
        "STATIC_ROOT": str(tmp_path / "static"),
        "SECURE_SSL_REDIRECT": "false",
    }
    collect = _python(env, "manage.py", "collectstatic", "--noinput", "-v", "0")
    assert collect.returncode == 0, collect.stderr
    probe = (
        "import django; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/static/admin/css/base.css');"
        "print(r.status_code, r.headers.get('Content-Type'))"
    )
    served = _python(env, "-c", probe)
    assert served.stdout.startswith("200 text/css"), served.stderr


@pytest.mark.parametrize(
    ("argv", "role"),
    [
        (["/usr/local/bin/gunicorn", "config.wsgi:application"], "web"),
        (["/usr/local/bin/celery", "-A", "config", "worker", "-Q", "snmp", "-n", "snmp@%h"],
         "worker-snmp"),
        (["/venv/lib/python3.11/site-packages/celery/__main__.py", "-A", "config", "beat"],
         "beat"),
        (["celery", "-A", "config", "flower"], "flower"),
        (["manage.py", "tftp_receiver"], "tftp_receiver"),
    ],
)  # fmt: skip
def test_each_process_names_its_role_for_pg_stat_activity(argv, role):
    from config.env import process_role

    assert process_role(argv, {}) == role
    assert process_role(argv, {"FIELDRELAY_ROLE": "worker-snmp-7"}) == "worker-snmp-7"
