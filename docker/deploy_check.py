"""The deployment as an operator gets it: every role of docker/compose.yml run with its own
command, environment and probe (read from compose.yml, not copied), then used.

``--docker`` (``make image-check``): the real image on a real Docker daemon. docker-here has
no compose, so each service runs with ``docker run --network host`` as the image's user.
``--local`` (``make prod-smoke``, in CI): no Docker; the project's wheel in a fresh venv
outside the checkout, production settings, each role a process, each probe run beside it.

What differs from compose, in both, and why:
- the host names ``postgres`` and ``redis`` become 127.0.0.1 (this machine's services); the
  database is made afresh and Redis uses databases 11 and 12, so nothing else is touched;
- web trusts X-Forwarded-Proto from 127.0.0.1 (the proxy runs on this host, not at its
  compose address);
- the proxy is Debian's nginx on this host with docker/nginx/fieldrelay.conf.template, on
  ports 8443 and 8080 with a fresh self-signed certificate;
- ``--local`` only: the receiver listens on UDP 16969, not 69 (port 69 as non-root is the
  image's python-tftp, which ``--docker`` proves).

Then: every role's probe must be green (``--docker``: Docker's health ``healthy``); http
redirects to https; an operator logs in through the proxy in Chromium and loads /monitoring/
with its JS; Flower answers under /flower/ only with its password; and a simulated modem,
triggered over SNMP by the snmp worker, uploads its PNM file over TFTP to the receiver,
and the ingest worker stores it (a Transaction row).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import shutil
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
IMAGE = os.environ.get("IMAGE", "fieldrelay:local")
PREFIX = "fr-image-"
DATABASE = "fr_deploy_check"
LOCAL_TFTP_PORT = 16969
HTTPS_PORT, HTTP_PORT = 8443, 8080
HEALTHY_TIMEOUT_S = 300
OUT = ROOT / "var" / "deploy-check"

SUPERUSER, PASSWORD = "imagecheck", secrets.token_urlsafe(16)
FLOWER_AUTH = f"flower:{secrets.token_urlsafe(12)}"
LISTENER_TOKEN = secrets.token_urlsafe(24)


def log(message: str) -> None:
    print(f"[deploy-check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(
    *args: str,
    check: bool = True,
    timeout: float = 600,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise SystemExit(f"{shlex.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def settings_env() -> dict[str, str]:
    """docker/.env.example with its placeholders filled for this machine."""
    env: dict[str, str] = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        SERVER_NAME="localhost",
        ALLOWED_HOSTS="localhost",
        CSRF_TRUSTED_ORIGINS=f"https://localhost:{HTTPS_PORT}",
        POSTGRES_USER="postgres",
        POSTGRES_PASSWORD="",
        POSTGRES_DB=DATABASE,
        FLOWER_BASIC_AUTH=FLOWER_AUTH,
        PNM_TFTP_DEST_HOST="127.0.0.1",
        MONITORING_LISTENER_TOKEN=LISTENER_TOKEN,
        PNM_ARRIVAL_WAIT_S="1",
    )
    return env


def interpolate(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)[^}]*\}", lambda m: env.get(m.group(1), ""), value)


def on_this_host(value: str) -> str:
    """A compose URL with this machine's services in place of the compose service names."""
    value = re.sub(r"@(postgres|redis):", "@127.0.0.1:", value)
    value = re.sub(r"//(postgres|redis):(?=\d)", "//127.0.0.1:", value)
    return re.sub(r"(redis://127\.0\.0\.1:6379/)(\d+)", lambda m: f"{m[1]}{11 + int(m[2])}", value)


def roles(env: dict[str, str]) -> dict[str, dict]:
    """Each project service of compose.yml: its command, environment, health test, volumes."""
    compose = yaml.safe_load((DOCKER / "compose.yml").read_text())
    found = {}
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        environment = {
            key: on_this_host(interpolate(str(value), env))
            for key, value in (service.get("environment") or {}).items()
        }
        if "FORWARDED_ALLOW_IPS" in environment:
            environment["FORWARDED_ALLOW_IPS"] = "127.0.0.1"
            environment["AUDIT_TRUSTED_PROXIES"] = "127.0.0.1"
        health = service.get("healthcheck") or {}
        found[name] = {
            "command": service["command"],
            "environment": environment,
            "health": None if health.get("disable") else health["test"][1:],
            "volumes": [
                f"{PREFIX}{volume}" if not volume.startswith(("/", ".")) else volume
                for volume in service.get("volumes", [])
            ],
        }
    return found


