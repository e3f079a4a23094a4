"""Every job of the project, each in a fresh virtualenv with pinned dependencies (constraints.txt).

nox -s demo            the main job: `rostra demo` (in-process server; `-- --server URL --ca-file F` for others)
nox -s tests           the whole test suite; installs Prosody with apt-get when it is missing
nox -s tests-ejabberd  the server-backed tests again, against ejabberd (installed with apt-get when missing)
nox -s conformance-deep  the conformance kit, 500 examples per transport (ROSTRA_TEST_SERVER=ejabberd: ejabberd)
nox -s lint            ruff and mypy --strict
nox -s bench           latency of get_user_profile through Rostra vs bare aioxmpp, as a ratio
nox -s load            500 concurrent SDK sessions on ws://, then xmpp://, against a Prosody of its own: ops/s,
                       p50/p99 per operation, memory per session, errors (must be 0); `-- --transport ws --duration 10`
"""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False
nox.options.sessions = ["tests", "lint"]

PACKAGES = ["./packages/core", "./packages/xmpp-common", "./packages/transport-xmpp", "./packages/transport-ws"]
CONSTRAINTS = ("-c", "constraints.txt")


def _install(session: nox.Session, *extra: str, editable: bool = False) -> None:
    packages = [arg for pkg in PACKAGES for arg in (("-e", pkg) if editable else (pkg,))]
    session.install(*CONSTRAINTS, *packages, *extra)


def _ensure_prosody(session: nox.Session) -> None:
    session.run("bash", "scripts/ensure-prosody", external=True)


@nox.session
def demo(session: nox.Session) -> None:
    _install(session)
    session.run("rostra", "demo", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    _ensure_prosody(session)
    _install(session, "pytest", "hypothesis", "trio", editable=True)
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(name="tests-ejabberd")
def tests_ejabberd(session: nox.Session) -> None:
    session.run("bash", "scripts/ensure-ejabberd", external=True)
    _install(session, "pytest", "hypothesis", "trio", editable=True)
    session.run("pytest", "-m", "server", *(session.posargs or ["-q"]), env={"ROSTRA_TEST_SERVER": "ejabberd"})


@nox.session(name="conformance-deep")
def conformance_deep(session: nox.Session) -> None:
    """500 examples per transport: memory://, xmpp://, ws:// (asyncio) and the example transport (record+memory://)."""
    server = os.environ.get("ROSTRA_TEST_SERVER", "prosody")
    session.run("bash", f"scripts/ensure-{'ejabberd' if server == 'ejabberd' else 'prosody'}", external=True)
    _install(session, "pytest", "hypothesis", "trio", "./examples/rostra-recorder", editable=True)
    env = {"ROSTRA_CONFORMANCE_PROFILE": "deep", "ROSTRA_TEST_SERVER": server}
    args = session.posargs or ["-q", "-rA", "-p", "no:cacheprovider"]
    kit = [
        "tests/conformance/test_conformance_memory.py::TestMemoryAsyncio",
        "tests/conformance/test_conformance_servers.py",
    ]
    session.run("pytest", *kit, "-k", "not trio", *args, env=env)
    session.run("pytest", "examples/rostra-recorder/tests", *args, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    _install(session, "ruff", "mypy", "pytest", "hypothesis", "trio", editable=True)
    session.run("ruff", "check", ".")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    _ensure_prosody(session)
    _install(session)
    session.run("python", "bench/profile_latency.py", *session.posargs)


@nox.session
def load(session: nox.Session) -> None:
    """bench/load.py: register, connect, befriend, then set and read profiles for a bounded time; exits 1 on errors."""
    _ensure_prosody(session)
    _install(session)
    session.run("python", "bench/load.py", *session.posargs)
