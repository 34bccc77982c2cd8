"""Crash safety: kill an ingesting process with SIGKILL at random moments, then check the archive.

Each iteration forks a child that stores batches of instances without pause, kills it after a
random delay, reaps it, then (as a restarted server would) sweeps the store and checks:

- every indexed instance has its file, with the recorded size and SHA-256;
- no file lacks an index row and no temporary file is left after the sweep;
- every instance the child reported stored (acknowledged) is indexed;
- storing the whole payload again succeeds for every instance.

The archive runs with the ``overwrite`` duplicate policy and the child changes a comment in each
instance before storing it, so every store writes a new file and supersedes the old one: the
archive stays at a fixed number of instances while every kill lands in a real write path
(spool, place, index, commit, release, or deletion of the superseded file).

Usage: python bench/crash.py --iterations 1000 [--postgres URL] [--storage DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scratch_db import fresh_postgres
from tests.consistency import assert_consistent
from tests.dicomfiles import make_dataset, to_bytes
from xdsi.config import Settings
from xdsi.repository import index
from xdsi.services.archive import Archive


@dataclass
class CrashReport:
    iterations: int = 0
    acknowledged: int = 0
    violations: list[str] = field(default_factory=list)
    sweep: Counter[str] = field(default_factory=Counter)
    indexed_after_kill: list[int] = field(default_factory=list)
    seconds: float = 0.0


NONCE = b"NONCE-0000000000"


def make_payloads(count: int, seed: int) -> list[bytes]:
    """Instances of a few studies and series, of varied sizes (4 KB to 0.5 MB), each with NONCE."""
    rng = random.Random(seed)
    studies = [(f"2.25.{seed}{s}1", [f"2.25.{seed}{s}2{n}" for n in range(2)]) for s in range(3)]
    payloads = []
    for number in range(count):
        study, series = rng.choice(studies)
        side = rng.choice([32, 64, 128, 256, 512])
        ds = make_dataset(study_uid=study, series_uid=rng.choice(series), sop_uid=f"2.25.{seed}9{number}",
                          patient_id=f"P{study[-2]}", rows=side, columns=side, InstanceNumber=number + 1,
                          ImageComments=NONCE.decode())
        payloads.append(to_bytes(ds))
    return payloads


def _child(settings: Settings, payloads: list[bytes], acked: Path, seed: int) -> None:
    """Store random batches forever, appending acknowledged SOP Instance UIDs to ``acked``.

    Parsing stays in this process: parser processes would take longer to start than most kills
    wait, and they only read spooled files, so they change nothing a kill can leave behind
    (``tests/integration/test_crash_safety.py`` kills writers that use them).
    """
    rng = random.Random(seed)
    archive = Archive.open(dataclasses.replace(settings, parse_processes=0))
    with open(acked, "a") as log:
        while True:
            chosen = rng.sample(payloads, rng.randint(1, 8))
            batch = [p.replace(NONCE, b"NONCE-%010d" % rng.getrandbits(32)) for p in chosen]
            for outcome in archive.store.store(io.BytesIO(p) for p in batch):
                if outcome.status.succeeded:
                    log.write(f"{outcome.sop_instance_uid}\n")
            log.flush()


def run_crash_loop(
    settings: Settings,
    iterations: int,
    *,
    payload_count: int = 40,
    max_delay: float = 0.5,
    seed: int = 1,
    progress: bool = False,
) -> CrashReport:
    if settings.duplicate_policy != "overwrite":
        raise ValueError("the crash loop rewrites instances: run it with duplicate_policy='overwrite'")
    report = CrashReport()
    payloads = make_payloads(payload_count, seed)
    rng = random.Random(seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xdsi-crash-") as scratch:
        acked = Path(scratch) / "acked.txt"
        acked.touch()
        archive = Archive.open(settings)
        archive.prepare()
        archive.close()
        for iteration in range(iterations):
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                try:
                    _child(settings, payloads, acked, seed * 100_003 + iteration)
                finally:
                    os._exit(0)
            time.sleep(rng.uniform(0, max_delay))
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            report.iterations += 1
            _check(settings, acked, report, iteration)
            if progress and (iteration + 1) % 50 == 0:
                print(f"  {iteration + 1} kills, {len(report.violations)} violations", file=sys.stderr)
        _check_reimport(settings, payloads, report)
    report.seconds = time.perf_counter() - started
    return report


def _check(settings: Settings, acked: Path, report: CrashReport, iteration: int) -> None:
    archive = Archive.open(settings)
    try:
        before = {p.name for p in archive.blobs.tmp.iterdir()}
        archive.store.sweep()
        report.sweep.update(Counter(name.rsplit(".", 1)[-1] for name in before))
        try:
            report.indexed_after_kill.append(assert_consistent(archive))
        except AssertionError as exc:
            report.violations.append(f"kill {iteration}: {exc}")
            return
        wanted = set(acked.read_text().split())
        report.acknowledged = len(wanted)
        with archive.sessions() as session:
            missing = [uid for uid in wanted if index.find_instance(session, uid) is None]
        if missing:
            report.violations.append(f"kill {iteration}: acknowledged but not indexed: {missing[:3]}")
    finally:
        archive.close()


def _check_reimport(settings: Settings, payloads: list[bytes], report: CrashReport) -> None:
    archive = Archive.open(settings)
    try:
        outcomes = archive.store.store(io.BytesIO(p) for p in payloads)
        failed = [o.reason for o in outcomes if not o.status.succeeded]
        if failed:
            report.violations.append(f"re-import failed: {failed[:3]}")
        try:
            if assert_consistent(archive) != len(payloads):
                report.violations.append("re-import did not index every instance")
        except AssertionError as exc:
            report.violations.append(f"after re-import: {exc}")
    finally:
        archive.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=1000, help="kills (default 1000)")
    parser.add_argument("--postgres", metavar="URL", help="run on PostgreSQL, in a fresh database on this server "
                        "(default: SQLite in a scratch folder)")
    parser.add_argument("--storage", help="an empty or new blob store folder, e.g. on the disk to test "
                        "(default: a scratch folder)")
    parser.add_argument("--max-delay", type=float, default=0.5, help="longest wait before a kill, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="FILE", help="also write the counts as JSON")
    args = parser.parse_args()
    if args.storage and Path(args.storage).exists() and any(Path(args.storage).iterdir()):
        parser.error(f"--storage {args.storage} is not empty; the loop needs a store of its own")
    with tempfile.TemporaryDirectory(prefix="xdsi-crash-bench-") as scratch:
        settings = Settings.load(
            environ={},
            database_url=fresh_postgres(args.postgres, "xdsi_bench_crash") if args.postgres
            else f"sqlite:///{scratch}/xdsi.db",
            storage=args.storage or f"{scratch}/store",
            duplicate_policy="overwrite",
        )
        report = run_crash_loop(settings, args.iterations, max_delay=args.max_delay, seed=args.seed, progress=True)
    indexed = report.indexed_after_kill
    summary = {
        "database": settings.display_database_url.split(":", 1)[0].split("+")[0],
        "kills": report.iterations,
        "violations": len(report.violations),
        "acknowledged_instances": report.acknowledged,
        "indexed_after_kill_min_mean_max": [min(indexed), round(sum(indexed) / len(indexed), 1), max(indexed)]
        if indexed else [],
        "leftovers_swept": dict(report.sweep),
        "seconds": round(report.seconds, 1),
    }
    print(json.dumps(summary, indent=2))
    for violation in report.violations[:20]:
        print("VIOLATION:", violation)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if report.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
