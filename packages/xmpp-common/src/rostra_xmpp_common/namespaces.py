"""Every XMPP namespace (and namespace-like name) Rostra speaks, written once; every carrier imports them from here.

Rules:
- Each string is written in this module and nowhere else in the packages: a mistyped namespace is a silent
  interoperability bug, so there is exactly one place to get it right.
- Plain strings, no dependencies: both carriers (aioxmpp's and the WebSocket one) import this module.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "NODE_CONFIG_FORM",
    "NS_BIND",
    "NS_CAPS",
    "NS_CLIENT",
    "NS_DATA",
    "NS_DISCO_INFO",
    "NS_DISCO_ITEMS",
    "NS_FRAMING",
    "NS_LAST",
    "NS_METADATA",
    "NS_PING",
    "NS_PRIVATE",
    "NS_PROFILE",
    "NS_PUBSUB",
    "NS_PUBSUB_EVENT",
    "NS_PUBSUB_OWNER",
    "NS_REGISTER",
    "NS_REGISTER_FEATURE",
    "NS_ROSTER",
    "NS_SASL",
    "NS_STANZAS",
    "NS_STREAMS",
    "NS_STREAM_ERRORS",
    "NS_UPLOAD",
    "NS_VCARD4",
    "PROFILE_NODE",
    "PUBLIC_PROFILE_NODE",
    "PUBLISH_OPTIONS_FORM",
]

# -- the stream (RFC 6120, RFC 7395) ----------------------------------------------------------------------------
NS_CLIENT: Final = "jabber:client"
NS_STREAMS: Final = "http://etherx.jabber.org/streams"
NS_STREAM_ERRORS: Final = "urn:ietf:params:xml:ns:xmpp-streams"
NS_FRAMING: Final = "urn:ietf:params:xml:ns:xmpp-framing"
NS_SASL: Final = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND: Final = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STANZAS: Final = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_REGISTER_FEATURE: Final = "http://jabber.org/features/iq-register"

# -- payloads ---------------------------------------------------------------------------------------------------
NS_REGISTER: Final = "jabber:iq:register"
NS_PUBSUB: Final = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_EVENT: Final = "http://jabber.org/protocol/pubsub#event"
NS_PUBSUB_OWNER: Final = "http://jabber.org/protocol/pubsub#owner"
NS_DATA: Final = "jabber:x:data"
NS_VCARD4: Final = "urn:ietf:params:xml:ns:vcard-4.0"
NS_LAST: Final = "jabber:iq:last"
NS_PRIVATE: Final = "jabber:iq:private"
NS_METADATA: Final = "urn:rostra:metadata:0"
#: Rostra's own vCard4 extension properties (the owner's sharing choice).
NS_PROFILE: Final = "urn:rostra:profile:0"
NS_ROSTER: Final = "jabber:iq:roster"
NS_UPLOAD: Final = "urn:xmpp:http:upload:0"
NS_DISCO_INFO: Final = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS: Final = "http://jabber.org/protocol/disco#items"
NS_CAPS: Final = "http://jabber.org/protocol/caps"
NS_PING: Final = "urn:xmpp:ping"

#: The PEP node of the profile (XEP-0292); ``PROFILE_NODE + "+notify"`` asks for its change events.
PROFILE_NODE: Final = "urn:xmpp:vcard4"
#: The PEP node of the profile's public copy (open access, no events): what users who are not contacts read.
PUBLIC_PROFILE_NODE: Final = "urn:rostra:profile:public:0"
#: The FORM_TYPE values of the pubsub publish-options and node-configuration forms.
PUBLISH_OPTIONS_FORM: Final = "http://jabber.org/protocol/pubsub#publish-options"
NODE_CONFIG_FORM: Final = "http://jabber.org/protocol/pubsub#node_config"
