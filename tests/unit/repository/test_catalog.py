"""Adding a QIDO return key is one line in ``dicom.attributes.CATALOG`` (plus a migration adding its column).

The check runs in a fresh interpreter that appends one key to the catalog before anything
derives from it, builds the index schema from the models, stores an instance and asks QIDO-RS
over HTTP (the application's own WSGI client): the new key is read at ingest, kept in its
column, matched, and returned by default.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from xdsi.dicom.attributes import CATALOG

SCRIPT = textwrap.dedent('''
    import io, json, sys
    from xdsi.dicom import attributes

    # The one line a new return key takes (its column then comes from a migration):
    attributes.CATALOG += (attributes.Key("BodyPartExamined", 0x00180015, "CS", "series", "body_part", "text"),)

    from tests.conftest import make_settings
    from tests.dicomfiles import make_instance
    from xdsi.app import create_app
    from xdsi.repository.models import Base
    from xdsi.services.archive import Archive

    folder = sys.argv[1]
    settings = make_settings(f"sqlite:///{folder}/xdsi.db", f"{folder}/store", parse_processes=0)
    archive = Archive.open(settings)
    Base.metadata.create_all(archive.engine)
    archive.blobs.ensure()
    outcomes = archive.store.store([io.BytesIO(make_instance(BodyPartExamined="CHEST")),
                                    io.BytesIO(make_instance(BodyPartExamined="HEAD"))])
    assert all(outcome.status.value == "stored" for outcome in outcomes), outcomes
    client = create_app(settings, archive).test_client()
    found = {}
    for query in ("BodyPartExamined=CHEST", "BodyPartExamined=H*", "includefield=BodyPartExamined"):
        reply = client.get(f"/dicom-web/series?{query}", headers={"Accept": "application/dicom+json"})
        assert reply.status_code == 200, reply.data
        found[query] = [series.get("00180015") for series in reply.get_json()]
    archive.close()
    print(json.dumps(found))
''')


def test_one_more_catalog_line_makes_a_new_key_matched_and_returned(tmp_path: Path) -> None:
    assert "BodyPartExamined" not in {key.keyword for key in CATALOG}
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=root, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    chest, head = {"vr": "CS", "Value": ["CHEST"]}, {"vr": "CS", "Value": ["HEAD"]}
    assert found["BodyPartExamined=CHEST"] == [chest]
    assert found["BodyPartExamined=H*"] == [head]
    assert sorted(found["includefield=BodyPartExamined"], key=lambda v: v["Value"][0]) == [chest, head]
