"""The kit fails on a transport that is wrong in one small way, and says where.

The broken transports (broken_transports.py) are registered under their URL schemes by an entry-point file in a
temporary directory on sys.path: the same discovery an installed package goes through.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from _entry_points import registered_transports
from rostra.testing import Target, check_conformance, check_state_sweep, conformance_settings

# The kit's quick profile with room to find the fault (it takes a few examples), and without shrinking the
# failure: the first line of the message names the step and the difference either way.
CATCHING = settings(conformance_settings("quick"), max_examples=200, database=None, phases=[Phase.generate])


@pytest.fixture
def broken_schemes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    entries = {
        "drops-status": "broken_transports:DropsStatusTransport",
        "answers-404": "broken_transports:Answers404Transport",
        "leaks-password": "broken_transports:LeaksPasswordTransport",
        "close-raises": "broken_transports:CloseRaisesTransport",
    }
    with registered_transports(tmp_path, monkeypatch, "broken-transports-for-tests", entries):
        yield


@pytest.mark.usefixtures("broken_schemes")
def test_the_kit_catches_a_transport_that_drops_the_status() -> None:
    with pytest.raises(AssertionError) as caught:
        check_conformance(Target(f"drops-status://broken-{uuid.uuid4().hex}"), settings=CATCHING)
    message = str(caught.value).splitlines()[0]
    # The first difference: the read-back of the first profile stored with a status: '' on the transport.
    assert re.fullmatch(
        r"get_user_profile\(.*\) by user \d: the transport's answer differs from the model's "
        r"at \[1\]\.data\.status: '' \(model: ('.+'|\".+\")\)",
        message,
    ), message


@pytest.mark.usefixtures("broken_schemes")
def test_the_kit_catches_a_transport_that_answers_404_instead_of_403() -> None:
    with pytest.raises(AssertionError) as caught:
        check_conformance(Target(f"answers-404://broken-{uuid.uuid4().hex}"), settings=CATCHING)
    message = str(caught.value).splitlines()[0]
    assert re.fullmatch(
        r"get_last_seen\('.+'\) by user \d: the transport's answer differs from the model's "
        r"at \[1\]: 404 \(model: 403\)",
        message,
    ), message


@pytest.mark.usefixtures("broken_schemes")
def test_the_kit_catches_a_transport_whose_error_text_shows_the_password() -> None:
    with pytest.raises(AssertionError) as caught:
        check_conformance(Target(f"leaks-password://broken-{uuid.uuid4().hex}"), settings=CATCHING)
    message = str(caught.value).splitlines()[0]
    assert re.fullmatch(
        r"a AuthenticationError \(401\) shows a password: \"bad password '<the password>' for kit\w+\"", message
    ), message


@pytest.mark.usefixtures("broken_schemes")
def test_the_kit_catches_a_transport_whose_close_raises() -> None:
    with pytest.raises(AssertionError) as caught:
        check_conformance(Target(f"close-raises://broken-{uuid.uuid4().hex}"), settings=CATCHING)
    message = str(caught.value).splitlines()[0]
    assert re.fullmatch(r"the transport's close\(\) raised \d+ time\(s\): OSError: socket already closed", message), (
        message
    )


@pytest.mark.usefixtures("broken_schemes")
def test_both_broken_transports_still_pass_the_sweep_which_checks_the_state_table_only() -> None:
    check_state_sweep(Target(f"drops-status://broken-{uuid.uuid4().hex}"))
    check_state_sweep(Target(f"answers-404://broken-{uuid.uuid4().hex}"))
