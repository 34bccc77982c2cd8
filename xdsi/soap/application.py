"""The WADO-WS endpoint as a WSGI application, mounted at ``/wado-ws`` beside the Flask app.

POST: a SOAP 1.2 or 1.1 request, plain (``application/soap+xml``, ``text/xml``) or MTOM
(``multipart/related; type="application/xop+xml"``), bounded by ``max_soap_request_bytes``. The
operation is chosen by the WS-Addressing Action (else the HTTP action, else the Body element);
the answer is MTOM, streamed, in the request's SOAP version. GET ``?wsdl`` and ``?xsd=NAME``
serve the WSDL and its schemas.

Message security enters through an ``EnvelopeHook``: ``verify`` sees each parsed request before
it is dispatched, ``secure`` each answer envelope once its Body is built (WS-Security verifies
and signs there); by default nothing is checked or signed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, Protocol
from wsgiref.types import StartResponse, WSGIEnvironment

from lxml import etree
from werkzeug.http import parse_options_header
from werkzeug.wrappers import Request, Response

from xdsi.errors import FailedAuthentication, Forbidden, SecurityRefused, XdsiError
from xdsi.security import access, identity
from xdsi.security.logins import RecentLogins
from xdsi.services.archive import Archive
from xdsi.services.auditor import Requester
from xdsi.soap import envelope, mtom, service, wsdl
from xdsi.soap import namespaces as ns
from xdsi.soap.envelope import SOAP11, SOAP12, SoapVersion
from xdsi.soap.faults import RECEIVER, SENDER, Fault
from xdsi.soap.xua import XUserAssertions

log = logging.getLogger(__name__)

Operation = Callable[[service.Call], service.Answer]
OPERATIONS: dict[str, Operation] = {
    ns.RETRIEVE_IMAGING_DOCUMENT_SET: service.retrieve_imaging_document_set,
    ns.RETRIEVE_RENDERED: service.retrieve_rendered_imaging_document_set,
    ns.RETRIEVE_INFORMATION: service.retrieve_imaging_document_set_information,
}


class PublicUrls(NamedTuple):
    """Where a client reaches this endpoint and the DICOMweb root, as the request came in."""

    endpoint: str
    dicomweb_root: str


class EnvelopeHook(Protocol):
    """Checks requests and secures answers at the envelope level (WS-Security)."""

    understood: frozenset[str]  # header namespaces it processes (mustUnderstand headers of others fault)

    def verify(self, request: envelope.Request) -> None:
        """Raise a Fault (or a domain error) when the request must not be acted on."""

    def secure(self, answer: etree._Element, attachments: Sequence[mtom.Attachment] = ()) -> etree._Element:
        """The answer envelope as it is to be sent (e.g. signed; a signature covers the documents
        its xop:Includes stand for, so they are passed too)."""


class NoSecurity:
    understood: frozenset[str] = frozenset()

    def verify(self, request: envelope.Request) -> None:
        return None

    def secure(self, answer: etree._Element, attachments: Sequence[mtom.Attachment] = ()) -> etree._Element:
        return answer


class WadoWsApplication:
    """``public_urls(environ)``: the public URLs of a request (the WSDL's address, BulkDataURIs)."""

    def __init__(self, archive: Archive, public_urls: Callable[[WSGIEnvironment], PublicUrls],
                 hook: EnvelopeHook | None = None, assertions: XUserAssertions | None = None) -> None:
        self.archive = archive
        self.public_urls = public_urls
        self.hook: EnvelopeHook = hook or NoSecurity()
        self.assertions = assertions
        self.logins = RecentLogins()
        # SOAP 1.2 Part 1 5.2.3: a mustUnderstand wsse:Security is understood when its assertion is read.
        self.understood = self.hook.understood | (frozenset({ns.WSSE}) if assertions is not None else frozenset())

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path not in ("", "/"):
            response = Response("404 Not Found: WADO-WS has one endpoint, /wado-ws\n", status=404,
                                mimetype="text/plain")
        elif request.method in ("GET", "HEAD"):
            response = self._describe(request)
        elif request.method == "POST":
            response = self._answer(request)
        else:
            response = Response("WADO-WS answers SOAP requests by POST, and its WSDL by GET ?wsdl\n", status=405,
                                mimetype="text/plain", headers={"Allow": "GET, HEAD, POST"})
        return response(environ, start_response)

    def _describe(self, request: Request) -> Response:
        endpoint = self.public_urls(request.environ).endpoint
        if "wsdl" in {key.lower() for key in request.args}:
            return Response(wsdl.wsdl_document(endpoint), mimetype="text/xml")
        name = request.args.get("xsd")
        if name is not None:
            document = wsdl.schema_document(name, endpoint)
            if document is None:
                return Response(f"no schema called {name[:100]!r}; the WSDL at ?wsdl names them\n", status=404,
                                mimetype="text/plain")
            return Response(document, mimetype="text/xml")
        return Response("WADO-WS endpoint: send SOAP requests by POST; the WSDL is at ?wsdl\n", status=400,
                        mimetype="text/plain")

    def _answer(self, http: Request) -> Response:
        version, relates_to = SOAP12, None
        try:
            data, http_action = self._read(http)
            request = envelope.parse_request(data, self.understood)
            version, relates_to = request.version, request.message_id
            self.hook.verify(request)
            caller = identity.in_environ(http.environ) or self._asserted(http, request)
            operation, response_action = _dispatch(request, http_action)
            return self._respond(http, request, operation, response_action, caller)
        except Fault as fault:
            return self._fault(version, fault, relates_to)
        except XdsiError as error:
            return self._fault(version, Fault.of(error), relates_to)
        except Exception:
            log.exception("WADO-WS request failed")
            return self._fault(version, Fault(RECEIVER, "the request could not be processed"), relates_to)

    def _read(self, http: Request) -> tuple[bytes, str | None]:
        """The envelope's bytes and the action the HTTP headers name, within the size limit."""
        limit = self.archive.settings.max_soap_request_bytes
        if http.content_length is not None and http.content_length > limit:
            raise Fault(SENDER, f"the request is larger than {limit} bytes")
        data = http.stream.read(limit + 1)
        if len(data) > limit:
            raise Fault(SENDER, f"the request is larger than {limit} bytes")
        media_type, params = parse_options_header(http.headers.get("Content-Type", ""))
        if media_type == "multipart/related":
            data, params = mtom.root_part(http.headers["Content-Type"], data)
        elif media_type == "text/xml":
            params = {"action": http.headers.get("SOAPAction", "").strip().strip('"')}
        elif media_type != SOAP12.content_type:
            raise Fault(SENDER, f"a SOAP request is {SOAP12.content_type}, {SOAP11.content_type} or MTOM "
                                f"multipart/related, not {media_type[:60] or 'untyped'}", http_status=415)
        return data, (params.get("action") or "").strip() or None

    def _asserted(self, http: Request, request: envelope.Request) -> identity.Identity:
        """IHE XUA: the caller the request's SAML assertion names (the access gate lets a request
        without HTTP credentials through to here only when assertions are accepted), with the
        role it needs; it is left in the environ, as the gate leaves the callers it admits."""
        if self.assertions is None:
            raise FailedAuthentication("this endpoint requires authentication")
        try:
            caller = self.assertions.identity(request)
            # PS3.15 A.5.3.12: the caller's login, once for a while (``security.logins``), as the gate does.
            if self.logins.first("saml", caller.name):
                self.archive.auditor.logged_in(Requester(caller, http.remote_addr))
            access.authorize(caller, identity.READ)  # every WADO-WS operation reads
        except SecurityRefused as refused:
            self.archive.auditor.refused_login(http.remote_addr, None, str(refused))
            raise
        except Forbidden as refused:
            self.archive.auditor.refused_access(Requester(caller, http.remote_addr), "POST /wado-ws", str(refused))
            raise
        http.environ[identity.ENVIRON_KEY] = caller
        return caller

    def _respond(self, http: Request, request: envelope.Request, operation: Operation,
                 response_action: str, caller: identity.Identity) -> Response:
        dicomweb_root = self.public_urls(http.environ).dicomweb_root
        with self.archive.session_for(caller.issuers) as session:
            answer = operation(service.Call(self.archive, session, request.body, dicomweb_root))
        try:
            reply = self.hook.secure(envelope.response(request.version, response_action, request.message_id,
                                                       answer.payload), answer.attachments)
            root = envelope.serialize(reply)
            boundary = mtom.new_boundary()
            body = mtom.iter_message(request.version, boundary, root, answer.attachments)
            if answer.sent:
                # Begin Transferring as the documents start, Instances Transferred once the message is closed.
                requester = Requester(caller, http.remote_addr)
                transfer = self.archive.auditor.begin_transfer(requester, answer.sent, answer.transaction)
                body = transfer.watch(body)
                answer.close = _then(answer.close, transfer.end)
            response = Response(body, status=200,
                                content_type=mtom.content_type(request.version, boundary, response_action))
            length = mtom.message_length(request.version, boundary, root, answer.attachments)
            if length is not None:
                response.content_length = length
        except BaseException:
            answer.close()
            raise
        response.call_on_close(answer.close)
        return response

    def _fault(self, version: SoapVersion, fault: Fault, relates_to: str | None) -> Response:
        reply = self.hook.secure(envelope.fault_envelope(version, fault, relates_to))
        # WS-I Basic Profile 1.1 R1126: a SOAP 1.1 fault is HTTP 500 whatever its code.
        status = fault.status if version is SOAP12 or fault.status == 415 else 500
        return Response(envelope.serialize(reply), status=status, content_type=f"{version.content_type}; charset=utf-8")


def _then(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    def both() -> None:
        try:
            first()
        finally:
            second()
    return both


def _dispatch(request: envelope.Request, http_action: str | None) -> tuple[Operation, str]:
    """The operation and the answer's Action. WS-Addressing's Action wins over the HTTP one; a
    request without either is dispatched by its Body element (WS-Addressing is required by the
    WSDL, but a missing header is no reason to refuse a request whose meaning is plain)."""
    action = request.action or http_action
    body_operation = ns.REQUEST_ELEMENTS.get(etree.QName(request.body).localname)
    if action is None:
        if body_operation is None or body_operation not in OPERATIONS:
            raise Fault(SENDER, f"no operation takes a {etree.QName(request.body).localname[:80]} request")
        return OPERATIONS[body_operation], ns.DEFAULT_RESPONSE_ACTIONS[body_operation]
    known = ns.ACTIONS.get(action)
    if known is None or known[0] not in OPERATIONS:
        raise Fault(SENDER, f"the action {action[:200]} is not supported by this endpoint",
                    subcode=(ns.WSA, "ActionNotSupported"), problem_action=action[:200])
    operation, response_action = known
    if body_operation != operation:
        raise Fault(SENDER, f"the action {action} does not take a {etree.QName(request.body).localname[:80]} request")
    return OPERATIONS[operation], response_action
