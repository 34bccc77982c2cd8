"""Ingest throughput: instances/s importing the benchmark corpus, on SQLite and PostgreSQL.

The corpus comes from ``bench/corpus.py`` (seeded, so every run imports the same bytes). Each
database starts empty; the timer covers discovery, spooling, parsing, indexing and the per-batch
commits, as ``xdsi import`` does them.

Usage:
  .venv/bin/python bench/ingest.py --corpus bench/corpus [--postgres URL] [--batch 32] [--out FILE]
  .venv/bin/python bench/ingest.py --corpus bench/corpus --make-corpus [--corpus-args "--pixel-scale 1"]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import corpus
from bench.scratch_db import fresh_postgres
from xdsi import __version__
from xdsi.config import Settings
from xdsi.services.archive import Archive
from xdsi.services.importer import discover, import_files


def measure(database_url: str, storage: Path, folder: Path, batch: int) -> dict[str, object]:
    settings = Settings.load(environ={}, database_url=database_url, storage=str(storage))
    archive = Archive.open(settings)
    archive.prepare()
    try:
        started = time.perf_counter()
        found = discover([folder])
        files = [f for f in found.files if f.suffix == ".dcm"]
        report = import_files(archive.store, files, batch)
        seconds = time.perf_counter() - started
    finally:
        archive.close()
    size = sum(f.stat().st_size for f in files)
    return {
        "database": database_url.split(":", 1)[0].split("+", 1)[0],
        "instances": report.stored,
        "failed": report.failed,
        "seconds": round(seconds, 2),
        "instances_per_second": round(report.stored / seconds, 1),
        "mb_per_second": round(size / seconds / 1e6, 1),
        "batch": batch,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="corpus folder (made by bench/corpus.py)")
    parser.add_argument("--make-corpus", action="store_true",
                        help="generate the corpus first with bench/corpus.py if the folder holds none")
    parser.add_argument("--corpus-args", default="", help="extra arguments for bench/corpus.py")
    parser.add_argument("--postgres", metavar="URL",
                        help="also measure PostgreSQL (a server where databases can be created)")
    parser.add_argument("--batch", type=int, default=32, help="instances per transaction (default 32)")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()

    if args.make_corpus:
        corpus.ensure(args.corpus, args.corpus_args)
    elif not args.corpus.is_dir():
        parser.error(f"{args.corpus} does not exist; pass --make-corpus to generate it")
    results = []
    with tempfile.TemporaryDirectory(prefix="xdsi-ingest-") as scratch:
        root = Path(scratch)
        results.append(measure(f"sqlite:///{root / 'sqlite.db'}", root / "store-sqlite", args.corpus, args.batch))
        if args.postgres:
            url = fresh_postgres(args.postgres, "xdsi_bench_ingest")
            results.append(measure(url, root / "store-pg", args.corpus, args.batch))
    print(f"{'database':<11} {'instances':>9} {'seconds':>8} {'inst/s':>8} {'MB/s':>7}")
    for row in results:
        print(f"{row['database']:<11} {row['instances']:>9} {row['seconds']:>8} {row['instances_per_second']:>8}"
              f" {row['mb_per_second']:>7}")
    if args.out:
        args.out.write_text(json.dumps({
            "xdsi": __version__,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": platform.platform(),
            "corpus": str(args.corpus),
            "results": results,
        }, indent=2) + "\n")
    return 0 if all(row["failed"] == 0 for row in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
