"""Parse cost per instance: what ingest spends in Python before any I/O or SQL.

Times, over the first N files of a corpus, the steps ``services.reading.read_instance`` runs
(bounded header read, metadata walk, index keys, DICOM JSON, frame table) and, separately,
rendering PS3.19 XML from the cached JSON as a WADO-RS XML metadata answer does. Each file is
read once before timing, so the figures exclude disk reads.

Usage:
  .venv/bin/python bench/parse.py --corpus bench/corpus [--files 400] [--make-corpus]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import corpus
from xdsi.dicom.attributes import index_keys
from xdsi.dicom.parsing import Limits, open_instance
from xdsi.services import reading
from xdsi.services.metadata import EncodedAttributes, encode_parsed, fragment, xml_of

LIMITS = Limits(max_bytes=1 << 31, max_inflated_bytes=1 << 29, max_deflate_ratio=200, defer_size=1024)
THRESHOLD = 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="corpus folder (made by bench/corpus.py)")
    parser.add_argument("--files", type=int, default=400, help="how many of its files to time (default 400)")
    parser.add_argument("--make-corpus", action="store_true",
                        help="generate a default corpus first with bench/corpus.py if the folder holds none")
    args = parser.parse_args()
    if args.make_corpus:
        corpus.ensure(args.corpus)
    files = sorted(str(p) for p in args.corpus.rglob("*.dcm"))[: args.files]
    if not files:
        sys.exit(f"no .dcm files under {args.corpus}")
    fragments = [reading.read_instance(f, LIMITS, THRESHOLD, None).metadata_json for f in files]  # warm-up
    steps = dict.fromkeys(("header", "walk", "keys", "json", "frames"), 0.0)
    quick = 0
    for path in files:
        t0 = time.perf_counter()
        with open_instance(path, LIMITS) as parsed:
            t1 = time.perf_counter()
            elements = encode_parsed(parsed, THRESHOLD)
            t2 = time.perf_counter()
            keys = index_keys(EncodedAttributes(elements))
            t3 = time.perf_counter()
            fragment(elements)
            t4 = time.perf_counter()
            reading.frame_table_of(parsed, keys)
            t5 = time.perf_counter()
            quick += "dataset" not in parsed.__dict__
        for name, spent in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            steps[name] += spent
    started = time.perf_counter()
    for path in files:
        reading.read_instance(path, LIMITS, THRESHOLD, None)
    whole = time.perf_counter() - started
    started = time.perf_counter()
    for cached in fragments:
        xml_of(cached)
    xml = time.perf_counter() - started
    per = {name: spent / len(files) * 1e3 for name, spent in steps.items()}
    print(f"{len(files)} files, {quick} read by the quick header route; ms per instance:")
    print("  " + "  ".join(f"{name} {ms:.3f}" for name, ms in per.items()))
    print(f"  read_instance {whole / len(files) * 1e3:.3f}   XML from cached JSON {xml / len(files) * 1e3:.3f}")


if __name__ == "__main__":
    main()