class DockerRunner:
    """Each role a container of the image, as compose would run it (host network)."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.env_file = work / "env"
        self.env_file.write_text("".join(f"{k}={on_this_host(v)}\n" for k, v in env.items()))
        self.cleanup()

    def _args(self, role: dict) -> list[str]:
        args = ["--network", "host", "--env-file", str(self.env_file)]
        for key, value in role["environment"].items():
            args += ["-e", f"{key}={value}"]
        for volume in role["volumes"]:
            args += ["-v", volume]
        return args

    def run_once(self, role: dict) -> None:
        run("docker", "run", "--rm", *self._args(role), IMAGE, *role["command"], timeout=900)

    def start(self, name: str, role: dict) -> None:
        health = ["--health-cmd", shlex.join(role["health"]), "--health-interval", "5s"]
        health += ["--health-timeout", "10s", "--health-retries", "3"]
        health += ["--health-start-period", "90s"]
        run(
            "docker",
            "run",
            "-d",
            "--name",
            PREFIX + name,
            *self._args(role),
            *health,
            IMAGE,
            *role["command"],
        )

    def health(self, name: str, role: dict) -> tuple[bool, str]:
        state = json.loads(run("docker", "inspect", "-f", "{{json .State}}", PREFIX + name))
        health = state.get("Health") or {}
        said = ((health.get("Log") or [{}])[-1].get("Output") or "").strip()
        return health.get("Status") == "healthy", f"{health.get('Status')}: {said}"

    def logs(self, name: str) -> str:
        return run("docker", "logs", "--tail", "30", PREFIX + name, check=False)

    def manage(self, *args: str, **env: str) -> None:
        extra = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        run("docker", "exec", *extra, PREFIX + "web", "python", "manage.py", *args)

    def cleanup(self) -> None:
        names = run("docker", "ps", "-aq", "--filter", f"name={PREFIX}", check=False).split()
        if names:
            run("docker", "rm", "-f", *names, check=False)
        for volume in ("captures", "flower"):
            run("docker", "volume", "rm", "-f", PREFIX + volume, check=False)


class LocalRunner:
    """Each role a process of a fresh venv holding the project's wheel (no checkout on its
    path); the dependencies come from this interpreter's site-packages through a path file."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.work = work
        self.env = {key: on_this_host(value) for key, value in env.items()}
        self.env.update(
            PATH=f"{work / 'venv' / 'bin'}:/usr/bin:/bin",
            HOME=str(work / "home"),
            MPLCONFIGDIR=str(work / "home" / "mpl"),
            DJANGO_SETTINGS_MODULE="config.settings.production",
            FIELDRELAY_VAR_DIR=str(work / "var"),
            FIELDRELAY_STORAGE_ROOT=str(work / "var" / "storage"),
            FIELDRELAY_SPOOL_DIR=str(work / "var" / "spool"),
            STATIC_ROOT=str(work / "static"),
        )
        self.procs: dict[str, subprocess.Popen] = {}
        self.roles: dict[str, dict] = {}
        wheels = work / "wheel"
        run(
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            str(ROOT),
            "-w",
            str(wheels),
        )
        run(sys.executable, "-m", "venv", str(work / "venv"))
        self.python = str(work / "venv" / "bin" / "python")
        site = run(self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
        deps = sysconfig.get_paths()["purelib"]
        Path(site.strip(), "dependencies.pth").write_text(deps + "\n")
        run(
            self.python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            *map(str, wheels.glob("*.whl")),
        )
        (work / "app").mkdir()
        (work / "home").mkdir()
        shutil.copy(ROOT / "manage.py", work / "app" / "manage.py")  # as the image has it
        self._run(["python", "manage.py", "collectstatic", "--noinput", "-v", "0"], self.env)

    def _command(self, command: list[str]) -> list[str]:
        program, *rest = command
        if program in ("celery", "gunicorn"):
            return [self.python, "-m", program, *rest]
        if program in ("python", "python-tftp"):
            return [self.python, *rest]
        raise SystemExit(f"no local way to run {program}")

    def _role_env(self, role: dict) -> dict[str, str]:
        env = {**self.env, **role["environment"]}
        if env.get("PNM_TFTP_LISTEN_PORT") == "69":
            env["PNM_TFTP_LISTEN_PORT"] = str(LOCAL_TFTP_PORT)
        if "FLOWER_PORT" in role["environment"]:
            env["FLOWER_DB"] = str(self.work / "flower.db")
        return env

    def _run(self, command: list[str], env: dict[str, str]) -> str:
        return run(*self._command(command), cwd=self.work / "app", env=env)

    def run_once(self, role: dict) -> None:
        self._run(role["command"], self._role_env(role))

    def start(self, name: str, role: dict) -> None:
        self.roles[name] = role
        command = [arg for arg in role["command"] if not arg.startswith("--db=")]
        log_file = (self.work / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            self._command(command),
            cwd=self.work / "app",
            env=self._role_env(role),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )

    def health(self, name: str, role: dict) -> tuple[bool, str]:
        if self.procs[name].poll() is not None:
            return False, f"exited with {self.procs[name].returncode}"
        probe = [self.python, *role["health"][1:]]  # python -m config.probe ...
        result = subprocess.run(
            probe,
            cwd=self.work / "app",
            env=self._role_env(role),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.returncode == 0, result.stdout.strip()

    def logs(self, name: str) -> str:
        return (self.work / f"{name}.log").read_text(errors="replace")[-3000:]

    def manage(self, *args: str, **env: str) -> None:
        """A management command as the web role would run it (its environment)."""
        self._run(["python", "manage.py", *args], {**self._role_env(self.roles["web"]), **env})

    def cleanup(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_healthy(runner: DockerRunner | LocalRunner, roles: dict[str, dict]) -> None:
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    while True:
        states = {name: runner.health(name, role) for name, role in roles.items()}
        if all(ok for ok, _ in states.values()):
            for name, (_, said) in states.items():
                log(f"{name}: healthy ({said})")
            return
        if time.monotonic() > deadline:
            for name, (ok, said) in states.items():
                log(f"{name}: {'healthy' if ok else 'NOT healthy'}: {said}")
                if not ok:
                    print(runner.logs(name))
            raise SystemExit("not every role became healthy")
        time.sleep(3)


def prepare_services() -> None:
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c"]
    run(*psql, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    run(*psql, f"CREATE DATABASE {DATABASE}")
    for db in ("11", "12"):
        run("redis-cli", "-h", "127.0.0.1", "-n", db, "FLUSHDB")


def start_proxy(work: Path) -> subprocess.Popen:
    """Debian's nginx with the compose proxy's template, filled as its container would."""
    certs = work / "certs"
    certs.mkdir()
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost",
        "-keyout",
        str(certs / "privkey.pem"),
        "-out",
        str(certs / "fullchain.pem"),
    )
    values = {
        "SERVER_NAME": "localhost",
        "WEB_UPSTREAM": "127.0.0.1:8000",
        "FLOWER_UPSTREAM": "127.0.0.1:5555",
        "HTTPS_PORT": str(HTTPS_PORT),
        "HTTP_PORT": str(HTTP_PORT),
    }
    server = (DOCKER / "nginx" / "fieldrelay.conf.template").read_text()
    for key, value in values.items():
        server = server.replace("${" + key + "}", value)
    server = server.replace("/etc/nginx/certs", str(certs))
    (work / "fieldrelay.conf").write_text(server)
    (work / "nginx.conf").write_text(
        f"pid {work}/nginx.pid;\nerror_log {work}/error.log;\nevents {{}}\n"
        f"http {{\n include /etc/nginx/mime.types;\n access_log {work}/access.log;\n"
        f" client_body_temp_path {work}/body;\n proxy_temp_path {work}/proxy;\n"
        f" include {work}/fieldrelay.conf;\n}}\n"
    )
    proxy = subprocess.Popen(
        ["nginx", "-p", str(work), "-c", str(work / "nginx.conf"), "-g", "daemon off;"]
    )
    time.sleep(1)
    if proxy.poll() is not None:
        raise SystemExit((work / "error.log").read_text())
    return proxy


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are what check_proxy looks at, not something to follow."""

    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str, auth: str | None = None) -> tuple[int, dict[str, str], bytes]:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # our lab certificate
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=15) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def check_proxy() -> None:
    status, headers, _ = fetch(f"http://127.0.0.1:{HTTP_PORT}/monitoring/")
    assert status == 301, (status, headers)
    assert headers["Location"].startswith("https://"), headers
    status, _, body = fetch(f"https://localhost:{HTTPS_PORT}/health/")
    assert (status, json.loads(body)) == (200, {"status": "ok"}), (status, body)
    assert fetch(f"https://localhost:{HTTPS_PORT}/flower/")[0] == 401
    status, _, body = fetch(f"https://localhost:{HTTPS_PORT}/flower/", FLOWER_AUTH)
    assert status == 200, status
    assert b"Flower" in body, body[:300]
    log("proxy: http -> 301 https; /health/ 200; /flower/ 401 without and 200 with its password")


def check_dashboard_in_chromium(runner: DockerRunner | LocalRunner) -> None:
    from playwright.sync_api import sync_playwright

    runner.manage(
        "createsuperuser",
        "--noinput",
        "--username",
        SUPERUSER,
        "--email",
        "check@example.net",
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    base = f"https://localhost:{HTTPS_PORT}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
        scripts: dict[str, int] = {}
        page.on(
            "response",
            lambda r: scripts.__setitem__(r.url, r.status) if r.url.endswith(".js") else None,
        )
        page.goto(f"{base}/admin/login/?next=/monitoring/")
        page.fill("#id_username", SUPERUSER)
        page.fill("#id_password", PASSWORD)
        with page.expect_navigation():
            page.click("input[type=submit]")
        assert page.url == f"{base}/monitoring/", page.url
        page.wait_for_load_state("networkidle")
        OUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUT / "dashboard.png"))
        browser.close()
    dashboard_js = [status for url, status in scripts.items() if "dashboard.js" in url]
    assert dashboard_js == [200], scripts
    log(f"chromium: logged in over TLS, /monitoring/ loaded, scripts {sorted(scripts.values())}")
    log(f"screenshot: {OUT / 'dashboard.png'}")


def check_pnm_capture(env: dict[str, str], tftp_port: int) -> None:
    """A simulated modem on this host, triggered by the snmp worker, uploads over TFTP to
    the receiver on ``tftp_port``; the ingest worker stores it."""
    for key, value in env.items():
        os.environ[key] = on_this_host(value)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        REDIS_URL="redis://127.0.0.1:6379/11",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/12",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from captures import services
    from captures.models import TERMINAL_STATES, Operation, Transaction
    from simulators.modem import ModemFarm
    from tests.factories import register_modem

    farm = ModemFarm(1, tftp_port=tftp_port, measure_delay_s=0.3).start()
    try:
        operation = services.start_operation(
            modem=register_modem(farm[0]),
            name="multi_rxmer",
            measure_mode="continuous",
            duration_s=6,  # two ticks, far enough apart for production's 1 s poll interval
            sample_interval_s=6,
            channel_ids=[193],
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = Operation.objects.get(pk=operation.pk)
            if done.state in TERMINAL_STATES:
                break
            time.sleep(1)
        stored = Transaction.objects.filter(capture__operation=done).count()
        uploads = len(farm[0].uploads)
    finally:
        farm.stop()
    reasons = list(done.reasons.values_list("outcome", "reason", "count"))
    assert done.state == "completed", (done.state, done.last_error, reasons)
    assert stored == done.expected == done.collected == uploads >= 2, (stored, done.expected)
    log(f"tftp on {tftp_port}: {uploads} uploads received, {stored} transactions stored")


def main() -> int:
    docker = sys.argv[1:] == ["--docker"]
    if not docker and sys.argv[1:] != ["--local"]:
        print("usage: deploy_check.py --docker | --local")
        return 2
    missing = [tool for tool in ("nginx", "/usr/bin/chromium") if shutil.which(tool) is None]
    if missing:
        print(
            f"deploy_check needs {' and '.join(missing)}: install Debian's nginx-light and "
            "run .ci/browser-setup.sh (.ci/run does both)"
        )
        return 2
    started = time.monotonic()
    env = settings_env()
    prepare_services()
    all_roles = roles(env)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runner: DockerRunner | LocalRunner = (DockerRunner if docker else LocalRunner)(env, work)
        try:
            log("migrate")
            runner.run_once(all_roles.pop("migrate"))
            for name, role in all_roles.items():
                runner.start(name, role)
                log(f"started {name}: {shlex.join(role['command'])}")
            wait_healthy(runner, all_roles)
            proxy = start_proxy(work)
            try:
                check_proxy()
                check_dashboard_in_chromium(runner)
                check_pnm_capture(env, 69 if docker else LOCAL_TFTP_PORT)
            finally:
                proxy.terminate()
                proxy.wait(10)
        finally:
            if os.environ.get("KEEP") != "1":
                runner.cleanup()
    log(f"passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
