"""Validation of every caller-supplied argument, before anything is sent.

Rules:
- Every function is pure and fast, and refuses with ``InvalidInputError`` (400) only. Its message names the
  argument, the rule it broke and what to do; it quotes at most a short prefix of the value.
- A function returns the value in the form Rostra stores and sends (normalized where the rule says so) as a plain
  ``str``/``dict``, never a caller's subclass.
- Text fields (name, status, metadata strings) refuse what XML cannot carry or what is invisible damage: control
  characters (Unicode category Cc, which includes tab and newline), surrogates (Cs) and U+FFFE/U+FFFF. Format
  characters (Cf: zero-width joiner, zero-width space, direction marks) are allowed, because emoji sequences need
  them. Text is kept exactly: no stripping, no Unicode normalization.
- Names and statuses also refuse the bidirectional embedding, override and isolate controls (U+202A-U+202E,
  U+2066-U+2069): they reorder whole runs of text, so "abc", U+202E, "gnp.exe" shows as "abcexe.png". The marks
  U+200E, U+200F and U+061C are allowed: they have no scope, only settle the direction of the characters around
  them, and right-to-left text needs them.
- Every other string argument (mobile number, email, metadata, JIDs) refuses the same control characters,
  surrogates and non-characters, even where the value is normalized before it is stored.
- A non-empty name needs a visible character: one that is not a space or separator (Z*), control or format
  character (C*), combining mark (M*), or a letter drawn blank (Hangul fillers, braille blank). A status may be blank.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
import unicodedata
from collections.abc import Mapping

import email_validator
import phonenumbers

from ._errors import InvalidInputError

__all__ = [
    "MAX_METADATA_ENTRIES",
    "MAX_NAME_CHARS",
    "MAX_STATUS_CHARS",
    "MetadataValue",
    "check_domain",
    "check_email",
    "check_identifier",
    "check_jid",
    "check_metadata",
    "check_mobile_number",
    "check_name",
    "check_status",
]

MAX_NAME_CHARS = 30
MAX_STATUS_CHARS = 139
MAX_IDENTIFIER_CHARS = 64
MAX_JID_PART_BYTES = 1023
MAX_DOMAIN_CHARS = 253
MAX_METADATA_ENTRIES = 3
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 1024
# Longer than any phone number written with spaces and punctuation; refused before phonenumbers parses it.
MAX_PHONE_INPUT_CHARS = 64
# Metadata integers must survive JSON and XML round trips in every peer: the signed 64-bit range.
MIN_METADATA_INT = -(2**63)
MAX_METADATA_INT = 2**63 - 1

MetadataValue = str | bool | int | float

_IDENTIFIER_RE = re.compile(r"[A-Za-z0-9]{1,64}")
_DOMAIN_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_LOCALPART_FORBIDDEN = frozenset("\"&'/:<>@")
_NONCHARACTERS = frozenset("\ufffe\uffff")
# Bidirectional embeddings and overrides (LRE RLE PDF LRO RLO) and isolates (LRI RLI FSI PDI); not the marks.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Letters and symbols that fonts draw as blank space: Hangul fillers and the braille blank.
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_PREVIEW_CHARS = 40


def _preview(value: str) -> str:
    """A short, quoted prefix of ``value`` for an error message."""
    if len(value) <= _PREVIEW_CHARS:
        return repr(value)
    return repr(value[:_PREVIEW_CHARS]) + f"... ({len(value)} characters)"


def _require_str(value: object, field: str) -> str:
    """``value`` as a plain str; refuses any other type."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} must be a string, not {type(value).__name__}")
    return str.__str__(value)


def _bad_character(text: str) -> str | None:
    """A description of the first character text fields refuse, or None when all are allowed."""
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category in ("Cc", "Cs") or char in _NONCHARACTERS:
            return f"U+{ord(char):04X} at position {index}"
    return None


def _check_text(value: object, field: str, max_chars: int) -> str:
    """Shared rules of name and status: "" allowed, at most ``max_chars`` code points, no refused character."""
    text = _require_str(value, field)
    if len(text) > max_chars:
        raise InvalidInputError(
            f'{field} is {len(text)} characters long; the limit is {max_chars}: shorten it ("" clears it)'
        )
    bad = _bad_character(text)
    if bad is not None:
        raise InvalidInputError(
            f"{field} contains a control character or non-character ({bad}): remove it (tabs and newlines too)"
        )
    for index, char in enumerate(text):
        if char in _BIDI_CONTROLS:
            raise InvalidInputError(
                f"{field} contains a bidirectional embedding, override or isolate control (U+{ord(char):04X} at "
                f"position {index}), which can disguise the text: remove it (the marks U+200E, U+200F and U+061C "
                "are allowed)"
            )
    return text


def _is_visible(char: str) -> bool:
    """Whether ``char`` draws something on its own: not a separator, control, format, mark or blank letter."""
    return unicodedata.category(char)[0] not in "ZCM" and char not in _BLANK_GLYPHS


