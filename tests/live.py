"""A real ``xdsi serve`` (gunicorn, gthread workers) on a free 127.0.0.1 port, for HTTP tests."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from xdsi.config import Settings

# A traceback, a source file, or a folder the server runs from.
_INTERNAL_MARKERS = ("Traceback", 'File "', ".py", "/tmp/", "/work/", "site-packages", str(Path(__file__).parent.parent))
# Seconds a server has to answer /healthz after its start; a few are usual, even on a loaded machine.
START_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("XDSI_")}


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


class LiveServer:
    """Starts the server in a subprocess; ``request`` speaks HTTP to it over a kept-alive connection."""

    def __init__(self, database_url: str, storage: Path, workers: int = 2, *, announce_base_url: bool = False,
                 client_context: ssl.SSLContext | None = None, **settings: str) -> None:
        """With ``tls_cert`` among the settings the server speaks HTTPS, and ``request`` uses ``client_context``."""
        self.port = free_port()
        self.client_context = client_context
        self.base = f"{'https' if 'tls_cert' in settings else 'http'}://127.0.0.1:{self.port}"
        self.root = self.base + "/dicom-web"
        self.env = {
            **clean_env(),
            "XDSI_DATABASE_URL": database_url,
            "XDSI_STORAGE": str(storage),
            **({"XDSI_BASE_URL": self.base} if announce_base_url else {}),
            **{f"XDSI_{k.upper()}": v for k, v in settings.items()},
        }
        self.settings = Settings.load(environ=self.env)
        # A file, not a pipe: nothing reads the output before ``stop``, and a server that had written
        # a pipe's 64 KiB would block on its next log line.
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _collected)
        self._printed = ""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "xdsi", "serve", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--no-access-log"],
            stdout=self._output, stderr=subprocess.STDOUT, env=self.env,
        )
        self._wait()

    def _wait(self) -> None:
        """Until /healthz answers 200. A server that exits first, or does not answer in START_TIMEOUT, is
        killed with its workers and its output shown: a failed start leaves no process behind, nor a
        Popen of a running child for the garbage collector to warn about in a later test."""
        deadline = time.monotonic() + START_TIMEOUT
        while (remaining := deadline - time.monotonic()) > 0:
            if self.process.poll() is not None:
                raise RuntimeError(f"xdsi serve exited:\n{self._kill()}")
            try:
                # One probe never outlasts the deadline, however the server holds it.
                if self.request("GET", "/healthz", timeout=remaining).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"xdsi serve did not answer /healthz within {START_TIMEOUT} s:\n{self._kill()}")

    def _kill(self) -> str:
        """Kill the server and its workers (a worker stuck in its start heeds no SIGTERM); what it printed."""
        pid = self.process.pid
        with contextlib.suppress(OSError):
            for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                with contextlib.suppress(OSError):
                    os.kill(int(child), signal.SIGKILL)
        self.process.kill()
        self.process.wait(timeout=30)
        return self._collected()

    def _collected(self) -> str:
        """What the stopped server printed (a server may be stopped more than once)."""
        if not self._output.closed:
            self._output.seek(0)
            self._printed = self._output.read().decode(errors="replace")
            self._output.close()
        return self._printed

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 120) -> Reply:
        target = path if path.startswith("/") else urlsplit(path).path + (
            "?" + urlsplit(path).query if urlsplit(path).query else "")
        connection = self.connection(timeout)
        try:
            connection.request(method, target, body=body, headers=headers or {})
            response = connection.getresponse()
            reply = Reply(response.status, response.headers, response.read())
        finally:
            connection.close()
        if reply.status >= 400:
            self.assert_nothing_internal(reply)
        return reply

    def connection(self, timeout: float = 120) -> http.client.HTTPConnection:
        if self.base.startswith("https:"):
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=self.client_context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def assert_nothing_internal(self, reply: Reply) -> None:
        """No error answer of any test carries a traceback or a path of this machine."""
        text = str(reply.headers) + reply.body.decode("latin-1")
        leaks = [marker for marker in (*_INTERNAL_MARKERS, str(self.env["XDSI_STORAGE"])) if marker in text]
        assert not leaks, f"the {reply.status} answer shows {leaks}:\n{text[:2000]}"

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return self._collected()

    def alive(self) -> bool:
        return self.process.poll() is None
