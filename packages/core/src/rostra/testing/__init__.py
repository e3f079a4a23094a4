"""The conformance kit: check that a transport behaves exactly like Rostra's specification, ``memory://``.

Install it with ``pip install "rostra[testing]"`` (it needs pytest and hypothesis). In your test suite::

    import pytest
    from rostra.testing import ConformanceTests, Target

    class TestMyTransport(ConformanceTests):
        @pytest.fixture
        def conformance_target(self) -> Target:
            return Target("mine://127.0.0.1:7000", options={"ca_file": "ca.pem"})

That collects two tests:
- ``test_matches_the_model``: a hypothesis stateful test. Several users register, connect, log out, read and change
  profiles (valid and invalid values; every change is read back by its author and another user), ask last seen and
  their JID, and add, accept, decline and remove contacts, in random orders, on your transport and on ``memory://``
  side by side; every answer and every event must match.
- ``test_state_sweep``: every (state, operation) pair of the session table, on your transport.

Or call ``check_conformance(target)`` and ``check_state_sweep(target)`` from any test runner.

How many examples run comes from a hypothesis settings profile: ``rostra-quick`` (the default, for CI) or
``rostra-deep`` (500 examples), chosen with the environment variable ``ROSTRA_CONFORMANCE_PROFILE``, or pass
``settings=`` yourself.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase
from hypothesis import settings as Settings

from ._model import USERS, Target, check_model
from ._sweep import OPERATIONS, check_sweep

__all__ = [
    "OPERATIONS",
    "PROFILE_ENV",
    "USERS",
    "ConformanceTests",
    "Target",
    "check_conformance",
    "check_state_sweep",
    "conformance_settings",
]

#: The environment variable naming the settings profile (``rostra-quick`` or ``rostra-deep``).
PROFILE_ENV = "ROSTRA_CONFORMANCE_PROFILE"

_COMMON = {
    "deadline": None,  # a real server's steps take what they take; speed is measured by benchmarks, not here
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    # No "explain" phase: it re-runs many variants of a failing example, each a real-server round trip.
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
}
Settings.register_profile("rostra-quick", max_examples=12, stateful_step_count=25, **_COMMON)  # type: ignore[arg-type]
Settings.register_profile("rostra-deep", max_examples=500, stateful_step_count=30, **_COMMON)  # type: ignore[arg-type]


def conformance_settings(profile: str | None = None) -> Settings:
    """The hypothesis settings of ``profile`` (default: ``$ROSTRA_CONFORMANCE_PROFILE``, else ``rostra-quick``)."""
    name = (profile or os.environ.get(PROFILE_ENV) or "rostra-quick").strip().lower()
    if not name.startswith("rostra-"):
        name = f"rostra-{name}"  # "deep" and "quick" work too
    if name not in ("rostra-quick", "rostra-deep"):
        raise ValueError(
            f"unknown conformance profile {profile or os.environ.get(PROFILE_ENV)!r} (from the argument or "
            f"${PROFILE_ENV}): use 'quick' or 'deep'"
        )
    return Settings.get_profile(name)


def check_conformance(target: Target, *, settings: Settings | None = None) -> int:
    """Drive ``target`` and ``memory://`` side by side; raises AssertionError at the first difference.

    Returns how many examples (random operation sequences) ran.
    """
    return check_model(target, settings if settings is not None else conformance_settings())


def check_state_sweep(target: Target) -> None:
    """Every (state, operation) pair of the session table on ``target``; raises AssertionError listing those off it."""
    check_sweep(target)


class ConformanceTests:
    """Subclass it as ``Test...`` and define the ``conformance_target`` fixture: pytest collects the kit's tests."""

    @pytest.fixture
    def conformance_target(self) -> Target:
        pytest.fail("define a `conformance_target` fixture returning rostra.testing.Target(url, options)")

    def test_matches_the_model(self, conformance_target: Target) -> None:
        settings = conformance_settings()
        ran = check_conformance(conformance_target, settings=settings)
        print(f"rostra.testing: {ran} examples on {conformance_target.url} ({conformance_target.backend})")
        assert ran >= settings.max_examples, f"only {ran} of {settings.max_examples} examples ran"

    def test_state_sweep(self, conformance_target: Target) -> None:
        check_state_sweep(conformance_target)
