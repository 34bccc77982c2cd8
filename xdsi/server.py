"""Serving with gunicorn: xdsi's buffering gthread workers (``xdsi.worker``), one app per worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from xdsi.config import Settings
from xdsi.repository.blobs import BlobStore


class Server(BaseApplication):
    """gunicorn configured from Settings instead of its own command line."""

    def __init__(self, settings: Settings, access_log: bool = True) -> None:
        self.settings = settings
        self.access_log = access_log
        super().__init__()

    @property
    def spool_folder(self) -> Path:
        """Where request bodies too large for memory wait: the store's temporary folder, on the disk
        they are going to (its files are unnamed, so nothing is left behind by a killed worker)."""
        return BlobStore(self.settings.storage).tmp

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": self.settings.bind,
            "workers": self.settings.workers,
            "threads": self.settings.threads,
            "worker_class": "xdsi.worker.BufferingWorker",
            "keepalive": 30,
            "timeout": 120,
            "graceful_timeout": 10,
            "errorlog": "-",
            "loglevel": self.settings.log_level.lower(),
            "proc_name": "xdsi",
            # gunicorn believes X-Forwarded-Proto and SCRIPT_NAME headers from 127.0.0.1 unless
            # told otherwise; it must trust the same peers as xdsi.web.urls, no others.
            "forwarded_allow_ips": ",".join(str(network) for network in self.settings.trusted_proxy_networks),
        }
        if self.settings.tls_enabled:
            # The worker encrypts (xdsi.worker), which the kernel's sendfile cannot: files go by writes.
            options["sendfile"] = False
        if self.access_log:
            options["accesslog"] = "-"
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25.1 opens a control socket at one path per user; servers would collide.
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Imported here so each worker builds its own engine after the fork.
        from xdsi.app import create_app
        from xdsi.services.sweeper import Sweeper
        from xdsi.web.context import EXTENSION

        app = create_app(self.settings)
        # The worker reports clients refused at the TLS handshake, before the application sees them.
        self.auditor = app.extensions[EXTENSION].auditor
        if self.settings.sweep_interval:
            Sweeper(app.extensions[EXTENSION].store, self.settings.sweep_interval).start()
        return app