def check_identifier(value: object) -> str:
    """The username for a user identifier: 1-64 ASCII letters and digits, lower-cased.

    Raises InvalidInputError for any other value or type.
    """
    text = _require_str(value, "user_identifier")
    if _IDENTIFIER_RE.fullmatch(text) is None:
        raise InvalidInputError(
            f"user_identifier {_preview(text)} is invalid: use 1 to {MAX_IDENTIFIER_CHARS} ASCII letters and "
            "digits only (no spaces, '@', punctuation or accented letters)"
        )
    return text.lower()


def _check_localpart(local: str, jid: str) -> str:
    if not local:
        raise InvalidInputError(f"JID {_preview(jid)} has no user part before '@': give a user JID like 'alice@host'")
    for char in local:
        category = unicodedata.category(char)
        if (
            char in _LOCALPART_FORBIDDEN
            or char in _NONCHARACTERS
            or char.isspace()
            or category in ("Cc", "Cs", "Zs", "Zl", "Zp")
        ):
            raise InvalidInputError(
                f"JID {_preview(jid)} has a character not allowed in its user part (U+{ord(char):04X}): "
                "no spaces, control characters or any of \" & ' / : < > @"
            )
    folded = local.casefold()
    if len(folded.encode("utf-8")) > MAX_JID_PART_BYTES:
        raise InvalidInputError(
            f"JID {_preview(jid)} has a user part over {MAX_JID_PART_BYTES} bytes (UTF-8): shorten it"
        )
    return folded


def check_domain(value: object) -> str:
    """An XMPP domain users could live on (a host name or IP literal), normalized as in a JID; 400 otherwise.

    The whole value is the domain: no user part, no resource.
    """
    if not isinstance(value, str) or not value or "@" in value or "/" in value:
        raise InvalidInputError(f"{_preview(value) if isinstance(value, str) else repr(value)} is not a domain name")
    return _check_domain(value, value)


def _check_domain(domain: str, jid: str) -> str:
    # RFC 7622 3.2: a trailing dot is not part of the domain.
    if domain.endswith("."):
        domain = domain[:-1]
    if not domain:
        raise InvalidInputError(f"JID {_preview(jid)} has no domain after '@': give a user JID like 'alice@host'")
    if domain.startswith("[") and domain.endswith("]"):
        try:
            return f"[{ipaddress.IPv6Address(domain[1:-1]).compressed}]"
        except ValueError:
            raise InvalidInputError(
                f"JID {_preview(jid)} has an invalid IPv6 literal as its domain: write it like '[::1]'"
            ) from None
    lowered = domain.lower()
    labels = lowered.split(".")
    if all(label.isascii() and label.isdigit() for label in labels):
        try:
            return str(ipaddress.IPv4Address(lowered))
        except ValueError:
            raise InvalidInputError(
                f"JID {_preview(jid)} has an invalid IPv4 address as its domain: write it like '127.0.0.1'"
            ) from None
    if len(lowered) > MAX_DOMAIN_CHARS or not all(
        label.isascii() and _DOMAIN_LABEL_RE.fullmatch(label) for label in labels
    ):
        raise InvalidInputError(
            f"JID {_preview(jid)} has an invalid domain: use a host name (labels of 1-63 letters, digits or "
            f"inner hyphens, {MAX_DOMAIN_CHARS} characters at most) or an IP literal"
        )
    return lowered


def _check_resource(resource: str, jid: str) -> None:
    if not resource or len(resource.encode("utf-8", "surrogatepass")) > MAX_JID_PART_BYTES:
        raise InvalidInputError(f"JID {_preview(jid)} has an empty or over-long resource after '/': drop the '/' part")
    if _bad_character(resource) is not None:
        raise InvalidInputError(f"JID {_preview(jid)} has a control character in its resource: drop the '/' part")


def check_jid(value: object) -> str:
    """The bare JID of a user JID ``local@domain[/resource]``.

    The user part is case-folded, the domain lower-cased (IP literals in canonical form), the resource checked and
    dropped. Follows RFC 7622, simplified: ASCII host names only. Raises InvalidInputError for anything else.
    """
    if type(value) is str:  # exactly str: hashable, and equal only to itself (a refusal raises: never cached)
        return _check_jid_text(value)
    return _check_jid_text(_require_str(value, "JID"))


@functools.lru_cache(maxsize=512)
def _check_jid_text(jid: str) -> str:
    """``check_jid`` of a plain str; pure, so its results are cached (apps ask about the same JIDs again)."""
    bare, slash, resource = jid.partition("/")
    if slash:
        _check_resource(resource, jid)
    if bare.count("@") != 1:
        raise InvalidInputError(
            f"JID {_preview(jid)} must hold exactly one '@' between the user and the domain, like 'alice@localhost'"
        )
    local, _, domain = bare.partition("@")
    return f"{_check_localpart(local, jid)}@{_check_domain(domain, jid)}"


