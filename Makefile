# The targets CI and people run. `make demo` and `make test` are the two README commands.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
TEST_ENV := SECRET_KEY=test-only-not-a-secret-padded-to-fifty-characters-0123456789 \
	ALLOWED_HOSTS=localhost,127.0.0.1,testserver \
	DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
	CELERY_BROKER_URL=redis://127.0.0.1:6379/15 \
	CELERY_RESULT_BACKEND=redis://127.0.0.1:6379/15

.PHONY: venv services test test-engine lint demo demo-check drift-check rollout-check bench

venv:
	@scripts/ensure_venv.sh

services:
	@scripts/ensure_services.sh

# the slowest tests are printed, so a run over its 25 minutes says where the time went. The
# Django suite runs in two processes (pytest -n 2), each with its own test database and Redis
# database (tests/conftest.py): one process left a core idle while it waited on PostgreSQL,
# Redis, workers and the browser. The engine's tests run in two processes too, a file to each
# (the acceptance file trains its model once), the slow ones first.
test: venv services
	$(TEST_ENV) $(VENV)/bin/pytest tests/ml_engine -p no:django -n 2 --dist loadfile --durations=10
	$(TEST_ENV) $(VENV)/bin/pytest tests --ignore=tests/ml_engine --ignore=tests/drift_demo \
		--ignore=tests/rollout_demo \
		-n 2 --durations=25

test-engine: venv
	$(VENV)/bin/pytest tests/ml_engine -p no:django

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

demo: venv
	@scripts/demo.sh

# the demo, set up and checked as its users would use it, then stopped (CI runs it)
demo-check: venv
	@scripts/demo.sh --check

# manage.py demo_drift on a fresh embedded database, held to issue 11's targets (10-15 min)
drift-check: venv
	$(VENV)/bin/pytest tests/drift_demo -p no:django -s

# manage.py demo_rollout on a fresh embedded database, held to issue 12's targets (6-8 min)
rollout-check: venv
	$(VENV)/bin/pytest tests/rollout_demo -p no:django -s

bench: venv services
	$(TEST_ENV) $(PY) bench/station_throughput.py
