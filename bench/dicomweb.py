"""DICOMweb load benchmark: STOW-RS, QIDO-RS and WADO-RS latency and throughput of any server.

`run` measures a server started EMPTY on this machine, with a corpus made by bench/corpus.py, in
phases (--phases, in this order):
  stow         uploads the corpus: --stow-single instances one per request, the rest --stow-batch
               per request; each answer must reference exactly the instances sent
  qido         studies by PatientID, by a StudyDate range, and all studies: the study UIDs must match
  wado         one instance (its SOP Instance UID and pixel data), study metadata (its SOP Instance
               UIDs) and the whole study (the SOP Instance UIDs of its parts; MB/s)
  concurrency  1, 4 and 16 clients (--clients) for --seconds each: retrieve one instance, QIDO by
               PatientID, study metadata, and STOW-RS of a corpus file under a fresh SOP Instance UID
Each test gives median and p95 latency and requests/s; with --server-pid, the server's CPU time per
request (that process and all its descendants, from /proc). Answers are checked after their timer
stops, against the corpus's manifest.json; any wrong answer is listed and the exit status is 2.
`report` prints result files side by side.

Examples:
  .venv/bin/python bench/dicomweb.py run --base-url http://127.0.0.1:8091/dicom-web --corpus bench/corpus \\
      --label xdsi --out bench/results/xdsi-DATE-dicomweb.json --server-pid PID
  .venv/bin/python bench/dicomweb.py report bench/results/a.json bench/results/b.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import io
import ipaddress
import json
import os
import platform
import random
import re
import secrets
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import Call, Connection, Reply, closed_loop, server_cpu, summary

DICOM = 'multipart/related; type="application/dicom"'
DICOM_JSON, AS_STORED = {"Accept": "application/dicom+json"}, {"Accept": DICOM + "; transfer-syntax=*"}
PHASES = ("stow", "qido", "wado", "concurrency")
Check = Callable[[Reply], "str | None"]


def multipart(blobs: list[bytes]) -> dict[str, Any]:
    """Headers and body of a STOW-RS request (PS3.18 10.5.1.1)."""
    boundary = uuid.uuid4().hex
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    return {"body": b"".join(head + blob + b"\r\n" for blob in blobs) + f"--{boundary}--\r\n".encode(),
            "headers": {**DICOM_JSON, "Content-Type": f"{DICOM}; boundary={boundary}"}}


def parts(reply: Reply) -> list[bytes]:
    """The part bodies of a multipart/related answer (RFC 2046 5.1.1), read by code of our own so
    that a fault of the server's multipart writer cannot hide behind the same fault here."""
    found = re.search(r'boundary="?([^";]+)"?', reply.content_type)
    if not reply.content_type.startswith("multipart/related") or not found:
        raise ValueError(f"not multipart/related: {reply.content_type!r}")
    chunks = (b"\r\n" + reply.body).split(b"\r\n--" + found[1].encode())
    if len(chunks) < 2 or not chunks[-1].startswith(b"--"):
        raise ValueError("no closing delimiter")
    return [chunk.split(b"\r\n\r\n", 1)[1] for chunk in chunks[1:-1]]


def same(got: list[str], expected: set[str]) -> str | None:
    missing, extra = len(expected - set(got)), len(set(got) - expected) + len(got) - len(set(got))
    return f"{missing} expected UIDs missing, {extra} others" if missing or extra else None


def values(items: list[dict[str, Any]], tag: str) -> list[Any]:
    """Every value of TAG in ITEMS, DICOM JSON objects (PS3.18 F.2)."""
    return [v for item in items for v in item.get(tag, {}).get("Value", [])]


def json_uids(tag: str, expected: set[str]) -> Check:
    return lambda reply: same(values(json.loads(reply.body or b"[]"), tag), expected)


def stored(expected: set[str]) -> Check:
    """PS3.18 10.5.3: 200 only when every instance is stored, each listed in ReferencedSOPSequence."""
    def check(reply: Reply) -> str | None:
        references = values([json.loads(reply.body)], "00081199")
        return same(values(references, "00081155"), expected) if reply.status == 200 else f"HTTP {reply.status}"
    return check


