"""QIDO-RS (PS3.18 10.6): search for studies, series and instances."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Flask, Response, request

from xdsi.dicom.uids import validate_uid
from xdsi.services.search import Level, SearchAnswer, SearchLimits, search
from xdsi.web import multipart, negotiation
from xdsi.web.context import NEGOTIATION_PARAMETERS, accepted, announce, archive, requester, session
from xdsi.web.errors import warning
from xdsi.web.negotiation import DICOM_XML
from xdsi.web.urls import DICOMWEB, dicomweb_root

blueprint = Blueprint("qido_rs", __name__, url_prefix=DICOMWEB)

# PS3.18 10.6.3.2: JSON by default; XML as multipart/related.
OFFERS = negotiation.dataset_offers(xml_multipart=True)


@blueprint.get("/studies")
def search_for_studies() -> Response:
    return _search("study")


@blueprint.get("/series")
def search_for_series() -> Response:
    return _search("series")


@blueprint.get("/instances")
def search_for_instances() -> Response:
    return _search("instance")


@blueprint.get("/studies/<study>/series")
def search_for_study_series(study: str) -> Response:
    return _search("series", study)


@blueprint.get("/studies/<study>/instances")
def search_for_study_instances(study: str) -> Response:
    return _search("instance", study)


@blueprint.get("/studies/<study>/series/<series>/instances")
def search_for_series_instances(study: str, series: str) -> Response:
    return _search("instance", study, series)


def _search(level: Level, study: str | None = None, series: str | None = None) -> Response:
    if study is not None:
        validate_uid(study, "Study Instance UID in the path")
    if series is not None:
        validate_uid(series, "Series Instance UID in the path")
    choice = negotiation.negotiate(accepted(), OFFERS)
    current = archive()
    root = dicomweb_root(request)
    limits = SearchLimits(current.settings.qido_max_results, current.settings.qido_max_offset)
    answer = search(
        session(), level, [(name, value) for name, value in request.args.items(multi=True)
                           if name not in NEGOTIATION_PARAMETERS], root=root, limits=limits,
        study_uid=study, series_uid=series,
    )
    # PS3.15 A.5.3.10: the query as the client sent it.
    current.auditor.queried(requester(), request.full_path.rstrip("?").encode("utf-8", "replace"))
    response = _xml(answer) if choice.offer.media_type == DICOM_XML else _json(answer, choice.offer.media_type)
    for text in answer.warnings:
        # PS3.18 8.3.4.5 / 10.6.3.2: Warning: 299 <service>: <text>
        response.headers.add("Warning", warning(root, text))
    return response


def _json(answer: SearchAnswer, media_type: str) -> Response:
    # CP-2473: zero matches are a 200 with an empty array, not a 204.
    return Response(answer.json(), status=200, mimetype=media_type)


def _xml(answer: SearchAnswer) -> Response:
    boundary = multipart.new_boundary()

    def parts() -> Iterator[tuple[dict[str, str], bytes]]:
        for document in answer.xml_documents():
            yield {"Content-Type": f"{DICOM_XML}; charset=utf-8"}, document

    return Response(
        multipart.iter_multipart(parts(), boundary),
        status=200,
        content_type=multipart.content_type(DICOM_XML, boundary),
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    announce(app, "QIDO-RS (search)", f"{DICOMWEB}/studies")
