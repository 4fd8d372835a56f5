"""Who the CLI is on a team-mode server: a URL, a username and an API key, saved by `grid login`.

The file is ``$GRID_CONFIG_DIR/credentials.json`` (else ``$XDG_CONFIG_HOME/grid/...``, else
``~/.config/grid/...``), private to its owner (mode 0600; a file others can read is refused,
as ssh refuses a private key). ``GRID_URL`` and ``GRID_API_KEY`` in the environment win over it.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from grid.errors import GridError, UsageError

_FILE = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    """A server and the key to call it with; ``username`` is "" when only the key is known."""

    url: str
    username: str
    api_key: str


def credentials_path(env: Mapping[str, str] | None = None) -> str:
    """Where `grid login` keeps the credentials (``env`` defaults to ``os.environ``)."""
    env = os.environ if env is None else env
    if env.get("GRID_CONFIG_DIR"):
        return os.path.join(env["GRID_CONFIG_DIR"], _FILE)
    config = env.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(config):  # the XDG spec: a relative value is ignored
        config = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return os.path.join(config, "grid", _FILE)


def _damaged(path: str, why: str) -> UsageError:
    return UsageError(f"{path} is damaged ({why}): run grid login again")


def _read(path: str) -> Credentials | None:
    """The saved credentials; None when there is no file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not hang
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}: run grid login again") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _damaged(path, "not a regular file")
        if mode & 0o077:
            how = "readable" if mode & 0o044 else "writable"
            raise UsageError(
                f"{path} is {how} by others (mode {stat.S_IMODE(mode):04o}): "
                "chmod 600 it or grid login again",
                rule="an API key is kept private to its owner",
            )
        data = os.read(fd, 1 << 20)
    finally:
        os.close(fd)
    try:
        saved = json.loads(data)
    except ValueError:  # also bytes that are not UTF-8
        raise _damaged(path, "not JSON") from None
    if not isinstance(saved, dict):
        raise _damaged(path, "not a JSON object")
    missing = [f for f in ("url", "username", "api_key") if not saved.get(f)]
    if missing or not all(isinstance(saved[f], str) for f in ("url", "username", "api_key")):
        raise _damaged(path, f"no valid {', '.join(missing) or 'text fields'}")
    return Credentials(saved["url"], saved["username"], saved["api_key"])


def load(env: Mapping[str, str] | None = None) -> Credentials | None:
    """The credentials to use: ``GRID_URL`` and ``GRID_API_KEY`` (and ``GRID_USERNAME``) from
    the environment where set, the saved file for the rest; None when there are none.

    Raises:
        UsageError: the file is damaged or readable by others, or GRID_API_KEY is set without
            GRID_URL and no file gives the URL.
    """
    env = os.environ if env is None else env
    url, key = env.get("GRID_URL", "").strip(), env.get("GRID_API_KEY", "").strip()
    username = env.get("GRID_USERNAME", "")
    if url and key:
        return Credentials(url.rstrip("/"), username, key)
    path = credentials_path(env)
    saved = _read(path)
    if key:
        if saved is None:
            raise UsageError(
                "GRID_API_KEY is set but GRID_URL is not: set GRID_URL to the server's URL "
                "(http://HOST:PORT) too",
                rule="an API key is used with the URL of its server",
            )
        return Credentials(saved.url, username, key)
    if url and saved is not None:
        return Credentials(url.rstrip("/"), saved.username, saved.api_key)
    return saved


def save(creds: Credentials, env: Mapping[str, str] | None = None) -> str:
    """Write ``creds`` (mode 0600, atomically: a reader sees the old file or the new one);
    return the path.

    Raises:
        GridError: the folder cannot be written.
    """
    path = credentials_path(env)
    folder = os.path.dirname(path) or "."
    import secrets

    tmp = os.path.join(folder, f".{_FILE}.{secrets.token_hex(6)}.tmp")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), 0o600)  # whatever the umask
                json.dump(asdict(creds), f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise GridError(
            f"cannot save the credentials in {folder}: {exc.strerror or exc}; "
            "set GRID_CONFIG_DIR to a folder you can write"
        ) from exc
    _sync_folder(folder)
    return path


def _sync_folder(folder: str) -> None:
    """Make the rename durable (best effort: not every filesystem syncs folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def remove(env: Mapping[str, str] | None = None) -> bool:
    """Delete the saved credentials; False when there were none.

    Raises:
        GridError: the file exists but cannot be deleted.
    """
    path = credentials_path(env)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise GridError(f"cannot delete {path}: {exc.strerror or exc}") from exc
    return True
