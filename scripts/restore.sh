#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh into an EMPTY database and EMPTY folders: it never
# overwrites a live install.
#
#   createdb -O loupe loupe_restored                  # as the postgres user
#   set -a; . /etc/loupe/loupe.env; set +a            # then point DATABASE_URL, MEDIA_ROOT
#   scripts/restore.sh /var/backups/loupe/2026-12-01  # and LOUPE_MODEL_DIR at the new places
#
# Checks the backup's checksums first, then restores the database (one transaction, owned by
# the connecting role), the images and exports into MEDIA_ROOT and the model artifacts into
# LOUPE_MODEL_DIR. Run `manage.py migrate` afterwards when the code is newer than the backup.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 BACKUP_DIR" >&2
  exit 2
fi
backup=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
: "${DATABASE_URL:?DATABASE_URL must be set: the new, empty database to restore into}"
var_dir=${LOUPE_VAR_DIR:-$root/var}
media=${MEDIA_ROOT:-$var_dir/media}
models=${LOUPE_MODEL_DIR:-$var_dir/models}
started=$(date +%s)

(cd "$backup" && sha256sum --check --quiet SHA256SUMS) || {
  echo "$backup: checksums do not match; this backup is damaged" >&2
  exit 1
}

tables=$(psql --no-psqlrc --tuples-only --no-align --dbname="$DATABASE_URL" --command \
  "select count(*) from pg_catalog.pg_tables where schemaname not in ('pg_catalog', 'information_schema')")
if [ "$tables" != 0 ]; then
  echo "the database of DATABASE_URL has $tables tables: restore only into a new, empty one (createdb)" >&2
  exit 1
fi
for folder in "$media" "$models"; do
  if [ -e "$folder" ] && [ -n "$(ls -A "$folder")" ]; then
    echo "$folder is not empty: restore only into new folders" >&2
    exit 1
  fi
done

pg_restore --no-owner --no-privileges --exit-on-error --single-transaction \
  --dbname="$DATABASE_URL" "$backup/database.dump"
mkdir -p "$media" "$models"
tar -C "$media" -xf "$backup/media.tar"
tar -C "$models" -xf "$backup/models.tar"

echo "restored $backup in $(($(date +%s) - started)) s ($(grep '^created_at=' "$backup/backup.txt"))"
