"""`grid login`, `grid logout`, `grid whoami` and `grid key ...`: the user's side of team mode.

Credentials live in one private file (``grid.client.credentials``); ``GRID_URL`` and
``GRID_API_KEY`` in the environment win over it. Every command but logout asks the server.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from grid import errors as e
from grid.cli import render

if TYPE_CHECKING:
    from grid.client.credentials import Credentials

DEFAULT_URL = "http://127.0.0.1:8080"
_FROM_ENV = ("GRID_URL", "GRID_API_KEY", "GRID_USERNAME")

key_app = typer.Typer(help="Your API keys: create, list, revoke.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _call(url: str, api_key: str, method: str, path: str, body: Any = None) -> Any:
    """``method path`` on the server at ``url``; an unreachable server is one clear error at
    once (these commands are typed by a person, who may have mistyped the URL: no retries)."""
    from grid.client.api_session import ApiSession

    try:
        with ApiSession(url, api_key, timeout=30) as api:
            return api.call(method, path, body, idempotent=False)
    except ValueError as exc:  # a 2xx answer that is not JSON: not a grid server
        raise e.GridError(f"{url} did not answer as a grid server does; check the URL") from exc


def _saved() -> Credentials | None:
    """The saved file alone (the environment set aside); None when absent or unusable."""
    from grid.client import credentials

    env = {k: v for k, v in os.environ.items() if k not in _FROM_ENV}
    try:
        return credentials.load(env)
    except e.UsageError:
        return None


def _logged_in() -> Credentials:
    from grid.client import credentials

    creds = credentials.load()
    if creds is None:
        raise e.UnauthorizedError("not logged in: run grid login --username U --key K --url URL")
    return creds


def _teams(teams: list[str]) -> str:
    return f"(teams: {', '.join(teams)})" if teams else "(no teams)"


def _when(iso: str | None, none: str = "-") -> str:
    return render.when(datetime.fromisoformat(iso)) if iso else none


def login(
    username: Annotated[str, typer.Option("--username", "-u", help="Your user name.")],
    key: Annotated[
        str,
        typer.Option(
            "--key",
            "--api-key",
            metavar="KEY",
            help="Your API key (grid_...); `-` reads it from standard input.",
        ),
    ],
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="URL",
            help=f"The server (default GRID_URL, else the saved one, else {DEFAULT_URL}).",
        ),
    ] = None,
) -> None:
    """Check the key with the server and save it for the next commands."""
    from grid.client import credentials

    if key == "-":
        key = sys.stdin.readline()
    key = key.strip()
    if not url:
        saved = _saved()
        url = os.environ.get("GRID_URL") or (saved.url if saved else DEFAULT_URL)
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise e.UsageError(
            f"{url!r} is not a server URL", rule="a server URL is http(s)://HOST:PORT"
        )
    me = _call(url, key, "GET", "/v1/whoami")
    if me["username"] != username:
        raise e.UsageError(
            f"the key belongs to {render.safe_text(me['username'])}, not "
            f"{render.safe_text(username)}",
            rule="log in with a key of your own",
        )
    credentials.save(credentials.Credentials(url, username, key))
    print(f"logged in to {url} as {username} {_teams(me['teams'])}")


def logout() -> None:
    """Forget the saved key (the key itself stays valid: `grid key revoke` ends it)."""
    from grid.client import credentials

    saved = _saved()
    if credentials.remove():
        print(f"logged out of {saved.url}" if saved else "logged out")
    else:
        print("not logged in")
    if os.environ.get("GRID_API_KEY"):
        print("grid: note: GRID_API_KEY is still set in the environment", file=sys.stderr)


def whoami(as_json: Json = False) -> None:
    """The user (and teams) the key in use belongs to, as the server sees it."""
    creds = _logged_in()
    me = _call(creds.url, creds.api_key, "GET", "/v1/whoami")
    if as_json:
        render.print_json(
            {"username": me["username"], "url": creds.url, "teams": me["teams"],
             "key_id": me["key_id"]}
        )  # fmt: skip
        return
    print(f"{render.safe_text(me['username'])} at {creds.url} {_teams(me['teams'])}")


@key_app.command("create")
def key_create(
    expires: Annotated[
        str | None,
        typer.Option("--expires", metavar="DURATION", help="e.g. 30d, 12h (default: never)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """A new API key for you, printed this once."""
    from grid.settings import parse_duration

    expires_in = parse_duration(expires, minimum=1) if expires else None
    creds = _logged_in()
    new = _call(creds.url, creds.api_key, "POST", "/v1/keys", {"expires_in": expires_in})
    if as_json:
        render.print_json(
            {"id": new["id"], "api_key": new["api_key"], "expires_at": new["expires_at"]}
        )
        return
    print(new["api_key"])
    expiry = _when(new["expires_at"], "never")
    print(f"key {new['id']} expires {expiry}; it is shown only now", file=sys.stderr)


@key_app.command("list")
def key_list(as_json: Json = False) -> None:
    """Your keys (never the keys themselves): when made, when they expire, if revoked."""
    from rich.table import Column, Table
    from rich.text import Text

    creds = _logged_in()
    keys = _call(creds.url, creds.api_key, "GET", "/v1/keys")
    if as_json:
        render.print_json(keys)
        return
    headers = ("id", "created", "expires", "revoked")
    table = Table(*(Column(h, no_wrap=True) for h in headers), box=None, header_style="bold")
    for k in keys:
        table.add_row(
            Text(render.safe_text(k["id"])),
            _when(k["created_at"]),
            _when(k["expires_at"], "never"),
            _when(k["revoked_at"]),
        )
    render.show(table)


@key_app.command("revoke")
def key_revoke(key_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """End one of your keys at once, on every server (also the one in use)."""
    creds = _logged_in()
    _call(creds.url, creds.api_key, "DELETE", f"/v1/keys/{quote(key_id, safe='')}")
    print(f"revoked key {render.safe_text(key_id)}")
    if creds.api_key.startswith(f"grid_{key_id}_"):
        print(
            "grid: note: that was the key you are logged in with; grid login with another",
            file=sys.stderr,
        )
