"""The kit on memory:// itself: the specification agrees with itself, on asyncio and trio."""

from __future__ import annotations

import uuid

import pytest

from rostra.testing import ConformanceTests, Target


class TestMemoryAsyncio(ConformanceTests):
    @pytest.fixture
    def conformance_target(self) -> Target:
        return Target(f"memory://conformance-{uuid.uuid4().hex}")


class TestMemoryTrio(ConformanceTests):
    @pytest.fixture
    def conformance_target(self) -> Target:
        return Target(f"memory://conformance-{uuid.uuid4().hex}", backend="trio")
