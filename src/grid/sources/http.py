"""Reading an http(s) URL: as a forward stream that resumes after a dropped connection, or as a
seekable file over Range requests.

Redirects are followed by hand (at most ``MAX_REDIRECTS``) so that every hop passes the address
check: unless private addresses are allowed (embedded mode runs as the user, so it allows
them), a URL whose host resolves to a loopback, private, link-local (cloud metadata),
multicast or reserved address is refused, and the connection itself goes only to an address
that passed (no DNS rebinding between check and connect).
"""

from __future__ import annotations

import io
import ipaddress
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from grid.errors import SourceError, UsageError

MAX_REDIRECTS = 10
_RETRIES = 5
_CHUNK = 1 << 20
_SKIP_MAX = 1 << 20  # a forward seek shorter than this reads through instead of reconnecting
_TIMEOUT = httpx.Timeout(30.0, connect=15.0)


def check_url(url: str, allow_private: bool) -> None:
    """Refuse what is not an http(s) URL, and (unless ``allow_private``) a host that resolves
    to an address inside the machine's or the cloud's own networks.

    Raises:
        UsageError: the URL is malformed, of another scheme, or refused.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{url!r} is not an http(s) URL", rule="SOURCE URL is http(s)://host/...")
    if not allow_private:
        public_addresses(parts.hostname, parts.port or 443, url)


def public_addresses(host: str, port: int, what: str) -> list[str]:
    """The addresses ``host`` resolves to, if every one is public.

    Raises:
        UsageError: it does not resolve, or one of its addresses is internal.
    """
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"cannot resolve {host}: {exc}", rule="SOURCE URL") from exc
    found = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global or address.is_multicast:
            raise UsageError(
                f"{what} resolves to {address}, an internal address: refused on this server "
                "(an administrator can allow internal URLs)",
                rule="SOURCE URL must be on the public internet",
            )
        found.append(str(address))
    return found


class _PublicOnly(httpcore.SyncBackend):
    """Connects only to a checked address of the host, resolved here, once per connection: a
    name cannot pass the check with a public address and then connect to an internal one (DNS
    rebinding). TLS still verifies the host name."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        address = public_addresses(host, port, host)[0]
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


