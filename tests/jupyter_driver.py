"""Drive a running JupyterLab as a browser would: the contents REST API and a kernel websocket.

`start_jupyter` starts the command line `grid session` uses, so what is tested is what users
get.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import websocket

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def jupyter_lab_argv(root_dir: str | os.PathLike[str], port: int, state_dir: Path | None = None):
    """The command line `grid session` starts (``grid.runs.session.lab_command``); the token
    goes in JUPYTER_TOKEN so that it never shows in `ps`."""
    from grid.runs.session import lab_command

    state = os.fspath(state_dir) if state_dir is not None else os.fspath(root_dir)
    return lab_command(os.fspath(root_dir), "127.0.0.1", port, state)


def start_jupyter(
    root_dir: str | os.PathLike[str],
    port: int,
    token: str,
    env: Mapping[str, str] | None = None,
    *,
    state_dir: Path | None = None,
    log_path: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `jupyter lab` in the background serving `root_dir`; returns at once.

    `env` is laid over os.environ. With `state_dir`, the runtime files (connection files,
    cookie secret, jpserver-<pid>.json) and the lab workspaces go under it, apart from other
    sessions. The server gets its own process group (see `stop_jupyter`).
    """
    full_env = {**os.environ, **(env or {}), "JUPYTER_TOKEN": token}
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        full_env["JUPYTER_RUNTIME_DIR"] = str(state_dir / "runtime")
    log = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            jupyter_lab_argv(root_dir, port, state_dir),
            cwd=os.fspath(root_dir),
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log_path is not None:
            log.close()  # type: ignore[union-attr]


def stop_jupyter(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM: the server shuts its kernels down and exits. SIGKILL the group if it hangs."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JupyterDriver:
    """A client of one Jupyter server at `url` (http://127.0.0.1:PORT), token-authenticated."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"token {token}"}, timeout=30
        )

    def close(self) -> None:
        self.http.close()

    def wait_ready(self, timeout: float = 30, proc: subprocess.Popen[bytes] | None = None) -> float:
        """Poll /api/status until it answers 200; returns the seconds waited."""
        start = time.monotonic()
        deadline = start + timeout
        last: object = None
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"jupyter exited with {proc.returncode} before it was ready")
            try:
                r = self.http.get("/api/status", timeout=2)
                if r.status_code == 200:
                    return time.monotonic() - start
                last = r.status_code
            except httpx.TransportError as e:
                last = e
            time.sleep(0.05)
        raise AssertionError(f"jupyter at {self.url} not ready after {timeout} s: {last!r}")

    def _api(self, path: str) -> str:
        return "/api/contents/" + quote(path.strip("/"))

    def contents(self, path: str = "") -> list[dict[str, Any]]:
        """The entries of a folder: each with at least name, path and type."""
        r = self.http.get(self._api(path), params={"content": "1"})
        r.raise_for_status()
        model = r.json()
        assert model["type"] == "directory", model
        return list(model["content"])

    def read_file(self, path: str) -> str:
        r = self.http.get(
            self._api(path), params={"type": "file", "format": "text", "content": "1"}
        )
        r.raise_for_status()
        return str(r.json()["content"])

    def execute(self, code: str, timeout: float = 60) -> str:
        """Run `code` in a fresh kernel; returns its stdout/stderr and results as text.

        Raises AssertionError with the traceback if the code raised. The kernel is deleted.
        """
        r = self.http.post("/api/kernels", json={"name": "python3"})
        r.raise_for_status()
        kernel_id = r.json()["id"]
        try:
            return self._execute_in(kernel_id, code, timeout)
        finally:
            self.http.delete(f"/api/kernels/{kernel_id}")

    def start_kernel(self) -> str:
        """A kernel that stays until deleted (``DELETE /api/kernels/ID``); its id."""
        r = self.http.post("/api/kernels", json={"name": "python3"})
        r.raise_for_status()
        return str(r.json()["id"])

    def execute_in(self, kernel_id: str, code: str, timeout: float = 60) -> str:
        """Run `code` in a running kernel (its variables stay for the next call)."""
        return self._execute_in(kernel_id, code, timeout)

    def _execute_in(self, kernel_id: str, code: str, timeout: float) -> str:
        ws_url = "ws" + self.url.removeprefix("http") + f"/api/kernels/{kernel_id}/channels"
        session = uuid.uuid4().hex
        msg_id = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        ws = websocket.create_connection(
            ws_url + f"?session_id={session}",
            header=[f"Authorization: token {self.token}"],
            timeout=timeout,
        )
        try:
            ws.send(
                json.dumps(
                    {
                        "header": {
                            "msg_id": msg_id,
                            "msg_type": "execute_request",
                            "username": "test",
                            "session": session,
                            "date": "",
                            "version": "5.3",
                        },
                        "parent_header": {},
                        "metadata": {},
                        "content": {
                            "code": code,
                            "silent": False,
                            "store_history": False,
                            "user_expressions": {},
                            "allow_stdin": False,
                            "stop_on_error": True,
                        },
                        "channel": "shell",
                        "buffers": [],
                    }
                )
            )
            out: list[str] = []
            error: str | None = None
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no idle from the kernel after {timeout} s: {out}")
                ws.settimeout(left)
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["msg_type"]
                content = msg["content"]
                if msg.get("channel") == "iopub":
                    if kind == "stream":
                        out.append(content["text"])
                    elif kind in ("execute_result", "display_data"):
                        text = content.get("data", {}).get("text/plain")
                        if text is not None:
                            out.append(text + "\n")
                    elif kind == "error":
                        tb = "\n".join(content.get("traceback") or [])
                        error = _ANSI.sub("", tb) or f"{content['ename']}: {content['evalue']}"
                    elif kind == "status" and content["execution_state"] == "idle":
                        break
        finally:
            ws.close()
        if error is not None:
            raise AssertionError(f"the code raised:\n{error}\noutput before:\n{''.join(out)}")
        return "".join(out)
