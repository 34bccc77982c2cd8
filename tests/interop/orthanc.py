"""A real Orthanc with its DICOMweb plugin (Debian `orthanc`, `orthanc-dicomweb`) on a free 127.0.0.1 port."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import requests

from tests.live import free_port

PLUGIN = Path(os.environ.get("ORTHANC_PLUGINS", "/usr/share/orthanc/plugins")) / "libOrthancDicomWeb.so"
INSTALL = "install Debian's packages: apt-get install orthanc orthanc-dicomweb"


def orthanc_binary() -> str | None:
    """Debian puts the binary in /usr/sbin, which is not on every user's PATH."""
    return shutil.which("Orthanc", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))


class Orthanc:
    """One Orthanc process with its own storage folder, no DICOM listener, and ``servers`` as DICOMweb peers.

    ``stop`` always ends the process, killing it if it does not exit on SIGTERM.
    """

    def __init__(self, binary: str, folder: Path, servers: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        storage = folder / "storage"
        storage.mkdir(parents=True)
        config = {
            "Name": "xdsi-interop",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            # The DICOM listener stays off; its port is a free one so a running Debian service never clashes.
            "DicomServerEnabled": False,
            "DicomPort": free_port(),
            "Plugins": [str(PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/",
                         "Servers": {name: [url] for name, url in servers.items()}},
        }
        (folder / "orthanc.json").write_text(json.dumps(config, indent=2))
        self.log = folder / "orthanc.log"
        # Loopback only: neither Orthanc's libcurl nor this side may go through a proxy from the environment.
        self.http = requests.Session()
        self.http.trust_env = False
        environment = {**os.environ, "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([binary, str(folder / "orthanc.json")], cwd=folder, env=environment,
                                            stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise

    def _wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                plugins = self.http.get(f"{self.url}/plugins", timeout=5)
            except requests.ConnectionError:
                time.sleep(0.2)
                continue
            if "dicom-web" not in plugins.json():
                raise RuntimeError(f"Orthanc runs without its DICOMweb plugin:\n{self.log_tail()}")
            return
        raise RuntimeError(f"Orthanc did not answer within 60 s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def upload(self, data: bytes) -> dict[str, str]:
        """Orthanc's own REST store; the answer names the instance's study, series and instance IDs."""
        answer = self.http.post(f"{self.url}/instances", data=data, timeout=60)
        answer.raise_for_status()
        return answer.json()

    def stow(self, server: str, resources: list[str]) -> requests.Response:
        """The DICOMweb plugin's "send to a DICOMweb server" job, run synchronously."""
        return self.http.post(f"{self.url}/dicom-web/servers/{server}/stow",
                             json={"Resources": resources, "Synchronous": True}, timeout=300)

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