class _Body(io.RawIOBase):
    """An open streamed response and the rest of its last chunk, handed out by ``_take``."""

    def __init__(self, client: httpx.Client, url: str, allow_private: bool, on_read: Any) -> None:
        self.url = url
        self._client, self._allow_private = client, allow_private
        self._on_read: Callable[[int], None] = on_read or (lambda _n: None)
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] = iter(())
        self._left = b""

    def readable(self) -> bool:
        return True

    def _attach(self, response: httpx.Response) -> None:
        self._close_response()
        self._response, self._chunks, self._left = response, response.iter_raw(_CHUNK), b""

    def _reopen(self) -> None:
        """Open a new response where the broken one stopped."""
        raise NotImplementedError

    def _ended_early(self) -> bool:
        """Whether an ended body is shorter than the server said."""
        return False

    def _pull(self) -> bytes:
        """The next chunk (b"" at the end); a dropped connection is reopened where it broke,
        at most ``_RETRIES`` times in a row, with backoff."""
        for attempt in range(1, _RETRIES + 2):
            try:
                chunk = next(self._chunks, b"")
                if not chunk and self._ended_early():
                    raise httpx.RemoteProtocolError("connection closed early")
                return chunk
            except httpx.TransportError as exc:
                if attempt > _RETRIES:
                    raise SourceError(
                        f"download of {self.url} failed: {exc}", path=self.url
                    ) from exc
                self._close_response()
                time.sleep(min(0.2 * 2**attempt, 5.0))
                self._reopen()
        return b""

    def _take(self, view: memoryview) -> int:
        n = min(len(view), len(self._left))
        view[:n] = self._left[:n]
        self._left = self._left[n:]
        self._on_read(n)
        return n

    def _close_response(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None

    def close(self) -> None:
        self._close_response()
        super().close()


class HttpStream(_Body):
    """The body of a GET as a forward-only raw stream.

    A dropped connection is resumed where it broke with ``Range`` (``If-Range`` the first
    response's validator, so a changed file is never spliced), at most ``_RETRIES`` times in a
    row. ``total`` is the length when the server gave one; ``position`` counts bytes read.
    """

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        allow_private: bool,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(client, url, allow_private, on_read)
        self.position = 0
        self.total: int | None = None
        self.ranges = False
        self.content_type = ""
        self.final_url = url
        self._validator = ""
        self._connect()

    def _connect(self) -> None:
        headers = {"Accept-Encoding": "identity"}
        if self.position:
            headers["Range"] = f"bytes={self.position}-"
            if self._validator:
                headers["If-Range"] = self._validator
        response = get(self._client, self.url, headers, self._allow_private)
        if self.position and response.status_code != 206:
            response.close()
            raise SourceError(
                f"download of {self.url} broke after {self.position} bytes and the server "
                "cannot resume it (no Range support, or the file changed)",
                path=self.url,
            )
        if not self.position:
            length = response.headers.get("content-length")
            self.total = int(length) if length and length.isdigit() else None
            self.ranges = response.headers.get("accept-ranges", "").lower() == "bytes"
            self._validator = response.headers.get("etag") or response.headers.get(
                "last-modified", ""
            )
            self.content_type = response.headers.get("content-type", "")
            self.final_url = str(response.url)
        self._attach(response)

    _reopen = _connect

    def _ended_early(self) -> bool:
        return self.total is not None and self.position < self.total

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not self._left:
            self._left = self._pull()
            if not self._left:
                return 0
        n = self._take(view)
        self.position += n
        return n


class RangeFile(_Body):
    """A seekable view of a URL whose server honours Range requests (for zip archives).

    Reads stream from one open response while they go forward; a seek elsewhere opens a new
    range request there. ``size`` is the whole length.
    """

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        size: int,
        allow_private: bool,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(client, url, allow_private, on_read)
        self.size = size
        self._pos = 0
        self._stream_pos = -1

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _open_at(self, position: int) -> None:
        self._close_response()
        response = get(
            self._client,
            self.url,
            {"Range": f"bytes={position}-", "Accept-Encoding": "identity"},
            self._allow_private,
        )
        if response.status_code != 206:
            response.close()
            raise SourceError(f"{self.url} stopped honouring Range requests", path=self.url)
        self._attach(response)
        self._stream_pos = position

    def _reopen(self) -> None:
        self._open_at(self._stream_pos)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self.size or not len(view):
            return 0
        ahead = self._pos - self._stream_pos
        if self._response is None or not 0 <= ahead <= _SKIP_MAX:
            self._open_at(self._pos)
        while self._stream_pos < self._pos or not self._left:  # skip forward or refill
            if not self._left:
                self._left = self._pull()
                if not self._left:
                    return 0
            skip = min(self._pos - self._stream_pos, len(self._left))
            self._left, self._stream_pos = self._left[skip:], self._stream_pos + skip
        n = self._take(view)
        self._pos += n
        self._stream_pos += n
        return n


def get(
    client: httpx.Client, url: str, headers: dict[str, str], allow_private: bool
) -> httpx.Response:
    """GET ``url`` as a stream, following redirects (each hop address-checked); the response
    is 200 or 206.

    Raises:
        UsageError: a refused address, too many redirects, or a 4xx answer.
        SourceError: the server failed (5xx) or could not be reached.
    """
    for _ in range(MAX_REDIRECTS + 1):
        check_url(url, allow_private)
        try:
            request = client.build_request("GET", url, headers=headers)
            response = client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot download {url}: {exc}", path=url) from exc
        if response.is_redirect:
            response.close()
            url = urljoin(url, response.headers.get("location", ""))
            continue
        if response.status_code in (200, 206):
            return response
        response.close()
        problem = f"{url} answered HTTP {response.status_code} {response.reason_phrase}"
        if response.status_code < 500:
            raise UsageError(problem, rule="SOURCE URL must be downloadable")
        raise SourceError(f"{problem}: try again later", path=url)
    raise UsageError(
        f"{url}: more than {MAX_REDIRECTS} redirects", rule="SOURCE URL must be downloadable"
    )


def client(allow_private: bool = True) -> httpx.Client:
    """An HTTP client for downloads (redirects are followed by ``get``, hop by hop); unless
    ``allow_private``, it connects to public addresses only."""
    transport = httpx.HTTPTransport()
    if not allow_private:
        # httpx has no public hook for the connecting backend: its pool is rebuilt with one
        transport._pool = httpcore.ConnectionPool(network_backend=_PublicOnly())
    return httpx.Client(timeout=_TIMEOUT, follow_redirects=False, transport=transport)
