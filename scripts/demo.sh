#!/usr/bin/env bash
# Set up and run Loupe embedded (SQLite, tasks in the web process): no service needed.
# --check: set up, start the server, post one image as the station, log in as each demo user
# and exit (0 when all of it worked); CI runs it from a clean copy of the tree.
set -euo pipefail
CHECK=0
if [ "${1:-}" = "--check" ]; then CHECK=1; fi
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DEBUG=1
PORT=${PORT:-8000}
DATA=var/demo-data

$PY manage.py migrate --noinput -v 0
if [ ! -f "$DATA/annotations.json" ]; then
  echo "generating 2000 demo images in $DATA"
  $PY manage.py generate_images "$DATA" --count 2000 --seed 1
fi
if [ ! -f var/demo-holdout/annotations.json ]; then
  $PY manage.py generate_images var/demo-holdout --count 40 --seed 999 >/dev/null
fi
$PY manage.py setup_demo "$DATA" --token-file var/demo-station-token --seed-images var/demo-holdout
TOKEN=$(cat var/demo-station-token)
SAMPLE=$(ls var/demo-holdout/images/*.png | head -1)

if [ "$CHECK" = 1 ]; then
  PORT=$($PY -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  $PY manage.py runserver "127.0.0.1:$PORT" --noreload >var/demo-check-server.log 2>&1 &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null || true' EXIT
  for _ in $(seq 1 120); do
    if curl -fs -o /dev/null "http://127.0.0.1:$PORT/login/"; then break; fi
    sleep 1
  done
  $PY scripts/demo_check.py "http://127.0.0.1:$PORT" var/demo-station-token "$SAMPLE"
  exit 0
fi

cat <<TXT

Loupe is running at http://127.0.0.1:$PORT/
Log in (http://127.0.0.1:$PORT/login/) as
  inspector / loupe-review-shift  review queue (A accept, R reject, Z undo) and labeling
  supervisor / loupe-line-lead    lines, automation levels, thresholds
  data / loupe-data-team          labeled data
  admin / loupe-admin             everything, and users in http://127.0.0.1:$PORT/admin/
API docs (Swagger UI, after login): http://127.0.0.1:$PORT/api/docs/
Post an image as the demo station:
  curl -s -H "Authorization: Bearer $TOKEN" -F image=@$SAMPLE -F external_id=SN-\$RANDOM http://127.0.0.1:$PORT/api/v1/inspections/

TXT
exec $PY manage.py runserver "127.0.0.1:$PORT" --noreload
