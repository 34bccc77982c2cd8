"""Mixed load: --clients clients for --seconds, each sending QIDO-RS, WADO-RS, metadata and STOW-RS
requests in turn, every answer checked, and the server's memory sampled all along.

Against a server on this machine (loopback only). It first stores a seed study (--seed-instances
copies of pydicom's CT_small under new UIDs); then each client, on its own kept-alive connection,
repeats: a search by PatientID (the seed study must be found), a retrieve of a seed instance as
stored (its SOP Instance UID must be in the answer), the study's metadata (every seed instance must
be listed) and a STOW-RS of one new instance into the seed series (it must be stored). Every
--sample seconds the resident memory (VmRSS) of the server and all its descendants is recorded.

The result gives requests, errors and latency per kind, and memory at the start, middle and end.
Exit status 2 on any error (a wrong status or answer, a connection refused or reset).

  .venv/bin/python bench/mixedload.py --base-url http://127.0.0.1:8091/dicom-web --server-pid PID \\
      --out bench/results/mixedload-DATE.json
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import io
import json
import os
import platform
import random
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dicomweb import loopback
from bench.slowclients import AS_STORED, CpuMeter
from bench.timing import Call, Connection, summary

JSON = {"Accept": "application/dicom+json"}


def rss_kib(pids: list[int]) -> dict[str, int]:
    """VmRSS (KiB) of each of PIDS and their descendants, by pid, and their total."""
    parents: dict[int, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parents[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    tree = set(pids)
    while grown := {pid for pid, parent in parents.items() if parent in tree} - tree:
        tree |= grown
    found: dict[str, int] = {}
    for pid in sorted(tree):
        try:
            with open(f"/proc/{pid}/status") as f:
                found[str(pid)] = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    found["total"] = sum(found.values())
    return found


class Seed:
    """The seed study and the means to make new instances of its series."""

    def __init__(self, count: int) -> None:
        self.template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        self.patient = f"MIXED-{random.randrange(10**8)}"
        self.study, self.series = generate_uid(), generate_uid()
        self.instances = [self.new() for _ in range(count)]

    def new(self) -> tuple[str, bytes]:
        ds = copy.deepcopy(self.template)
        ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = self.patient, self.study, self.series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        return ds.SOPInstanceUID, buffer.getvalue()


def calls(root: str, seed: Seed) -> dict[str, Any]:
    """The four kinds of request, each a function of the request number making a checked Call."""
    sops = [sop for sop, _ in seed.instances]
    series = f"{root}/studies/{seed.study}/series/{seed.series}"

    def contains(text: str) -> Any:
        return lambda reply: None if text.encode() in reply.body else f"{text} is not in the answer"

    def lists_every_seed_instance(reply: Any) -> str | None:
        missing = [sop for sop in sops if sop.encode() not in reply.body]
        return f"{len(missing)} seed instances missing" if missing else None

    def stow(k: int) -> Call:
        sop, data = seed.new()
        return Call("POST", f"{root}/studies", {"Content-Type": "application/dicom", **JSON}, data, contains(sop))

    return {
        "qido": lambda k: Call("GET", f"{root}/studies?PatientID={seed.patient}", JSON, check=contains(seed.study)),
        "wado": lambda k: Call("GET", f"{series}/instances/{sops[k % len(sops)]}", AS_STORED,
                               check=contains(sops[k % len(sops)])),
        "metadata": lambda k: Call("GET", f"{root}/studies/{seed.study}/metadata", JSON,
                                   check=lists_every_seed_instance),
        "stow": stow,
    }


def run(args: argparse.Namespace) -> int:
    origin = urlsplit(args.base_url)
    started, load = dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), os.getloadavg()
    seed = Seed(args.seed_instances)
    setup = Connection(origin)
    for _, data in seed.instances:
        reply = setup.send(Call("POST", f"{origin.path}/studies", {"Content-Type": "application/dicom"}, data))
        if reply.status != 200:
            raise SystemExit(f"storing the seed answered HTTP {reply.status}: {reply.body[:300]!r}")
    setup.http.close()
    kinds = calls(origin.path, seed)
    lock = threading.Lock()
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    counts: dict[str, int] = defaultdict(int)
    memory: list[dict[str, Any]] = []
    meter = CpuMeter(args.server_pid)
    began = time.monotonic()
    stop_at = began + args.seconds

    def client(number: int) -> None:
        connection = Connection(origin)
        k = number
        while time.monotonic() < stop_at:
            for name, make in kinds.items():
                call = make(k)
                try:
                    reply = connection.send(call)
                    problem = call.problem(reply)
                except OSError as error:
                    connection.http.close()
                    reply, problem = None, f"{type(error).__name__}: {error}"
                with lock:
                    counts[name] += 1
                    if problem:
                        errors.append(f"{name}: {problem}")
                    elif reply is not None:
                        latencies[name].append(reply.seconds)
            k += args.clients
        connection.http.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        memory.append({"t_s": round(time.monotonic() - began, 1), "rss_kib": rss_kib(args.server_pid)})
        print(f"  {memory[-1]['t_s']:>6} s  server RSS {memory[-1]['rss_kib']['total'] / 1024:.0f} MiB  "
              f"requests {sum(counts.values())}  errors {len(errors)}", flush=True)
        time.sleep(args.sample)
    for thread in threads:
        thread.join()
    span = time.monotonic() - began
    memory.append({"t_s": round(span, 1), "rss_kib": rss_kib(args.server_pid)})
    totals = [m["rss_kib"]["total"] for m in memory]
    # The first sample is taken as the clients start: "start" is the first after a minute of load.
    warm = next((m for m in memory if m["t_s"] >= min(60, span / 4)), memory[0])
    result = {
        "label": args.label, "base_url": args.base_url, "started": started,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_start": load,
                    "loadavg_end": os.getloadavg(), "cpu": meter.other()},
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "requests": dict(counts), "errors": len(errors), "first_errors": errors[:20],
        "latency": {name: summary(seconds, span, None) for name, seconds in latencies.items()},
        "rss_mib": {"at_start": round(memory[0]["rss_kib"]["total"] / 1024, 1),
                    "after_warmup": round(warm["rss_kib"]["total"] / 1024, 1),
                    "middle": round(memory[len(memory) // 2]["rss_kib"]["total"] / 1024, 1),
                    "end": round(memory[-1]["rss_kib"]["total"] / 1024, 1),
                    "max": round(max(totals) / 1024, 1)},
        "memory_samples": memory,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("requests", "errors", "rss_mib")}, indent=1))
    print(f"machine CPU during the run: {result['machine']['cpu']}")
    for error in errors[:20]:
        print(f"!! {error}")
    return 2 if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True, help="DICOMweb root, e.g. http://127.0.0.1:8091/dicom-web")
    parser.add_argument("--server-pid", type=int, action="append", required=True, help="server process (repeatable)")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    parser.add_argument("--label", default="server", help="name of this run")
    for flag, kind, default, text in (
        ("--clients", int, 16, "clients, each on its own connection"),
        ("--seconds", float, 600.0, "how long they send"),
        ("--seed-instances", int, 20, "instances of the seed study"),
        ("--sample", float, 10.0, "seconds between two memory samples"),
    ):
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default {default})")
    args = parser.parse_args()
    if not loopback(args.base_url):
        parser.error(f"{args.base_url} is not on a loopback address")
    if args.clients > 64 or args.seconds > 3600:
        parser.error("--clients is bounded at 64 and --seconds at 3600")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
