"""The kit on memory:// itself: the specification agrees with itself, on asyncio and trio."""

from __future__ import annotations

import uuid

import pytest

from rostra.testing import ConformanceTests, Target, conformance_settings


class TestMemoryAsyncio(ConformanceTests):
    @pytest.fixture
    def conformance_target(self) -> Target:
        return Target(f"memory://conformance-{uuid.uuid4().hex}")


class TestMemoryTrio(ConformanceTests):
    @pytest.fixture
    def conformance_target(self) -> Target:
        return Target(f"memory://conformance-{uuid.uuid4().hex}", backend="trio")


@pytest.mark.parametrize("name", ["bogus", "deeep", "rostra-"])
def test_an_unknown_profile_name_is_refused_naming_the_valid_ones(name: str) -> None:
    with pytest.raises(ValueError, match=r"use 'quick' or 'deep'") as caught:
        conformance_settings(name)
    assert str(caught.value).startswith(f"unknown conformance profile {name!r}")


def test_the_profiles_hold_the_documented_numbers_of_examples_whatever_the_case() -> None:
    quick, deep = conformance_settings("quick"), conformance_settings(" DEEP")
    assert (quick.max_examples, quick.stateful_step_count, deep.max_examples) == (12, 25, 500)