def check_name(value: object) -> str:
    """The profile name, kept exactly: "" (clears it) or at most 30 code points with at least one visible character,
    no control characters and no bidirectional embedding, override or isolate controls.

    Other format characters (Cf, such as U+200D, U+200B or the marks U+200E/U+200F) are allowed beside visible
    ones. Raises InvalidInputError otherwise.
    """
    text = _check_text(value, "name", MAX_NAME_CHARS)
    if text and not any(_is_visible(char) for char in text):
        raise InvalidInputError(
            "name has no visible character (only spaces or invisible characters such as U+200B): "
            'give at least one letter, digit or symbol ("" clears it)'
        )
    return text


def check_status(value: object) -> str:
    """The profile status, kept exactly: "" or at most 139 code points, with the rules of ``check_name`` except
    the visible character (a status may be blank).

    Raises InvalidInputError otherwise.
    """
    return _check_text(value, "status", MAX_STATUS_CHARS)


def check_mobile_number(value: object) -> str:
    """The mobile number in E.164 (``+14155552671``), or "" (clears it).

    The input must be a valid international number (starting with '+' and a country code); extensions are refused.
    Raises InvalidInputError otherwise.
    """
    text = _require_str(value, "mobile_number")
    if not text:
        return ""
    hint = "give a valid international number with its country code, like '+14155552671'"
    if len(text) > MAX_PHONE_INPUT_CHARS:
        raise InvalidInputError(f"mobile_number is longer than {MAX_PHONE_INPUT_CHARS} characters: {hint}")
    bad = _bad_character(text)  # checked here: phonenumbers drops what surrounds the number, controls included
    if bad is not None:
        raise InvalidInputError(f"mobile_number contains a control character or non-character ({bad}): {hint}")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise InvalidInputError(f"mobile_number {_preview(text)} is not a phone number: {hint}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInputError(f"mobile_number {_preview(text)} is not a valid number: {hint}")
    if number.extension:
        raise InvalidInputError(f"mobile_number {_preview(text)} has an extension, which is not stored: remove it")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def check_email(value: object) -> str:
    """The email address in normalized form (domain lower-cased), or "" (clears it).

    Checks the syntax only (no DNS). Raises InvalidInputError otherwise.
    """
    text = _require_str(value, "email")
    if not text:
        return ""
    try:
        result = email_validator.validate_email(text, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise InvalidInputError(f"email {_preview(text)} is not a valid address: {exc}") from None
    return str(result.normalized)


def _check_metadata_key(key: object) -> str:
    if not isinstance(key, str):
        raise InvalidInputError(f"metadata keys must be strings, not {type(key).__name__}")
    if not key or len(key) > MAX_METADATA_KEY_CHARS:
        raise InvalidInputError(f"metadata key {_preview(key)} must be 1 to {MAX_METADATA_KEY_CHARS} characters long")
    if _bad_character(key) is not None:
        raise InvalidInputError(f"metadata key {_preview(key)} contains a control character: remove it")
    return str.__str__(key)


def _check_metadata_value(key: str, item: object) -> MetadataValue:
    field = f"metadata[{key!r}]"
    if isinstance(item, bool):
        return item is True
    if isinstance(item, int):
        if not MIN_METADATA_INT <= item <= MAX_METADATA_INT:
            raise InvalidInputError(f"{field} is outside the signed 64-bit integer range: store it as a string")
        return int(item)
    if isinstance(item, float):
        if not math.isfinite(item):
            raise InvalidInputError(f"{field} is {item!r}: metadata numbers must be finite")
        return float(item)
    if isinstance(item, str):
        if len(item) > MAX_METADATA_VALUE_CHARS:
            raise InvalidInputError(f"{field} is longer than {MAX_METADATA_VALUE_CHARS} characters: shorten it")
        if _bad_character(item) is not None:
            raise InvalidInputError(f"{field} contains a control character: remove it")
        return str.__str__(item)
    raise InvalidInputError(f"{field} is a {type(item).__name__}: metadata values must be str, bool, int or float")


def check_metadata(value: object) -> dict[str, MetadataValue]:
    """A plain dict copy of registration metadata: None means {}; else a mapping of at most 3 entries.

    Keys: non-empty str of at most 64 characters. Values: str (at most 1024 characters), bool, int (signed 64-bit)
    or finite float; strings without control characters. Raises InvalidInputError otherwise.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"metadata must be a mapping (dict) or None, not {type(value).__name__}")
    if len(value) > MAX_METADATA_ENTRIES:
        raise InvalidInputError(
            f"metadata has {len(value)} entries; the limit is {MAX_METADATA_ENTRIES}: keep the ones you need"
        )
    result: dict[str, MetadataValue] = {}
    for key, item in value.items():
        checked = _check_metadata_key(key)
        result[checked] = _check_metadata_value(checked, item)
    return result
