"""xdsi: imaging document source and DICOMweb archive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from xdsi.app import create_app as create_app


def __getattr__(name: str) -> Any:
    # The web stack is imported only when an application is asked for, so the CLI,
    # the importer and the pure layers start without Flask.
    if name == "create_app":
        from xdsi.app import create_app

        return create_app
    raise AttributeError(name)