class Bench:
    """One run: what the corpus holds, the connection of the one-after-another tests, what went wrong."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.folder = args, args.corpus
        self.manifest = json.loads((args.corpus / "manifest.json").read_text())
        self.studies: list[dict[str, Any]] = self.manifest["studies"]
        self.instances = [(st, se, i) for st in self.studies for se in st["series"] for i in se["instances"]]
        self.origin = urlsplit(args.base_url)
        self.connection = Connection(self.origin)
        self.rng = random.Random(args.seed)
        self.failures: list[str] = []
        self.per_test: Counter[str] = Counter()
        self.deadline = time.monotonic() + args.max_seconds

    def url(self, path: str, **query: str) -> str:
        return self.origin.path.rstrip("/") + path + ("?" + urlencode(query) if query else "")

    def fail(self, test: str, problem: str) -> None:
        self.per_test[test] += 1
        if self.per_test[test] <= 3:  # the first few say what is wrong; the count is in the JSON
            self.failures.append(f"{test}: {problem}")

    def pick(self, items: list[Any], count: int) -> list[Any]:
        return [self.rng.choice(items) for _ in range(count)]

    def timed(self, test: str, calls: list[Any], warmup: int) -> dict[str, Any]:
        """Sends CALLS (each a Call, or a function making one just in time) one after another, the
        first WARMUP unmeasured."""
        if time.monotonic() > self.deadline:
            return {"skipped": "--max-seconds reached"}
        if len(calls) <= warmup:
            return {"skipped": "nothing to measure"}
        latencies, served, cpu_before = [], 0, None
        for number, item in enumerate(calls):
            if number == warmup:
                cpu_before = server_cpu(self.args.server_pid)
            call = item if isinstance(item, Call) else item()
            reply = self.connection.send(call)
            if problem := call.problem(reply):
                self.fail(test, f"{call.method} {call.target[:100]}: {problem}")
            elif number >= warmup:
                latencies.append(reply.seconds)
                served += len(reply.body)
        # One request after another: rates count the time in requests, not the checks between them.
        busy, cpu_after = sum(latencies), server_cpu(self.args.server_pid)
        result = summary(latencies, busy, None if cpu_before is None or cpu_after is None else cpu_after - cpu_before)
        result.update(MB_per_s=round(served / 1e6 / busy, 1) if busy else None, failures=self.per_test[test])
        print(f"  {test}: {brief(result)}", flush=True)
        return result

    def stow(self, batch: list[Any]) -> Call:
        return Call("POST", self.url("/studies"), check=stored({i["sop_uid"] for _, _, i in batch}),
                    **multipart([(self.folder / i["path"]).read_bytes() for _, _, i in batch]))

    def search(self, expected: list[dict[str, Any]], **query: str) -> Call:
        uids = {s["study_uid"] for s in expected}
        return Call("GET", self.url("/studies", **query), DICOM_JSON, check=json_uids("0020000D", uids))

    def patient(self, st: dict[str, Any]) -> Call:
        pid = st["patient_id"]
        return self.search([s for s in self.studies if s["patient_id"] == pid], PatientID=pid)

    def metadata(self, st: dict[str, Any]) -> Call:
        uids = {i["sop_uid"] for se in st["series"] for i in se["instances"]}
        path = f"/studies/{st['study_uid']}/metadata"
        return Call("GET", self.url(path), DICOM_JSON, check=json_uids("00080018", uids))

    def instance(self, st: dict[str, Any], se: dict[str, Any], i: dict[str, Any]) -> Call:
        def check(reply: Reply) -> str | None:
            got = [pydicom.dcmread(io.BytesIO(part)) for part in parts(reply)]
            if len(got) != 1 or got[0].SOPInstanceUID != i["sop_uid"]:
                return same([g.SOPInstanceUID for g in got], {i["sop_uid"]}) or f"{len(got)} parts"
            source = pydicom.dcmread(self.folder / i["path"])
            return None if got[0].PixelData == source.PixelData else "pixel data differs from the file sent"
        path = f"/studies/{st['study_uid']}/series/{se['series_uid']}/instances/{i['sop_uid']}"
        return Call("GET", self.url(path), AS_STORED, check=check)

    def study(self, st: dict[str, Any]) -> Call:
        uids = {i["sop_uid"] for se in st["series"] for i in se["instances"]}
        return Call("GET", self.url(f"/studies/{st['study_uid']}"), AS_STORED, check=lambda reply: same(
            [pydicom.dcmread(io.BytesIO(p), stop_before_pixels=True).SOPInstanceUID for p in parts(reply)], uids))

    def phase_stow(self) -> dict[str, Any]:
        results, items, single, size = {}, self.instances, self.args.stow_single, self.args.stow_batch
        for name, group, step in (("per_request_1", items[:single], 1), (f"per_request_{size}", items[single:], size)):
            batches = [group[k:k + step] for k in range(0, len(group), step)]
            results[name] = self.timed(f"stow/{name}", [lambda b=b: self.stow(b) for b in batches], 0)
            if results[name].get("n"):
                results[name]["instances_per_s"] = round(len(group) / results[name]["seconds"], 1)
        return results

    def phase_qido(self) -> dict[str, Any]:
        def by_dates(st: dict[str, Any]) -> Call:
            day = dt.datetime.strptime(st["study_date"], "%Y%m%d")
            low, high = ((day + dt.timedelta(days=d)).strftime("%Y%m%d") for d in (-120, 120))
            return self.search([s for s in self.studies if low <= s["study_date"] <= high], StudyDate=f"{low}-{high}")

        count = self.args.trials + self.args.warmup
        cases = {"studies_by_PatientID": [self.patient(st) for st in self.pick(self.studies, count)],
                 "studies_by_StudyDate_range": [by_dates(st) for st in self.pick(self.studies, count)],
                 "all_studies": [self.search(self.studies)] * count}
        return {name: self.timed(f"qido/{name}", calls, self.args.warmup) for name, calls in cases.items()}

    def phase_wado(self) -> dict[str, Any]:
        count = self.args.trials + self.args.warmup
        cases = {"instance": [self.instance(*t) for t in self.pick(self.instances, count)],
                 "study_metadata": [self.metadata(st) for st in self.pick(self.studies, count)]}
        results = {name: self.timed(f"wado/{name}", calls, self.args.warmup) for name, calls in cases.items()}
        studies = [self.study(st) for st in self.pick(self.studies, self.args.study_trials + 1)]
        return {**results, "study": self.timed("wado/study", studies, 1)}

    def phase_concurrency(self) -> dict[str, Any]:
        picks, studies, n = self.pick(self.instances, 256), self.studies, len(self.studies)
        sources = [((self.folder / i["path"]).read_bytes(), i["sop_uid"].encode()) for _, _, i in picks[:8]]
        nonce = secrets.randbelow(10**30)

        def stow(k: int) -> Call:
            blob, old = sources[k % len(sources)]
            # A fresh 2.25 UID exactly as long as the old one: replaced in place, every length stays right.
            digits = len(old) - len(b"2.25.")
            new = b"2.25.%d" % (10 ** (digits - 1) + (nonce + k) % (9 * 10 ** (digits - 1)))
            return Call("POST", self.url("/studies"), **multipart([blob.replace(old, new)]))

        def instance(k: int) -> Call:  # the full check would load the client more than the server
            st, se, i = picks[k % len(picks)]
            return replace(self.instance(st, se, i), check=lambda r: None if len(r.body) > i["size"] else "short")

        workloads = {"retrieve_instance": instance, "qido_by_PatientID": lambda k: self.patient(studies[k % n]),
                     "study_metadata": lambda k: replace(self.metadata(studies[k % n]), check=lambda r: None),
                     "stow_instance": stow}
        results: dict[str, Any] = {}
        for name, make in workloads.items():
            for clients in self.args.clients:
                test, level = f"concurrency/{name}/c{clients}", results.setdefault(name, {})
                if time.monotonic() > self.deadline:
                    level[f"c{clients}"] = {"skipped": "--max-seconds reached"}
                    continue
                level[f"c{clients}"], problems = closed_loop(self.origin, make, clients, self.args.seconds,
                                                             self.args.max_requests, self.args.server_pid)
                for problem in problems:
                    self.fail(test, problem)
                print(f"  {test}: {brief(level[f'c{clients}'])}", flush=True)
        return results


def brief(result: dict[str, Any]) -> str:
    if not result.get("n"):
        return result.get("skipped", "no successful request")
    cpu = f", server CPU {result['server_cpu_ms_per_req']} ms/req" if "server_cpu_ms_per_req" in result else ""
    return f"n={result['n']}, median {result['median_ms']} ms, p95 {result['p95_ms']} ms, {result['req_per_s']}/s{cpu}"


def key_figures(run: dict[str, Any]) -> dict[str, str]:
    """One figure per test: instances/s for STOW-RS, MB/s for whole studies, requests/s under
    concurrency, the median latency elsewhere."""
    rows = {}
    for phase, tests in run["phases"].items():
        for test, result in tests.items():
            for level, r in result.items() if phase == "concurrency" else [("", result)]:
                name = "/".join(filter(None, (phase, test, level)))
                if not r.get("n"):
                    rows[name] = r.get("skipped", "failed")
                elif phase == "stow":
                    rows[name] = f"{r['instances_per_s']} inst/s"
                elif test == "study":
                    rows[name] = f"{r['MB_per_s']} MB/s"
                elif phase == "concurrency":
                    rows[name] = f"{r['req_per_s']} req/s"
                else:
                    rows[name] = f"{r['median_ms']} ms"
    return rows


def table(runs: list[dict[str, Any]]) -> None:
    figures = [key_figures(run) for run in runs]
    names = list(dict.fromkeys(name for run in figures for name in run))
    width = max(map(len, names), default=4)
    print(f"{'test':<{width}}" + "".join(f"  {run['label'][:16]:>16}" for run in runs))
    for name in names:
        print(f"{name:<{width}}" + "".join(f"  {run.get(name, '-'):>16}" for run in figures))


def loopback(url: str) -> bool:
    try:
        return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(urlsplit(url).hostname, None))
    except (OSError, ValueError, UnicodeError):
        return False


def run(args: argparse.Namespace) -> int:
    bench, started, load = Bench(args), dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), os.getloadavg()
    phases = {}
    for phase in args.phases:
        print(f"== {phase}", flush=True)
        phases[phase] = getattr(bench, f"phase_{phase}")()
    bench.connection.http.close()
    result = {"label": args.label, "base_url": args.base_url, "started": started,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_start": load,
                          "loadavg_end": os.getloadavg()},
              "corpus": {k: bench.manifest[k] for k in ("params", "totals")},
              "settings": {k: v if isinstance(v, (int, float, list)) else str(v) for k, v in vars(args).items()},
              "phases": phases, "correctness_failures": bench.failures}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    table([result])
    for failure in bench.failures:
        print(f"!! {failure}")
    return 2 if bench.failures else 0


OPTIONS = (  # flag, type, default, help
    ("--label", str, "server", "name of this run in tables"), ("--phases", str, ",".join(PHASES), "phases to run"),
    ("--trials", int, 20, "measured requests per latency test"), ("--warmup", int, 2, "unmeasured requests first"),
    ("--study-trials", int, 10, "measured whole-study retrieves"), ("--seed", int, 1, "which items tests pick"),
    ("--stow-single", int, 100, "instances stored one per request"), ("--stow-batch", int, 50, "the rest per request"),
    ("--clients", str, "1,4,16", "clients per concurrency level"), ("--seconds", float, 5.0, "seconds per level"),
    ("--max-requests", int, 5000, "requests per level at most"),
    ("--max-seconds", float, 900.0, "tests that would start later are skipped"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run", help="measure a server", description=__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    go.add_argument("--base-url", required=True, help="DICOMweb root, e.g. http://127.0.0.1:8091/dicom-web")
    go.add_argument("--corpus", type=Path, required=True, help="folder made by bench/corpus.py")
    go.add_argument("--out", type=Path, help="write the results as JSON")
    go.add_argument("--server-pid", type=int, action="append", default=[], help="server process (repeatable)")
    go.add_argument("--allow-remote", action="store_true", help="allow a server not on a loopback address")
    for flag, kind, default, text in OPTIONS:
        go.add_argument(flag, type=kind, default=default, help=f"{text} (default {default})")
    commands.add_parser("report", help="print result files side by side").add_argument("results", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "report":
        table([json.loads(p.read_text()) for p in args.results])
        return 0
    args.phases, args.clients = args.phases.split(","), [int(c) for c in args.clients.split(",")]
    if set(args.phases) - set(PHASES):
        parser.error(f"--phases: choose among {','.join(PHASES)}")
    if not args.allow_remote and not loopback(args.base_url):
        parser.error(f"{args.base_url} is not on a loopback address; --allow-remote loads another machine")
    if not (args.corpus / "manifest.json").is_file():
        parser.error(f"{args.corpus} holds no manifest.json; make it with bench/corpus.py --out {args.corpus}")
    try:
        return run(args)
    except (OSError, http.client.HTTPException) as error:  # the server is down or went away
        sys.exit(f"{args.base_url}: {type(error).__name__}: {error}")


if __name__ == "__main__":
    raise SystemExit(main())
