#!/usr/bin/env bash
# STOW-RS side by side: a fresh `xdsi serve` and a fresh Orthanc peer, measured one after the other in one
# run by ../shared/bench/dicomweb_bench.py (STOW phase, then the stow_instance workload at 1, 4, 16 clients).
#   bench/stow_pair.sh OUT_PREFIX [DATABASE_URL]      (default: SQLite in the scratch folder)
# Writes OUT_PREFIX-xdsi.json and OUT_PREFIX-orthanc.json. Extra harness options: STOW_PAIR_ARGS.
# A PostgreSQL DATABASE_URL names a database this script may drop and create (bench/scratch_db.py).
# Needs bench/corpus (bench/corpus.py --out bench/corpus) and the Debian orthanc + orthanc-dicomweb packages.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?OUT_PREFIX}; DB=${2:-}
HARNESS=${HARNESS:-../shared/bench/dicomweb_bench.py}
[ -f "$HARNESS" ] || HARNESS=/work/shared/bench/dicomweb_bench.py
ORTHANC_SH=$(dirname "$HARNESS")/orthanc.sh
SCRATCH=$(mktemp -d /tmp/xdsi-stow-pair.XXXXXX)
free_port() { .venv/bin/python -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
XPORT=$(free_port); OPORT=$(free_port); SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  "$ORTHANC_SH" stop "$SCRATCH/orthanc" >/dev/null 2>&1 || true
  rm -rf "$SCRATCH"
}
trap cleanup EXIT
if [ -z "$DB" ]; then
  DB="sqlite:///$SCRATCH/xdsi.db"
elif [[ "$DB" == postgresql* ]]; then
  DB=$(.venv/bin/python -c 'import sys; from bench.scratch_db import fresh_postgres; print(fresh_postgres(sys.argv[1], "xdsi_stow_pair"))' "$DB")
fi
XDSI_DATABASE_URL=$DB XDSI_STORAGE=$SCRATCH/store .venv/bin/xdsi serve --bind "127.0.0.1:$XPORT" --no-access-log \
  > "$SCRATCH/xdsi.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$XPORT/healthz" >/dev/null && break; sleep 0.2; done
"$ORTHANC_SH" start "$SCRATCH/orthanc" "$OPORT" >/dev/null
run() {  # label base-url pid out
  .venv/bin/python "$HARNESS" run --base-url "$2" --corpus bench/corpus --label "$1" --out "$4" --server-pid "$3" \
    --phases stow,concurrency --conc-workloads stow_instance --concurrency 1,4,16 --stow-plan 1x100,50x* \
    --note "shared 2-core machine: read 'other' CPU beside each figure" ${STOW_PAIR_ARGS:-}
}
run xdsi "http://127.0.0.1:$XPORT/dicom-web" "$SERVER" "$OUT-xdsi.json"
run orthanc "http://127.0.0.1:$OPORT/dicom-web" "$(cat "$SCRATCH/orthanc/orthanc.pid")" "$OUT-orthanc.json"
.venv/bin/python "$HARNESS" report "$OUT-xdsi.json" "$OUT-orthanc.json"
