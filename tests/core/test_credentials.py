"""FileCredentialStore across processes, and its refusal of a damaged file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import rostra

WRITERS = 8
PUTS_PER_WRITER = 25

# One writer process: stores PUTS_PER_WRITER accounts named w<writer>u<n> as fast as it can.
_WRITER = """
import sys
import rostra
store = rostra.FileCredentialStore(sys.argv[1])
writer = sys.argv[2]
for n in range(int(sys.argv[3])):
    name = f"w{writer}u{n}"
    store.put("memory://", rostra.Credentials(username=name, password="pw", user_jid=f"{name}@localhost"))
"""


def test_concurrent_writer_processes_keep_every_entry(tmp_path: Path) -> None:
    store_path = tmp_path / "creds" / "store.json"
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(store_path), str(w), str(PUTS_PER_WRITER)])
        for w in range(WRITERS)
    ]
    codes = [writer.wait() for writer in writers]
    store = rostra.FileCredentialStore(store_path)
    kept = {f"w{w}u{n}" for w in range(WRITERS) for n in range(PUTS_PER_WRITER) if store.get("memory://", f"w{w}u{n}")}
    assert (codes, len(kept)) == ([0] * WRITERS, WRITERS * PUTS_PER_WRITER)


def test_concurrent_deletes_and_puts_keep_the_entries_not_deleted(tmp_path: Path) -> None:
    store_path = tmp_path / "store.json"
    store = rostra.FileCredentialStore(store_path)
    for n in range(PUTS_PER_WRITER):
        store.put("memory://", rostra.Credentials(username=f"old{n}", password="pw", user_jid=f"old{n}@localhost"))
    deleter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, rostra\nstore = rostra.FileCredentialStore(sys.argv[1])\n"
            "for n in range(int(sys.argv[2])): store.delete('memory://', f'old{n}')",
            str(store_path),
            str(PUTS_PER_WRITER),
        ]
    )
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(store_path), "0", str(PUTS_PER_WRITER)])
    codes = [deleter.wait(), writer.wait()]
    names = [f"old{n}" for n in range(PUTS_PER_WRITER)] + [f"w0u{n}" for n in range(PUTS_PER_WRITER)]
    kept = [name for name in names if store.get("memory://", name) is not None]
    assert (codes, kept) == ([0, 0], [f"w0u{n}" for n in range(PUTS_PER_WRITER)])


def test_the_lock_file_is_private_to_its_owner(tmp_path: Path) -> None:
    store_path = tmp_path / "store.json"
    rostra.FileCredentialStore(store_path).put(
        "memory://", rostra.Credentials(username="a", password="pw", user_jid="a@localhost")
    )
    lock = tmp_path / "store.json.lock"
    assert lock.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"memory://": {"a": {"username": 1}}}'])
def test_a_corrupt_file_is_an_invalid_input_error_naming_it(tmp_path: Path, content: bytes) -> None:
    store_path = tmp_path / "store.json"
    store_path.write_bytes(content)
    with pytest.raises(rostra.InvalidInputError) as caught:
        rostra.FileCredentialStore(store_path).get("memory://", "a")
    assert str(caught.value) == (
        f"the credentials file {str(store_path)!r} is not a Rostra credentials file (it may be damaged): "
        "fix it or delete it (its accounts' passwords are then lost)"
    )


def test_a_corrupt_file_is_refused_by_put_and_left_as_it_was(tmp_path: Path) -> None:
    store_path = tmp_path / "store.json"
    store_path.write_bytes(b"{not json")
    with pytest.raises(rostra.InvalidInputError):
        rostra.FileCredentialStore(store_path).put(
            "memory://", rostra.Credentials(username="a", password="pw", user_jid="a@localhost")
        )
    assert store_path.read_bytes() == b"{not json"


def test_a_credentials_path_that_is_a_directory_is_400(tmp_path: Path) -> None:
    store = rostra.FileCredentialStore(tmp_path)

    with pytest.raises(rostra.InvalidInputError) as caught:
        store.get("localhost", "alice")

    assert caught.value.message == (
        f"the credentials file {str(tmp_path)!r} cannot be read (Is a directory): give a file path"
    )


# -- atomic, private writes ----------------------------------------------------------------------------------------

ALICE = rostra.Credentials(username="alice", password="pw-alice", user_jid="alice@localhost")
BOB = rostra.Credentials(username="bob", password="pw-bob", user_jid="bob@localhost")


def test_the_file_is_0600_even_when_it_was_opened_up_before(tmp_path: Path) -> None:
    store_path = tmp_path / "store.json"
    store = rostra.FileCredentialStore(store_path)
    store.put("localhost", ALICE)
    store_path.chmod(0o644)
    store.put("localhost", BOB)
    assert store_path.stat().st_mode & 0o777 == 0o600


def test_a_write_that_fails_before_the_replace_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_path = tmp_path / "store.json"
    store = rostra.FileCredentialStore(store_path)
    store.put("localhost", ALICE)
    old = store_path.read_bytes()
    seen: list[tuple[str, int, bool]] = []

    def failing_replace(source: str, target: object) -> None:
        temp = Path(source)
        seen.append((temp.parent.name, temp.stat().st_mode & 0o777, b'"bob"' in temp.read_bytes()))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left on device"):
        store.put("localhost", BOB)
    assert seen == [(tmp_path.name, 0o600, True)]  # the temp file was whole, private, in the same folder
    assert (store_path.read_bytes(), store_path.stat().st_mode & 0o777) == (old, 0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.json", "store.json.lock"]


# A writer that dies (SIGKILL) between writing its temp file and replacing the old one.
_KILLED_WRITER = """
import os, signal, sys
import rostra
os.replace = lambda source, target: os.kill(os.getpid(), signal.SIGKILL)
store = rostra.FileCredentialStore(sys.argv[1])
store.put("localhost", rostra.Credentials(username="bob", password="pw-bob", user_jid="bob@localhost"))
"""


def test_a_writer_killed_mid_write_leaves_the_old_file_and_the_next_write_removes_its_temp_file(
    tmp_path: Path,
) -> None:
    store_path = tmp_path / "store.json"
    store = rostra.FileCredentialStore(store_path)
    store.put("localhost", ALICE)
    old = store_path.read_bytes()
    killed = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(store_path)], check=False, timeout=60)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
    after_kill = (killed.returncode, store_path.read_bytes(), store_path.stat().st_mode & 0o777, len(left))
    store.put("localhost", rostra.Credentials(username="carol", password="pw-carol", user_jid="carol@localhost"))
    assert after_kill == (-signal.SIGKILL, old, 0o600, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.json", "store.json.lock"]
    assert (store.get("localhost", "alice"), store.get("localhost", "bob")) == (ALICE, None)
