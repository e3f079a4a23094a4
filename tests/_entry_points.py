"""Installing test transports the way a package would: a ``*.dist-info`` with ``rostra.transports`` entry points.

The tests import it by name (``from _entry_points import registered_transports``), like ``_prosody``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from rostra import _transport


@contextmanager
def registered_transports(
    directory: Path, monkeypatch: pytest.MonkeyPatch, distribution: str, entry_points: Mapping[str, str]
) -> Iterator[None]:
    """While inside: ``entry_points`` (scheme -> "module:Class") are installed, from ``directory`` on sys.path."""
    dist = directory / f"{distribution.replace('-', '_')}-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0\n")
    lines = "".join(f"{scheme} = {target}\n" for scheme, target in entry_points.items())
    (dist / "entry_points.txt").write_text(f"[rostra.transports]\n{lines}")
    monkeypatch.setattr(sys, "path", [str(directory), *sys.path])
    _transport._transport_for.cache_clear()
    try:
        yield
    finally:
        _transport._transport_for.cache_clear()
