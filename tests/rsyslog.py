"""A real rsyslogd (Debian ``rsyslog`` + ``rsyslog-gnutls``) on free loopback ports, as an Audit Record Repository.

It listens for RFC 5426 UDP and RFC 5425 TLS (mutual: the client's certificate must chain to the
test CA) and writes each message it receives as one line ``input|pri|app-name|msgid|msg``. The
functions below read the audit messages it received, each validated against the DICOM audit
message schema.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from tests.certificates import TestCA
from tests.conftest import SHARED
from tests.live import free_port

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
BOM = "\ufeff"
SCHEMA = etree.RelaxNG(etree.parse(str(SHARED / "schemas-ref" / "dicom-audit" / "audit-message.rng")))


@dataclass
class Received:
    input: str
    pri: str
    app_name: str
    msgid: str
    xml: bytes


class Rsyslog:
    def __init__(self, folder: Path, ca: TestCA) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.udp_port = free_port()
        self.tls_port = free_port()
        self.log = folder / "audit.log"
        cert, key = ca.issue("127.0.0.1", folder / "rsyslog")
        config = folder / "rsyslog.conf"
        config.write_text(f"""
global(workDirectory="{folder}" maxMessageSize="256k"
       defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile="{ca.cert_file}"
       defaultNetstreamDriverCertFile="{cert}" defaultNetstreamDriverKeyFile="{key}")
module(load="imudp")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
input(type="imudp" address="127.0.0.1" port="{self.udp_port}" ruleset="audit" name="udp")
input(type="imtcp" address="127.0.0.1" port="{self.tls_port}" ruleset="audit" name="tls")
template(name="line" type="string" string="%inputname%|%pri%|%app-name%|%msgid%|%msg%\\n")
ruleset(name="audit") {{ action(type="omfile" file="{self.log}" template="line" flushOnTXEnd="on"
                                asyncWriting="off") }}
""")
        self.process = subprocess.Popen([RSYSLOGD, "-n", "-f", str(config), "-i", str(folder / "rsyslogd.pid")],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._wait_listening()

    def _wait_listening(self) -> None:
        import socket

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                raise RuntimeError(f"rsyslogd exited: {output}")
            try:
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("rsyslogd did not listen within 30 s")

    def received(self) -> list[Received]:
        if not self.log.exists():
            return []
        found = []
        data = self.log.read_bytes()
        # Only whole lines: rsyslogd may be in the middle of writing the last one.
        for line in data[:data.rfind(b"\n") + 1].decode("utf-8").splitlines():
            parts = line.split("|", 4)
            if len(parts) == 5:
                found.append(Received(parts[0], parts[1], parts[2], parts[3], parts[4].lstrip(BOM).encode()))
        return found

    def wait_for(self, predicate: object, timeout: float = 30) -> list[Received]:
        """The messages received, once ``predicate(messages)`` holds (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.received()
            if predicate(messages) or time.monotonic() > deadline:  # type: ignore[operator]
                return messages
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


def parsed(received: Received) -> etree._Element:
    document = etree.fromstring(received.xml, etree.XMLParser(resolve_entities=False, no_network=True))
    assert SCHEMA.validate(document), SCHEMA.error_log
    return document


def event_id(document: etree._Element) -> str:
    return document.find("EventIdentification/EventID").get("csd-code")


def find(rsyslog: Rsyslog, wanted: Callable[[etree._Element], bool]) -> etree._Element:
    """The first received audit message ``wanted`` picks, waiting for it to arrive."""
    def pick(messages: list[Received]) -> list[etree._Element]:
        return [document for document in (parsed(m) for m in messages) if wanted(document)]

    messages = rsyslog.wait_for(lambda received: bool(pick(received)))
    found = pick(messages)
    assert found, f"no such audit message among {len(messages)}: {[m.xml[:200] for m in messages]}"
    return found[0]


def of_event(code: str, *, action: str | None = None, event_type: str | None = None,
             outcome: str | None = None) -> Callable[[etree._Element], bool]:
    def wanted(document: etree._Element) -> bool:
        ident = document.find("EventIdentification")
        types = [t.get("csd-code") for t in ident.findall("EventTypeCode")]
        return (event_id(document) == code and (action is None or ident.get("EventActionCode") == action)
                and (event_type is None or event_type in types)
                and (outcome is None or ident.get("EventOutcomeIndicator") == outcome))
    return wanted


def all_of(rsyslog: Rsyslog, wanted: Callable[[etree._Element], bool]) -> list[etree._Element]:
    return [document for document in (parsed(m) for m in rsyslog.received()) if wanted(document)]


def find_new(rsyslog: Rsyslog, wanted: Callable[[etree._Element], bool], before: int) -> etree._Element:
    """The one message ``wanted`` picks beyond the ``before`` such messages received earlier."""
    messages = rsyslog.wait_for(lambda _: len(all_of(rsyslog, wanted)) > before)
    found = all_of(rsyslog, wanted)
    assert len(found) == before + 1, f"{len(found) - before} new messages among {len(messages)}"
    return found[-1]


def participants(document: etree._Element) -> dict[str, etree._Element]:
    """ActiveParticipant by the meaning of its role (or by UserID when it has none)."""
    found = {}
    for element in document.findall("ActiveParticipant"):
        role = element.find("RoleIDCode")
        found[role.get("originalText") if role is not None else element.get("UserID")] = element
    return found


def objects(document: etree._Element, id_type: str) -> list[etree._Element]:
    return [element for element in document.findall("ParticipantObjectIdentification")
            if element.find("ParticipantObjectIDTypeCode").get("csd-code") == id_type]
