"""check_jid caches its answers for plain strings only; the answers and refusals stay exactly the same."""

from __future__ import annotations

import pytest

from rostra import InvalidInputError
from rostra._validate import check_jid


class _Text(str):
    __slots__ = ()


def test_jid_asked_twice_gives_the_same_bare_jid() -> None:
    assert [check_jid("Alice@LocalHost/phone"), check_jid("Alice@LocalHost/phone")] == ["alice@localhost"] * 2


def test_jid_refused_twice_is_refused_both_times() -> None:
    for _ in range(2):
        with pytest.raises(InvalidInputError, match="exactly one '@'"):
            check_jid("a@b@c")


def test_jid_of_a_str_subclass_is_a_plain_str() -> None:
    assert type(check_jid(_Text("alice@localhost"))) is str


def test_jid_of_an_unhashable_value_is_400_not_type_error() -> None:
    with pytest.raises(InvalidInputError, match="JID must be a string, not list"):
        check_jid(["alice@localhost"])
