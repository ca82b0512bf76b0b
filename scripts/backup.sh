#!/usr/bin/env bash
# Back up a Loupe install into a new folder: the database (pg_dump, custom format), the images
# and exports (MEDIA_ROOT) and the model artifacts (LOUPE_MODEL_DIR), with their checksums.
#
#   set -a; . /etc/loupe/loupe.env; set +a
#   scripts/backup.sh /var/backups/loupe/2026-12-01
#
# Reads DATABASE_URL, MEDIA_ROOT and LOUPE_MODEL_DIR (default LOUPE_VAR_DIR/media and /models,
# as loupe/settings.py does). Safe while Loupe runs. The database is dumped first: an image is
# stored before its row commits, so the files copied after the dump hold every file a dumped
# row names (and perhaps a few newer ones, which are harmless). scripts/restore.sh restores it.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 DEST_DIR   (a folder that does not exist yet, or is empty)" >&2
  exit 2
fi
dest=$1
root=$(cd "$(dirname "$0")/.." && pwd)
: "${DATABASE_URL:?DATABASE_URL must be set: load the production variables (/etc/loupe/loupe.env)}"
case "$DATABASE_URL" in
  postgres://* | postgresql://*) ;;
  *) echo "DATABASE_URL must be a PostgreSQL URL; the embedded SQLite file is backed up by copying var/" >&2; exit 2 ;;
esac
var_dir=${LOUPE_VAR_DIR:-$root/var}
media=${MEDIA_ROOT:-$var_dir/media}
models=${LOUPE_MODEL_DIR:-$var_dir/models}

if [ -e "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
  echo "$dest is not empty: a backup never overwrites another" >&2
  exit 1
fi
umask 077  # the dump holds password hashes and token hashes
mkdir -p "$dest"
started=$(date +%s)

pg_dump --format=custom --compress=6 --file="$dest/database.dump" --dbname="$DATABASE_URL"

# Half-written uploads and exports (.upload-*, *.part) and import archives waiting for a worker
# are left out: nothing in the database names them as finished files.
archive() {
  local source=$1 target=$2
  if [ -d "$source" ]; then
    tar -C "$source" -cf "$target" --exclude='.upload-*' --exclude='*.part' --exclude='./imports' .
  else
    tar -cf "$target" --files-from /dev/null
  fi
}
archive "$media" "$dest/media.tar"
archive "$models" "$dest/models.tar"

{
  echo "created_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "code=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "media_files=$(tar -tf "$dest/media.tar" | grep -vc '/$' || true)"
  echo "model_files=$(tar -tf "$dest/models.tar" | grep -vc '/$' || true)"
} >"$dest/backup.txt"
(cd "$dest" && sha256sum database.dump media.tar models.tar backup.txt >SHA256SUMS)

echo "backup written to $dest in $(($(date +%s) - started)) s:"
du -sh "$dest"/database.dump "$dest"/media.tar "$dest"/models.tar
