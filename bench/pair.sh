#!/usr/bin/env bash
# xdsi and the Orthanc peer side by side: a fresh `xdsi serve` and a fresh Orthanc, measured one after the other
# by ../shared/bench/dicomweb_bench.py (the STOW phase, 100 requests of 1 instance then 50 per request, then the
# concurrency workloads WORKLOADS at CONCURRENCY clients).
#   bench/pair.sh OUT_PREFIX [DATABASE_URL]      (default: SQLite in the scratch folder)
# WORKLOADS (default stow_instance) and CONCURRENCY (default 1,4,16) choose the concurrency phase, e.g.
#   WORKLOADS=rendered_instance,wado_uri_jpeg CONCURRENCY=1,16 CORPUS=bench/corpus-render bench/pair.sh OUT
# XDSI_* variables reach the xdsi server (XDSI_RENDER_CACHE_BYTES=0: every rendering cold).
# ROUNDS=n repeats it with fresh stores, the two servers' order swapped each round, so a load that
# changes on a shared machine falls on both; writes OUT_PREFIX-xdsi-R.json and OUT_PREFIX-orthanc-R.json.
# Extra harness options: STOW_PAIR_ARGS. A PostgreSQL DATABASE_URL names a server where a database
# xdsi_stow_pair may be dropped and created (bench/scratch_db.py).
# Needs a corpus from the harness's own generator (CORPUS, default bench/corpus-harness:
#   .venv/bin/python ../shared/bench/make_corpus.py --out bench/corpus-harness) and the Debian orthanc +
# orthanc-dicomweb packages.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?OUT_PREFIX}; DB_ARG=${2:-}; ROUNDS=${ROUNDS:-1}; CORPUS=${CORPUS:-bench/corpus-harness}
HARNESS=${HARNESS:-../shared/bench/dicomweb_bench.py}
[ -f "$HARNESS" ] || HARNESS=/work/shared/bench/dicomweb_bench.py
ORTHANC_SH=$(dirname "$HARNESS")/orthanc.sh
SCRATCH=""; SERVER=""
free_port() { .venv/bin/python -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
stop_servers() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=""; fi
  if [ -n "$SCRATCH" ]; then "$ORTHANC_SH" stop "$SCRATCH/orthanc" >/dev/null 2>&1 || true; rm -rf "$SCRATCH"; SCRATCH=""; fi
}
trap stop_servers EXIT
run() {  # label base-url pid out wado-uri-url
  # The other server's unwritten files (Orthanc does not fsync) are written out first, so that
  # neither measurement pays for the other's disk writes.
  sync
  .venv/bin/python "$HARNESS" run --base-url "$2" --corpus "$CORPUS" --label "$1" --out "$4" --server-pid "$3" \
    --wado-uri-url "$5" --phases stow,concurrency --conc-workloads "${WORKLOADS:-stow_instance}" \
    --concurrency "${CONCURRENCY:-1,4,16}" --stow-plan '1x100,50x*' \
    --note "shared 2-core machine: read 'other' CPU beside each figure" ${STOW_PAIR_ARGS:-}
}
for round in $(seq 1 "$ROUNDS"); do
  SCRATCH=$(mktemp -d /tmp/xdsi-stow-pair.XXXXXX)
  XPORT=$(free_port); OPORT=$(free_port); DB=$DB_ARG
  if [ -z "$DB" ]; then
    DB="sqlite:///$SCRATCH/xdsi.db"
  elif [[ "$DB" == postgresql* ]]; then
    DB=$(.venv/bin/python -c 'import sys; from bench.scratch_db import fresh_postgres; print(fresh_postgres(sys.argv[1], "xdsi_stow_pair"))' "$DB")
  fi
  XDSI_DATABASE_URL=$DB XDSI_STORAGE=$SCRATCH/store .venv/bin/xdsi serve --bind "127.0.0.1:$XPORT" --no-access-log \
    > "$SCRATCH/xdsi.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$XPORT/healthz" >/dev/null && break; sleep 0.2; done
  "$ORTHANC_SH" start "$SCRATCH/orthanc" "$OPORT" >/dev/null
  xdsi() { run xdsi "http://127.0.0.1:$XPORT/dicom-web" "$SERVER" "$OUT-xdsi-$round.json" "http://127.0.0.1:$XPORT/wado"; }
  orthanc() { run orthanc "http://127.0.0.1:$OPORT/dicom-web" "$(cat "$SCRATCH/orthanc/orthanc.pid")" "$OUT-orthanc-$round.json" \
    "http://127.0.0.1:$OPORT/wado"; }
  if [ $((round % 2)) -eq 1 ]; then xdsi; orthanc; else orthanc; xdsi; fi
  stop_servers
  .venv/bin/python "$HARNESS" report "$OUT-xdsi-$round.json" "$OUT-orthanc-$round.json"
done
