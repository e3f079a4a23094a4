"""The bridge between aioxmpp's XSOs and the lxml payloads of ``rostra_xmpp_common.mapping``.

Rules:
- The mapping builds and parses every payload; this module only converts between the two object models
  (through SAX events, without serialising to text), so no mapping is written twice.
- ``LastActivityQuery`` exists because aioxmpp has no XEP-0012 support.
"""

from __future__ import annotations

from typing import Any, TypeVar

import aioxmpp
import aioxmpp.xso as xso
import lxml.sax

from rostra._errors import ServerError
from rostra_xmpp_common import mapping

__all__ = ["LastActivityQuery", "from_element", "to_element"]

X = TypeVar("X")


@aioxmpp.IQ.as_payload_class
class LastActivityQuery(xso.XSO):  # type: ignore[misc]
    """``<query xmlns='jabber:iq:last' seconds='N'>status</query>`` (XEP-0012)."""

    TAG = (mapping.NS_LAST, "query")
    seconds = xso.Attr("seconds", default=None)
    text = xso.Text(default=None)


def from_element(element: Any, cls: type[X]) -> X:
    """The ``cls`` XSO that ``element`` (an lxml element built by the mapping) describes."""
    found: list[X] = []
    parser = xso.XSOParser()
    parser.add_class(cls, found.append)
    lxml.sax.saxify(element, xso.SAXDriver(parser))
    if not found:
        raise ServerError(f"Internal mapping error: the payload is not a {cls.__name__}")
    return found[0]


def to_element(obj: Any) -> Any:
    """The lxml element of an XSO (e.g. a result payload) for the mapping's parsers."""
    handler = lxml.sax.ElementTreeContentHandler()
    obj.xso_serialise_to_sax(handler)
    return handler.etree.getroot()
