"""The ``rostra`` command: the demo (the main job), one subcommand per operation, and plugin commands.

Every command prints JSON lines on stdout and exits 0 only if everything it did succeeded. Errors print the
documented error shape ``{"statusCode": N, "message": TEXT}`` and exit 1. Passwords are never printed unless asked
for with ``--show-password``: the credential file (mode 0600) keeps them.

Transport packages add subcommands through the entry-point group ``rostra.cli``: each entry point is a callable
that receives the argparse subparsers object and registers its command with ``set_defaults(func=...)``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import anyio

from ._client import Client
from ._credentials import Credentials, FileCredentialStore
from ._errors import RostraError
from ._schemas import Response

__all__ = ["main"]

_DEFAULT_SERVER = "memory://"


def _default_credentials_path() -> Path:
    env = os.environ.get("ROSTRA_CREDENTIALS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rostra" / "credentials.json"


def emit(obj: dict[str, Any]) -> None:
    """One JSON line on stdout, flushed (other programs read it line by line)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def hide_password(response: dict[str, Any]) -> dict[str, Any]:
    data = response.get("data")
    if isinstance(data, dict) and "password" in data:
        return {**response, "data": {**data, "password": "***"}}
    return response


def _client_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"server": args.server}
    if args.ca_file:
        kwargs["ca_file"] = args.ca_file
    if args.insecure:
        kwargs["verify_tls"] = False
    return kwargs


# -- one subcommand per operation ------------------------------------------------------------------------


def _print_response(args: argparse.Namespace, response: Response) -> None:
    out = response.to_dict()
    emit(out if getattr(args, "show_password", False) else hide_password(out))


async def _run_register(args: argparse.Namespace) -> None:
    _refuse_memory(args)
    store = FileCredentialStore(args.credentials)
    metadata = dict(_parse_meta(item) for item in args.meta)
    async with Client(trial=args.trial, credential_store=store, **_client_kwargs(args)) as sdk:
        _print_response(args, await sdk.register(args.identifier, metadata or None))


def _refuse_memory(args: argparse.Namespace) -> None:
    """The per-operation commands are one process each: a memory:// server would die with the first of them."""
    if args.server.startswith("memory:"):
        raise _UsageError(
            f"`rostra {args.command}` needs a server that outlives one command: memory:// lives inside one "
            "process. Start one with `rostra dev-server` and pass --server xmpp://... --ca-file ... "
            "(`rostra demo` runs the whole API on memory:// in one process)"
        )


def _stored_credentials(args: argparse.Namespace, sdk: Client) -> Credentials:
    """The credentials of ``--user`` on the server's domain, from the credential file."""
    creds = FileCredentialStore(args.credentials).get(sdk.domain, args.user.lower())
    if creds is None:
        raise _UsageError(f"No stored credentials for {args.user!r} on {sdk.domain}: run `rostra register {args.user}`")
    return creds


async def _as_user(args: argparse.Namespace, action: Callable[[Client], Any] | None) -> None:
    """Connect as ``--user`` with the stored credentials, run ``action``, print its response, log out."""
    async with Client(credential_store=FileCredentialStore(args.credentials), **_client_kwargs(args)) as sdk:
        creds = _stored_credentials(args, sdk)
        login = await sdk.connect(creds.username, creds.password)
        try:
            response = login if action is None else await action(sdk)
            if response is not None:
                _print_response(args, response)
        finally:
            await sdk.logout()


class _UsageError(Exception):
    pass


def _parse_meta(item: str) -> tuple[str, str | bool | int | float]:
    key, sep, raw = item.partition("=")
    if not sep:
        raise _UsageError(f"--meta takes KEY=VALUE, got {item!r}")
    value: str | bool | int | float = raw
    if raw in ("true", "false"):
        value = raw == "true"
    else:
        for kind in (int, float):
            try:
                value = kind(raw)
                break
            except ValueError:
                continue
    return key, value


def _profile_set(args: argparse.Namespace) -> Callable[[Client], Any]:
    fields = {
        name: getattr(args, name)
        for name in ("name", "image", "status", "mobile_number", "email")
        if getattr(args, name) is not None
    }
    return lambda sdk: sdk.set_user_profile(**fields)


def _contacts(args: argparse.Namespace) -> Callable[[Client], Any]:
    if args.action == "list":
        return lambda sdk: sdk.get_contacts()
    method = {
        "add": "add_contact",
        "remove": "remove_contact",
        "accept": "accept_contact",
        "decline": "decline_contact",
    }
    return lambda sdk: getattr(sdk, method[args.action])(args.jid)


