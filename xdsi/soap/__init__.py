"""WADO-WS: the XDS-I.b Imaging Document Source over SOAP (RAD TF-3 4.69, PS3.18 2017b 6.4).

Built on lxml and werkzeug rather than spyne. spyne 2.14 was weighed for dispatch and type
definitions and does not carry the transport XDS-I.b needs: it has no WS-Addressing (no Action
dispatch, RelatesTo, ActionNotSupported), a partial SOAP 1.2, MTOM output only for top-level
binary return values and always buffered in memory (a RAD-69 answer puts each document inside
DocumentResponse and must stream a whole study), and an order-strict decoder, where consumers
send HomeCommunityId before or after the other identifiers. The pieces here are small: the
envelope (envelope.py), faults (faults.py), MTOM/XOP (mtom.py), the request forms (types.py),
the operations (service.py), the WSDL and schemas (wsdl.py) and the WSGI endpoint (application.py).
"""
