"""HTTP to a team-mode server: the key on every request, problem+json answers rebuilt into the
same exceptions the embedded client raises (``grid.errors.rebuild``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, NoReturn

from grid import errors as e

_TIMEOUT = 60.0
# Seconds between tries of an idempotent request: 7.7 s in all, longer than a load balancer
# takes to stop sending to a dead server (nginx: at once, on a refused connection) and about
# what a lone server takes to restart.
_BACKOFF = (0.2, 0.5, 1.0, 2.0, 4.0)


# Set by the ``grid`` command (which makes no async HTTP requests):
# httpcore is then imported without trio, so that its async locks cannot run under trio.
WITHOUT_TRIO = False


def import_httpx() -> Any:
    """``httpx`` (and the ``httpcore`` its client needs), without what grid never uses:
    httpx's command-line tool (``httpx._main``: click, rich and pygments, half of httpx's
    import time; httpx falls back to a stub ``main``) and, under ``WITHOUT_TRIO``, httpcore's
    trio support (trio is most of httpcore's import time). Both stay importable."""
    import sys

    if "httpx" in sys.modules and "httpcore" in sys.modules:
        return sys.modules["httpx"]
    absent = ["httpx._main", *(["trio"] if WITHOUT_TRIO else [])]
    blocked = [name for name in absent if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # "import fails"
    try:
        import httpcore  # noqa: F401  # (imported by httpx.Client)
        import httpx
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return httpx


def lazy_transport(httpx: Any, **options: Any) -> Any:
    """A transport that makes httpx's own (``HTTPTransport(**options)``) per scheme when first
    used: a client that only speaks plain HTTP never loads the CA bundle (a third of making an
    ``httpx.Client``); HTTPS is verified as ever."""
    import threading

    class LazyTransport(httpx.BaseTransport):  # type: ignore[misc]
        def __init__(self) -> None:
            self._made: dict[str, Any] = {}
            self._lock = threading.Lock()

        def handle_request(self, request: Any) -> Any:
            scheme = request.url.scheme
            with self._lock:
                transport = self._made.get(scheme)
                if transport is None:
                    plain = {"verify": False} if scheme == "http" else {}  # no TLS to check
                    transport = self._made[scheme] = httpx.HTTPTransport(**options, **plain)
            return transport.handle_request(request)

        def close(self) -> None:
            with self._lock:
                for transport in self._made.values():
                    transport.close()
                self._made.clear()

    return LazyTransport()


class ApiSession:
    """Requests to ``url`` (``http(s)://host:port``) as the holder of ``api_key``."""

    def __init__(self, url: str, api_key: str | None, *, timeout: float = _TIMEOUT) -> None:
        httpx = import_httpx()  # here, not at the top: it costs ~0.1 s to import

        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=lazy_transport(httpx)
        )
        self._transport_errors = (httpx.TransportError,)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stream(self, method: str, path: str, body: Any = None) -> Iterator[Any]:
        """The JSON lines of a streamed answer, as they come (no time limit between them).

        Raises:
            GridError: the server refused the request (rebuilt as by ``call``).
            StorageError: the server cannot be reached, or the stream broke off.
        """
        try:
            with self._http.stream(method, path, json=body, timeout=None) as response:
                if not response.is_success:
                    response.read()
                    self._raise(response, method, path)
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except self._transport_errors as exc:
            raise e.ServerUnreachableError(
                f"lost the grid server at {self.url}: {exc}", transient=True
            ) from exc

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        wait: bool = False,
        idempotent: bool | None = None,
    ) -> Any:
        """The JSON answer of ``method path`` (None for 204); ``wait``: no time limit (the
        server works for as long as the data takes, e.g. checking a commit). An idempotent
        request (a GET, unless told otherwise) is tried again, with backoff, when the server
        cannot be reached or answers 502/503/504 (a restart, a load balancer between servers).

        Raises:
            GridError: the server's error, rebuilt (UnauthorizedError, NotFoundError, ...).
            ServerUnreachableError: the server cannot be reached (transient).
        """
        again = method == "GET" if idempotent is None else idempotent
        timeout: Any = None if wait else self._http.timeout
        for delay in (*(_BACKOFF if again else ()), None):
            try:
                response = self._http.request(method, path, json=body, timeout=timeout)
            except self._transport_errors as exc:
                if delay is None:
                    raise e.ServerUnreachableError(
                        f"cannot reach the grid server at {self.url}: {exc}", transient=True
                    ) from exc
                time.sleep(delay)
                continue
            if delay is not None and response.status_code in (502, 503, 504):
                time.sleep(delay)
                continue
            break
        if response.status_code == 204:
            return None
        if response.is_success:
            return response.json()
        self._raise(response, method, path)

    def _raise(self, response: Any, method: str, path: str) -> NoReturn:
        try:
            problem = response.json()
            code, detail = problem["code"], problem["detail"]
            attrs = problem.get("attrs") or {}
        except (ValueError, KeyError, TypeError):
            raise e.StorageError(
                f"the grid server at {self.url} answered {response.status_code} to {method} {path}",
                transient=response.status_code >= 500,
            ) from None
        raise e.rebuild(code, detail, attrs, response.headers.get("x-request-id"))
