# fieldrelay: every target works on a fresh machine (it makes .venv when missing).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Tests talk to real services; override any of these in the environment.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/fieldrelay
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
TEST_ENV = DJANGO_SETTINGS_MODULE=config.settings.test \
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	CELERY_BROKER_URL=$(TEST_REDIS_URL)
# The demo runs embedded: no PostgreSQL, no Redis.
DEMO_ENV = env -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL \
	FLOWER_BASIC_AUTH=operator:fieldrelay-demo \
	DJANGO_SETTINGS_MODULE=config.settings.local

# Python 3.12 for test-py312 (pyenv's, where there is one).
PYTHON312 ?= $(firstword $(wildcard /root/.pyenv/versions/3.12*/bin/python3.12) python3.12)
LOCK_ARGS = --universal --python-version 3.11 --generate-hashes --quiet \
	--custom-compile-command "make lock"
PIP = pip install --quiet --disable-pip-version-check

.PHONY: venv demo test test-py312 lint lock lock-check typecheck format bench clean lab-cert image-check prod-smoke

venv: $(STAMP)

# Exact versions from the lock file (hash-checked), then the project itself on top.
$(STAMP): pyproject.toml requirements/dev-lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP) --upgrade pip
	$(BIN)/$(PIP) --require-hashes -r requirements/dev-lock.txt
	$(BIN)/$(PIP) --no-deps -e .
	touch $(STAMP)

# Re-resolve after a change of pyproject.toml: pins that still fit are kept.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml $(LOCK_ARGS) -o requirements/lock.txt
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_ARGS) -o requirements/dev-lock.txt

# Fails when the lock files no longer match pyproject.toml (make lock fixes that).
lock-check: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	cp requirements/lock.txt requirements/dev-lock.txt $$tmp/ && \
	$(BIN)/uv pip compile pyproject.toml $(LOCK_ARGS) -o $$tmp/lock.txt && \
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_ARGS) -o $$tmp/dev-lock.txt && \
	diff -u requirements/lock.txt $$tmp/lock.txt && \
	diff -u requirements/dev-lock.txt $$tmp/dev-lock.txt && \
	echo "lock files match pyproject.toml"

# The suite's fast part on Python 3.12, from the same lock file, in its own venv.
VENV312 := .venv312
$(VENV312)/.installed: pyproject.toml requirements/dev-lock.txt
	test -x $(VENV312)/bin/python || $(PYTHON312) -m venv $(VENV312)
	$(VENV312)/bin/$(PIP) --upgrade pip
	$(VENV312)/bin/$(PIP) --require-hashes -r requirements/dev-lock.txt
	$(VENV312)/bin/$(PIP) --no-deps -e .
	touch $@

test-py312: $(VENV312)/.installed
	@$(TEST_ENV) $(VENV312)/bin/python -m config.servicecheck
	$(TEST_ENV) $(VENV312)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

demo: $(STAMP)
	$(DEMO_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEMO_ENV) $(BIN)/python manage.py collectstatic --noinput -v 0
	$(DEMO_ENV) $(BIN)/python manage.py demo_setup
	$(DEMO_ENV) PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/honcho -f Procfile start

test: $(STAMP)
	@$(TEST_ENV) $(BIN)/python -m config.servicecheck
	$(TEST_ENV) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# mypy with the django-stubs plugin: it imports the test settings but opens no connection.
typecheck: $(STAMP)
	$(TEST_ENV) $(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	@$(TEST_ENV) $(BIN)/python -m config.servicecheck
	@for script in bench/bench_*.py; do echo "== $$script"; $(TEST_ENV) $(BIN)/python $$script || exit 1; done

clean:
	rm -rf var .pytest_cache .ruff_cache .mypy_cache

# A self-signed certificate for a lab (docker/certs/, git-ignored): `make lab-cert NAME=host`.
NAME ?= localhost
lab-cert:
	mkdir -p docker/certs
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=$(NAME)" \
		-addext "subjectAltName=DNS:$(NAME),DNS:localhost,IP:127.0.0.1" \
		-keyout docker/certs/privkey.pem -out docker/certs/fullchain.pem
	chmod 600 docker/certs/privkey.pem

# The real image on a real Docker daemon (slow: ~10 min on vfs; not in CI, see prod-smoke).
# docker-here.sh starts a daemon and builds the python:3.11-slim stand-in when missing.
DOCKER_HERE ?= ../shared/tools/docker-here.sh
image-check: $(STAMP)
	bash $(DOCKER_HERE) daemon
	bash $(DOCKER_HERE) python-base
	docker build --network host -f docker/Dockerfile -t fieldrelay:local .
	IMAGE=fieldrelay:local $(BIN)/python docker/deploy_check.py --docker

# The same deployment without Docker (CI): the wheel in a fresh venv, every compose role's
# command and probe, production settings, Debian's nginx in front (docker/deploy_check.py).
prod-smoke: $(STAMP)
	$(BIN)/python docker/deploy_check.py --local
