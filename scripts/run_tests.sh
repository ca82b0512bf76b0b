#!/usr/bin/env bash
# `make test`: the whole suite as two streams side by side, one per core, each with its own
# PostgreSQL test database and Redis database so they never see each other's rows or tasks:
#   django     the Django tests that run in process (tests/ except the two below)
#   processes  the engine alone (no Django), then the tests that start real gunicorn,
#              Celery worker, PostgreSQL/Redis and Chromium processes
# Output lines carry their stream's name; the exit status is non-zero if either failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=.venv/bin/pytest
COMMON=(SECRET_KEY=test-only-not-a-secret-padded-to-fifty-characters-0123456789
        ALLOWED_HOSTS=localhost,127.0.0.1,testserver)
PROCESS_TESTS=(tests/integration tests/browser tests/faults)

stream() {  # name db redis_db command...
  local name=$1 db=$2 redis_db=$3
  shift 3
  env "${COMMON[@]}" DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$db" \
    CELERY_BROKER_URL="redis://127.0.0.1:6379/$redis_db" \
    CELERY_RESULT_BACKEND="redis://127.0.0.1:6379/$redis_db" \
    "$@" 2>&1 | sed -u "s/^/[$name] /"
}

ignores=()
for path in "${PROCESS_TESTS[@]}"; do ignores+=("--ignore=$path"); done
started=$SECONDS
# each stream keeps its temporary files apart (pytest clears a --basetemp when it starts)
tmp=${TMPDIR:-/tmp}/loupe-tests
mkdir -p "$tmp"  # pytest makes a --basetemp, not its parents
stream django test 15 "$PYTEST" --basetemp="$tmp/django" tests --ignore=tests/ml_engine \
  "${ignores[@]}" &
django=$!
(
  stream processes test_processes 14 "$PYTEST" --basetemp="$tmp/engine" tests/ml_engine \
    -p no:django
  engine_status=$?
  stream processes test_processes 14 "$PYTEST" --basetemp="$tmp/processes" "${PROCESS_TESTS[@]}"
  exit $((engine_status || $?))
) &
processes=$!
wait $django; django_status=$?
wait $processes; processes_status=$?
echo "make test: django stream exit $django_status, processes stream exit $processes_status," \
  "$((SECONDS - started)) s"
[ "$django_status" -eq 0 ] && [ "$processes_status" -eq 0 ]