def _operation(args: argparse.Namespace) -> Callable[[Client], Any] | None:
    """What the subcommand does once connected; None for `connect`, whose check is the login itself."""
    command = args.command
    if command == "connect":
        return None
    if command == "whoami":
        return lambda sdk: sdk.get_current_user_jid()
    if command == "last-seen":
        return lambda sdk: sdk.get_last_seen(args.jid)
    if command == "metadata":
        return lambda sdk: sdk.get_metadata()
    if command == "contacts":
        return _contacts(args)
    if args.profile_action == "get":
        return lambda sdk: sdk.get_user_profile(args.jid)
    return _profile_set(args)


async def _run_operation(args: argparse.Namespace) -> None:
    _refuse_memory(args)
    await _as_user(args, _operation(args))


# -- the parser --------------------------------------------------------------------------------------------


def _add_connection_options(parser: argparse.ArgumentParser, *, server_default: str | None) -> None:
    parser.add_argument(
        "--server",
        default=server_default if server_default is not None else argparse.SUPPRESS,
        help="server URL: memory:// (in-process, default), xmpp://host[:port], xmpps://host[:port], ws(s)://...",
    )
    parser.add_argument(
        "--ca-file",
        default=argparse.SUPPRESS if server_default is None else None,
        help="PEM file of the CA that signs the server certificate (e.g. dev-server's caFile)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        default=argparse.SUPPRESS if server_default is None else False,
        help="do NOT verify the server certificate (explicit opt-out; never in production)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rostra", description="Rostra: a Profile API on open XMPP servers.")
    _add_connection_options(parser, server_default=os.environ.get("ROSTRA_SERVER", _DEFAULT_SERVER))
    parser.add_argument(
        "--credentials",
        type=Path,
        default=_default_credentials_path(),
        help="credential file (JSON, mode 0600); default $ROSTRA_CREDENTIALS or ~/.config/rostra/credentials.json",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="the whole Profile API, step by step, as JSON lines (the main job)")
    _add_connection_options(demo, server_default=None)
    demo.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each profile event")
    demo.set_defaults(func=_async_command(_run_demo))

    bridge = sub.add_parser("bridge", help="one Client behind a JSON-lines protocol on stdin/stdout (docs/bridge.md)")
    _add_connection_options(bridge, server_default=None)
    bridge.set_defaults(func=_async_command(_run_bridge))

    schema = sub.add_parser("schema", help="print the JSON Schema of every response, error and event")
    schema.set_defaults(func=_print_schema)

    register = sub.add_parser("register", help="register a user; keeps its credentials in the credential file")
    register.add_argument("identifier")
    register.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="metadata entry (max 3)")
    register.add_argument("--trial", action="store_true", help="register as a sandbox user")
    register.add_argument("--show-password", action="store_true")
    register.set_defaults(func=_async_command(_run_register))

    def user_command(group: Any, name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = group.add_parser(name, help=help_text)
        p.add_argument("--user", required=True, help="username (or identifier) registered with `rostra register`")
        p.set_defaults(func=_async_command(_run_operation), action=name)
        return p

    user_command(sub, "connect", "check that a registered user can log in")
    user_command(sub, "whoami", "the bare JID the server binds for --user")
    user_command(sub, "metadata", "the registration metadata of --user")
    user_command(sub, "last-seen", "seconds since a user was last online").add_argument("jid")
    contacts = sub.add_parser("contacts", help="list, add, remove, accept or decline contacts")
    contact_actions = contacts.add_subparsers(dest="contacts_action", required=True, metavar="ACTION")
    user_command(contact_actions, "list", "the contacts of --user")
    for action in ("add", "remove", "accept", "decline"):
        user_command(contact_actions, action, f"{action} a contact").add_argument("jid")
    profile = sub.add_parser("profile", help="get any user's profile, or set your own")
    profile_actions = profile.add_subparsers(dest="profile_action", required=True, metavar="ACTION")
    user_command(profile_actions, "get", "any user's profile").add_argument("jid")
    setter = user_command(profile_actions, "set", "change your own profile ('' clears a field)")
    for option in ("name", "image", "status", "mobile-number", "email"):
        setter.add_argument(f"--{option}", default=None, help=f"the new {option}")

    for ep in entry_points(group="rostra.cli"):
        ep.load()(sub)
    return parser


def _print_schema(args: argparse.Namespace) -> int:
    from ._jsonschema import schema_json

    sys.stdout.write(schema_json())
    return 0


def _async_command(run: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        try:
            result = anyio.run(run, args)
        except RostraError as exc:
            emit(exc.to_dict())
            return 1
        except _UsageError as exc:
            print(f"rostra: {exc}", file=sys.stderr)
            return 2
        return int(result or 0)

    return command


async def _run_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return await run_demo(**_client_kwargs(args), event_timeout=args.timeout)


async def _run_bridge(args: argparse.Namespace) -> int:
    from ._bridge import run_bridge

    return await run_bridge(**_client_kwargs(args))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
