"""The validators: each table row is one rule, with the exact output or the exact status code."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rostra._errors import InvalidInputError
from rostra._validate import (
    check_email,
    check_identifier,
    check_jid,
    check_metadata,
    check_mobile_number,
    check_name,
    check_status,
)


def _status_of(check: Callable[[object], object], value: object) -> int:
    with pytest.raises(InvalidInputError) as caught:
        check(value)
    return caught.value.status_code


# --- identifiers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice", "alice"),
        ("Alice42", "alice42"),
        ("ALICE", "alice"),
        ("7", "7"),
        ("a" * 64, "a" * 64),
    ],
)
def test_identifier_valid_gives_lowercase_username(value: str, expected: str) -> None:
    assert check_identifier(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "al ice",
        "alice@localhost",
        "",
        "a" * 2000,
        "a" * 65,
        "é",
        "caf\u00e9",
        "alice_1",
        "alice-1",
        "alice\n",
        "\uff41",  # a fullwidth letter: alphanumeric to str.isalnum, not ASCII
        None,
        42,
        b"alice",
    ],
)
def test_identifier_invalid_is_400(value: object) -> None:
    assert _status_of(check_identifier, value) == 400


def test_identifier_error_names_the_field_and_the_rule() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_identifier("al ice")
    assert caught.value.message == (
        "user_identifier 'al ice' is invalid: use 1 to 64 ASCII letters and digits only "
        "(no spaces, '@', punctuation or accented letters)"
    )


def test_identifier_error_quotes_only_a_prefix_of_a_long_value() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_identifier("b" * 2000)
    assert "'" + "b" * 40 + "'... (2000 characters)" in caught.value.message
    assert "b" * 41 not in caught.value.message


# --- JIDs ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice@localhost", "alice@localhost"),
        ("Alice@LocalHost/res", "alice@localhost"),
        ("alice@localhost/a resource with @ and /", "alice@localhost"),
        ("ÉLODIE@example.com", "élodie@example.com"),
        ("alice@example.com.", "alice@example.com"),
        ("alice@xn--mnchen-3ya.de", "alice@xn--mnchen-3ya.de"),
        ("alice@127.0.0.1", "alice@127.0.0.1"),
        ("alice@[::1]", "alice@[::1]"),
        ("alice@[2001:DB8:0:0:0:0:0:1]", "alice@[2001:db8::1]"),
        ("a" * 1023 + "@localhost", "a" * 1023 + "@localhost"),
        ("alice@" + ".".join(["a" * 63] * 3) + "." + "b" * 61, "alice@" + ".".join(["a" * 63] * 3) + "." + "b" * 61),
    ],
)
def test_jid_valid_gives_normalized_bare_jid(value: str, expected: str) -> None:
    assert check_jid(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "alice",
        "@localhost",
        "alice@",
        "a@b@c",
        "al ice@localhost",
        "alice@local host",
        "alice@localhost/",
        "alice/res@localhost",
        "al'ice@localhost",
        'al"ice@localhost',
        "al&ice@localhost",
        "al:ice@localhost",
        "al<ice@localhost",
        "al>ice@localhost",
        "al\tice@localhost",
        "al\x00ice@localhost",
        "al\u00a0ice@localhost",
        "a" * 1024 + "@localhost",
        "é" * 512 + "@localhost",  # 512 characters, 1024 bytes
        "alice@-localhost",
        "alice@localhost-",
        "alice@local_host",
        "alice@localhost:5222",
        "alice@" + "a" * 64,
        "alice@" + ".".join(["a" * 63] * 4),
        "alice@münchen.de",
        "alice@a..b",
        "alice@.",
        "alice@999.0.0.1",
        "alice@1.2.3",
        "alice@[::g]",
        "alice@localhost/res\x07",
        None,
        42,
    ],
)
def test_jid_invalid_is_400(value: object) -> None:
    assert _status_of(check_jid, value) == 400


def test_jid_error_names_the_rule() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_jid("a@b@c")
    assert caught.value.message == (
        "JID 'a@b@c' must hold exactly one '@' between the user and the domain, like 'alice@localhost'"
    )


# --- name and status -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Ada",
        "a" * 30,
        "👩‍💻 Ada",
        " Ada ",
        "a\u200bb",  # zero-width space beside visible letters: category Cf, allowed (emoji sequences need Cf)
        "a\u200db",
        "\u200fשלם 42",  # a right-to-left mark: allowed (marks reorder no run of text)
        "\u200eAda\u061c",  # left-to-right and Arabic letter marks
        "🏳️‍🌈",  # flag, variation selector, ZWJ
        "Ada\u0301",  # a combining accent, kept unnormalized
        "🇫🇷" * 15,  # 30 code points
    ],
)
def test_name_valid_is_kept_exactly(value: str) -> None:
    assert check_name(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "a" * 31,
        "\x00",
        "a\nb",
        "a\tb",
        "a\x7fb",
        "a\x85b",
        "\ud800",
        "a\ufffe",
        "a\uffff",
        "🇫🇷" * 15 + "x",
        " ",
        "   ",
        "\u00a0",  # no-break space
        "\u3000",  # ideographic space
        "\u200b",  # zero-width space alone
        "\u200d\u200c\u2060",  # joiners and word joiner only
        "\ufe0f",  # a variation selector alone
        "\u0301",  # a combining accent with nothing to combine with
        "\u3164",  # Hangul filler: a letter whose glyph is blank
        "\u2800",  # braille blank
        "\u200f",  # a right-to-left mark alone
        "abc\u202egnp.exe",  # right-to-left override
        "\u202aAda",  # left-to-right embedding
        "\u202bAda",  # right-to-left embedding
        "Ada\u202c",  # pop directional formatting
        "\u202dAda",  # left-to-right override
        "\u2066Ada",  # left-to-right isolate
        "\u2067Ada",  # right-to-left isolate
        "\u2068Ada",  # first strong isolate
        "Ada\u2069",  # pop directional isolate
        None,
        30,
    ],
)
def test_name_invalid_is_400(value: object) -> None:
    assert _status_of(check_name, value) == 400


def test_name_too_long_error_gives_length_and_limit() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_name("a" * 31)
    assert caught.value.message == 'name is 31 characters long; the limit is 30: shorten it ("" clears it)'


def test_name_control_character_error_gives_its_position() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_name("a\nb")
    assert caught.value.message == (
        "name contains a control character or non-character (U+000A at position 1): remove it (tabs and newlines too)"
    )


def test_name_without_a_visible_character_error_says_what_to_do() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_name(" \u200b")
    assert caught.value.message == (
        "name has no visible character (only spaces or invisible characters such as U+200B): "
        'give at least one letter, digit or symbol ("" clears it)'
    )


def test_name_bidi_control_error_gives_its_position() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_name("abc\u202egnp.exe")
    assert caught.value.message == (
        "name contains a bidirectional embedding, override or isolate control (U+202E at position 3), "
        "which can disguise the text: remove it (the marks U+200E, U+200F and U+061C are allowed)"
    )


def test_name_returns_a_plain_str_for_a_str_subclass() -> None:
    class Name(str):
        pass

    result = check_name(Name("Ada"))
    assert type(result) is str
    assert result == "Ada"


@pytest.mark.parametrize("value", ["", "busy", "s" * 139, "🎉 " * 46 + "!", " ", "\u200f42 שקל", "👩‍💻 coding"])
def test_status_valid_is_kept_exactly(value: str) -> None:
    assert check_status(value) == value


@pytest.mark.parametrize(
    "value", ["s" * 140, "a\nb", "\x1b[31m", None, "on \u202eyadiloh", "\u2067busy\u2069", "a\u202ab\u202c"]
)
def test_status_invalid_is_400(value: object) -> None:
    assert _status_of(check_status, value) == 400


def test_status_bidi_control_error_names_the_status() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_status("on \u202eyadiloh")
    assert caught.value.message == (
        "status contains a bidirectional embedding, override or isolate control (U+202E at position 3), "
        "which can disguise the text: remove it (the marks U+200E, U+200F and U+061C are allowed)"
    )


# --- mobile number -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("+1 415 555 2671", "+14155552671"),
        ("+14155552671", "+14155552671"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+1 (415) 555-2671", "+14155552671"),
    ],
)
def test_mobile_number_valid_gives_e164(value: str, expected: str) -> None:
    assert check_mobile_number(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "12345",
        "+999",
        "abc",
        "4155552671",  # no country code
        "+1 415 555 2671 ext. 12",
        "+1 000 000 0000",
        "+" + "1" * 300,
        None,
        14155552671,
    ],
)
def test_mobile_number_invalid_is_400(value: object) -> None:
    assert _status_of(check_mobile_number, value) == 400


# --- email ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("ada@example.com", "ada@example.com"),
        ("Ada.Lovelace@Example.COM", "Ada.Lovelace@example.com"),
        ("ada+rostra@mail.example.org", "ada+rostra@mail.example.org"),
    ],
)
def test_email_valid_gives_normalized_address(value: str, expected: str) -> None:
    assert check_email(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "ada",
        "ada@",
        "@example.com",
        "ada@@example.com",
        "ada..l@example.com",
        "ada@localhost",
        "ada lovelace@example.com",
        "ada@example.com\n",
        None,
    ],
)
def test_email_invalid_is_400(value: object) -> None:
    assert _status_of(check_email, value) == 400


# --- metadata ------------------------------------------------------------------------------------------------------


def test_metadata_none_gives_empty_dict() -> None:
    assert check_metadata(None) == {}


def test_metadata_three_entries_of_each_type_are_copied() -> None:
    given = {"plan": "pro", "beta": True, "age": 42}
    result = check_metadata(given)
    assert result == {"plan": "pro", "beta": True, "age": 42}
    assert result is not given


def test_metadata_float_is_kept() -> None:
    assert check_metadata({"score": 0.5}) == {"score": 0.5}


def test_metadata_bool_stays_bool() -> None:
    result = check_metadata({"beta": False})
    assert result == {"beta": False}
    assert type(result["beta"]) is bool


def test_metadata_any_mapping_gives_plain_dict() -> None:
    result = check_metadata(MappingProxyType({"k": "v"}))
    assert type(result) is dict
    assert result == {"k": "v"}


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": 2, "c": 3, "d": 4},
        {"k": None},
        {"k": [1]},
        {"k": {"nested": 1}},
        {"k": b"bytes"},
        {"k": float("nan")},
        {"k": float("inf")},
        {"k": 2**63},
        {"k": "v" * 1025},
        {"k": "a\nb"},
        {"": "v"},
        {"k" * 65: "v"},
        {"a\x00": "v"},
        {1: "v"},
        [("k", "v")],
        "k=v",
    ],
)
def test_metadata_invalid_is_400(value: object) -> None:
    assert _status_of(check_metadata, value) == 400


def test_metadata_too_many_entries_error_gives_count_and_limit() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_metadata({"a": 1, "b": 2, "c": 3, "d": 4})
    assert caught.value.message == "metadata has 4 entries; the limit is 3: keep the ones you need"


def test_metadata_limits_are_inclusive() -> None:
    value = {"k" * 64: "v" * 1024, "big": 2**63 - 1, "small": -(2**63)}
    assert check_metadata(value) == value


# --- control characters, surrogates and non-characters in every string argument ---------------------------------

#: What no string argument may hold: C0 and C1 controls, DEL, lone surrogates, U+FFFE and U+FFFF.
FORBIDDEN = st.one_of(
    st.integers(0x00, 0x1F),
    st.just(0x7F),
    st.integers(0x80, 0x9F),
    st.integers(0xD800, 0xDFFF),
    st.sampled_from([0xFFFE, 0xFFFF]),
).map(chr)
#: Where it goes in an otherwise valid value of each argument.
VALID_VALUES: dict[str, tuple[Callable[[object], object], str]] = {
    "name": (check_name, "Ada Lovelace"),
    "status": (check_status, "out for lunch"),
    "mobile_number": (check_mobile_number, "+14155552671"),
    "email": (check_email, "ada@example.com"),
    "jid": (check_jid, "ada@localhost"),
    "jid-resource": (check_jid, "ada@localhost/phone"),
    "metadata-key": (lambda text: check_metadata({text: 1}), "plan"),
    "metadata-value": (lambda text: check_metadata({"plan": text}), "free"),
}


@pytest.mark.parametrize("argument", VALID_VALUES)
@given(char=FORBIDDEN, where=st.floats(0, 1))
def test_a_forbidden_character_anywhere_in_any_string_argument_is_400(argument: str, char: str, where: float) -> None:
    check, valid = VALID_VALUES[argument]
    at = round(where * len(valid))
    assert _status_of(check, valid[:at] + char + valid[at:]) == 400


def test_a_mobile_number_with_a_control_character_around_it_is_400_naming_it() -> None:
    # phonenumbers itself drops what surrounds the number: the rule is Rostra's own, checked first.
    with pytest.raises(InvalidInputError) as caught:
        check_mobile_number("+14155552671\x00")
    assert caught.value.message == (
        "mobile_number contains a control character or non-character (U+0000 at position 12): give a valid "
        "international number with its country code, like '+14155552671'"
    )


@given(
    st.text(
        st.characters(
            blacklist_categories=("Cc", "Cs"),
            blacklist_characters="\ufffe\uffff\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
        ),
        max_size=139,
    )
)
def test_a_status_of_any_other_characters_is_kept_exactly(text: str) -> None:
    assert check_status(text) == text
