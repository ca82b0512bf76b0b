#!/usr/bin/env bash
# Set up and run Loupe embedded (SQLite, tasks in the web process): no service needed.
set -euo pipefail
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
  $PY manage.py generate_images var/demo-holdout --count 20 --seed 999 >/dev/null
fi
$PY manage.py setup_demo "$DATA" --token-file var/demo-station-token
TOKEN=$(cat var/demo-station-token)
SAMPLE=$(ls var/demo-holdout/images/*.png | head -1)

cat <<TXT

Loupe is running at http://127.0.0.1:$PORT/
  API docs (Swagger UI):  http://127.0.0.1:$PORT/api/docs/
  Admin:                  http://127.0.0.1:$PORT/admin/   admin / loupe-admin
  Inspector login:        inspector / loupe-inspector
Post an image as the demo station:
  curl -s -H "Authorization: Bearer $TOKEN" -F image=@$SAMPLE -F external_id=SN-\$RANDOM http://127.0.0.1:$PORT/api/v1/inspections/

TXT
exec $PY manage.py runserver "127.0.0.1:$PORT" --noreload
