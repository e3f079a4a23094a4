"""What the security tests share: a user, befriending two users, and a raw IQ through a user's own session (what a
hostile or broken client could send). Imported by name (``from _security_helpers import ...``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aioxmpp
import aioxmpp.errors
import aioxmpp.private_xml.xso as private_xso
import aioxmpp.pubsub.xso as pubsub_xso
import anyio
from lxml import etree

import rostra
from rostra_ws._session import IqError, WsSession
from rostra_xmpp._session import XmppSession
from rostra_xmpp._xso import from_element
from rostra_xmpp_common import mapping


@dataclass
class User:
    sdk: rostra.Client
    jid: str


async def befriend(a: User, b: User) -> None:
    """``a`` asks, ``b`` accepts the request; returns once both see the mutual subscription (5 s at most each).

    (One request answered, not two crossing ones: ejabberd is then sure to send ``a``'s profile events to ``b``.)
    """
    async with a.sdk.events() as a_events, b.sdk.events() as b_events:
        await a.sdk.add_contact(b.jid)
        with anyio.fail_after(5):
            async for event in b_events:
                if isinstance(event, rostra.ContactRequestEvent) and event.from_user_jid == a.jid:
                    break
        await b.sdk.accept_contact(a.jid)
        for events, jid in ((a_events, b.jid), (b_events, a.jid)):
            with anyio.fail_after(5):
                async for event in events:
                    if isinstance(event, rostra.ContactEvent) and event.data.user_jid == jid and event.data.is_friend:
                        break


async def raw_iq(sdk: rostra.Client, type_: str, payload: Any, *, to: str | None = None) -> str:
    """Send ``payload`` in an IQ through the Client's own XMPP session: "result", or the error's condition."""
    session = sdk._session  # the tests may look inside: this is what a client of another make could send
    if isinstance(session, WsSession):
        try:
            await session._iq(type_, payload, to=to, operation="raw")
        except IqError as exc:
            return exc.parsed.condition
        return "result"
    assert isinstance(session, XmppSession), f"a raw IQ needs an XMPP session, not {session!r}"
    iq = aioxmpp.IQ(type_=aioxmpp.IQType(type_), to=aioxmpp.JID.fromstr(to) if to else None)
    iq.payload = _xso_of(payload)
    try:
        await session._client.send(iq, timeout=5)
    except aioxmpp.errors.XMPPError as exc:
        return str(exc.condition.value[1])
    return "result"


def _xso_of(payload: Any) -> Any:
    classes = {
        f"{{{mapping.NS_PUBSUB}}}pubsub": pubsub_xso.Request,
        f"{{{mapping.NS_PRIVATE}}}query": private_xso.Query,
    }
    return from_element(payload, classes[etree.QName(payload).text])
