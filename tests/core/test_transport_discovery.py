"""Finding the transport of a URL's scheme through the 'rostra.transports' entry points, when packages are broken."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import rostra
from _entry_points import registered_transports
from rostra import _transport


@pytest.fixture
def broken_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two installed entry points whose modules do not exist: one named for its scheme, one of another package."""
    entries = {
        "brokenimport": "no_such_module_for_rostra_tests:Transport",
        "zz-other-broken": "no_such_other_module_for_rostra_tests:Transport",
    }
    monkeypatch.setattr(_transport, "_BROKEN_REPORTED", set())
    with registered_transports(tmp_path, monkeypatch, "broken-transports-for-discovery", entries):
        yield


def test_a_scheme_whose_own_package_fails_to_import_is_a_500_naming_it(broken_packages: None) -> None:
    with pytest.raises(rostra.RostraError) as caught:
        rostra.Client("brokenimport://somewhere")
    assert (type(caught.value), caught.value.status_code, caught.value.message) == (
        rostra.ServerError,
        500,
        "The transport for brokenimport:// (no_such_module_for_rostra_tests:Transport) is installed but fails to "
        "import (ModuleNotFoundError): reinstall the package that provides it",
    )


def test_another_packages_broken_entry_point_is_logged_once_and_skipped(
    broken_packages: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="rostra"):
        for url in ("unknown-one://x", "unknown-two://x"):
            with pytest.raises(rostra.InvalidInputError):
                rostra.Client(url)
        client = rostra.Client("memory://discovery")  # its own entry point is loaded first: unaffected
    about_other = [r.getMessage() for r in caplog.records if "no_such_other_module" in r.getMessage()]
    assert (client.server, about_other) == (
        "memory://discovery",
        ["The transport entry point 'no_such_other_module_for_rostra_tests:Transport' could not be loaded"],
    )
