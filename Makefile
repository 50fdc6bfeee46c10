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

.PHONY: venv demo test lint typecheck format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

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
