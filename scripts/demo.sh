#!/usr/bin/env bash
# Set up and run Loupe embedded (SQLite, tasks in the web process): no service needed.
# Beside the server, a simulated station posts about one image a second to the demo line
# (demo/station_sim.py); it stops with the server.
# --check: set up, start the server and the station, check each demo user's pages and the
# station's answers (scripts/demo_check.py) and exit (0 when all of it worked); CI runs it
# from a clean copy of the tree.
set -euo pipefail
CHECK=0
if [ "${1:-}" = "--check" ]; then CHECK=1; fi
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DEBUG=1
PORT=${PORT:-8000}
VAR=${LOUPE_VAR_DIR:-var}
DATA=$VAR/demo-data
HOLDOUT=$VAR/demo-holdout
TOKEN_FILE=$VAR/demo-station-token
ANSWERS=$VAR/demo-station.jsonl

$PY manage.py migrate --noinput -v 0
if [ ! -f "$DATA/annotations.json" ]; then
  echo "generating 2000 demo images in $DATA"
  $PY manage.py generate_images "$DATA" --count 2000 --seed 1
fi
if [ ! -f "$HOLDOUT/annotations.json" ]; then
  $PY manage.py generate_images "$HOLDOUT" --count 40 --seed 999 >/dev/null
fi
$PY manage.py setup_demo "$DATA" --token-file "$TOKEN_FILE" --seed-images "$HOLDOUT"
TOKEN=$(cat "$TOKEN_FILE")
SAMPLE=$(ls "$HOLDOUT"/images/*.png | head -1)

PIDS=()
trap 'for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT
start_station() {
  : >"$ANSWERS"
  $PY -m demo.station_sim "http://127.0.0.1:$PORT" --token-file "$TOKEN_FILE" \
    --answers "$ANSWERS" >"$VAR/demo-station.log" 2>&1 &
  PIDS+=($!)
}

if [ "$CHECK" = 1 ]; then
  PORT=$($PY -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  $PY manage.py runserver "127.0.0.1:$PORT" --noreload >"$VAR/demo-check-server.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 120); do
    if curl -fs -o /dev/null "http://127.0.0.1:$PORT/login/"; then break; fi
    sleep 1
  done
  start_station
  $PY scripts/demo_check.py "http://127.0.0.1:$PORT" "$TOKEN_FILE" "$SAMPLE" --answers "$ANSWERS"
  exit 0
fi

start_station
cat <<TXT

Loupe is running at http://127.0.0.1:$PORT/
Log in (http://127.0.0.1:$PORT/login/) as
  inspector / loupe-review-shift  review queue (A accept, R reject, Z undo) and labeling
  supervisor / loupe-line-lead    lines, automation levels, thresholds, models
  data / loupe-data-team          labeled data (2,000 imported images), dataset versions
  admin / loupe-admin             everything, and users in http://127.0.0.1:$PORT/admin/
A simulated station posts about one image a second to demo-line (log: $VAR/demo-station.log).
API docs (Swagger UI, after login): http://127.0.0.1:$PORT/api/docs/
Post an image as the demo station:
  curl -s -H "Authorization: Bearer $TOKEN" -F image=@$SAMPLE -F external_id=SN-\$RANDOM http://127.0.0.1:$PORT/api/v1/inspections/

TXT
$PY manage.py runserver "127.0.0.1:$PORT" --noreload
