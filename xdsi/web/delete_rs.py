"""DELETE of a study, series or instance on the PS3.18 resource paths (an archive extension).

PS3.18 defines no delete transaction; the Azure DICOM service, Google Cloud Healthcare and
dcm4chee-arc (for a rejected study) answer DELETE on the retrieve paths, and dicomweb-client's
``delete_study``, ``delete_series`` and ``delete_instance`` send it. The answer is 204 No
Content, as from Azure and dcm4chee-arc: the delete is done when it is sent (Google's 200 with
an Operation body reports a study deletion still running, which this archive never has).

Off unless ``delete_enabled``: the method then answers 405 naming the setting, with the
methods the resource does allow (RFC 9110 15.5.6).
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, request

from xdsi.services import retrieve
from xdsi.services.retrieve import Target
from xdsi.web.context import announce, archive, identity, session
from xdsi.web.errors import text_response
from xdsi.web.urls import DICOMWEB

blueprint = Blueprint("delete_rs", __name__, url_prefix=DICOMWEB)

DISABLED = ("deleting is turned off on this server; an operator enables it with the setting "
            "delete_enabled (XDSI_DELETE_ENABLED=true)")


@blueprint.delete("/studies/<study>")
@blueprint.delete("/studies/<study>/series/<series>")
@blueprint.delete("/studies/<study>/series/<series>/instances/<instance>")
def delete_objects(study: str, series: str | None = None, instance: str | None = None) -> Response:
    current = archive()
    if not current.settings.delete_enabled:
        return text_response(405, DISABLED, {"Allow": ", ".join(_other_methods())})
    target = Target.checked(study, series, instance, where=" in the path")
    if identity().issuers is not None:
        retrieve.instances(session(), target)  # NotFound for a caller who may not see this patient
    current.deleter.delete(target)
    return Response(status=204)


def _other_methods() -> list[str]:
    """What this path answers besides DELETE, from the URL map (GET and HEAD, POST on a study)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    return sorted(method for method in adapter.allowed_methods() if method != "DELETE")


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    with app.app_context():
        enabled = archive().settings.delete_enabled
    announce(app, "DELETE (studies, series, instances)", f"{DICOMWEB}/studies/{{study}}", enabled=enabled)
