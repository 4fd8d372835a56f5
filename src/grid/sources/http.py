"""Reading an http(s) URL: as a forward stream that resumes after a dropped connection, or as a
seekable file over Range requests.

Redirects are followed by hand (at most ``MAX_REDIRECTS``) so that every hop passes the address
check: unless private addresses are allowed (embedded mode runs as the user, so it allows
them), a URL whose host resolves to a loopback, private, link-local (cloud metadata),
multicast or reserved address is refused, and the connection itself goes only to an address
that passed (no DNS rebinding between check and connect). A redirect to another scheme
(``data:``, ``mailto:``, ``ftp:``) is refused, naming its target.

A dropped download is resumed only under a strong validator (an ETag that is not weak, or a
Last-Modified) sent back as ``If-Range``, and only when the answer covers the same file: same
validator, a ``Content-Range`` starting where the download broke, and the same total length.
Without a validator a streamed archive cannot be resumed safely (nor restarted: its first bytes
are already stored), so the download fails and says to try again. For the same reason
``HttpStream.ranges`` (read a zip by Range requests) needs a validator too: without one, a zip is
spooled from the single first response instead.

A download that receives fewer than ``LOW_SPEED_BYTES`` in ``LOW_SPEED_TIME`` seconds of waiting
on the network fails (a server that trickles a byte every few seconds never trips the read
timeout); progress (``on_read``) counts bytes as they arrive from the network.
"""

from __future__ import annotations

import io
import ipaddress
import re
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
_SKIP_MAX = 1 << 20  # a forward seek shorter than this reads through instead of reconnecting
_TIMEOUT = httpx.Timeout(30.0, connect=15.0)
LOW_SPEED_BYTES = 1024  # fewer bytes than this in LOW_SPEED_TIME seconds: too slow, fail
LOW_SPEED_TIME = 60.0  # ... seconds spent waiting on the network (not on the reader)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


def validators(headers: httpx.Headers) -> tuple[str, str]:
    """The strong ETag (a weak one cannot tell two versions of a file apart byte for byte) and
    the Last-Modified of a response; "" for each one missing."""
    etag = headers.get("etag", "").strip()
    if etag.startswith(("W/", "w/")):
        etag = ""
    return etag, headers.get("last-modified", "").strip()


def content_range(headers: httpx.Headers) -> tuple[int, int | None] | None:
    """The first byte and the total length (None: unknown) a 206 answer says it holds; None
    when it has no valid Content-Range."""
    found = _CONTENT_RANGE.fullmatch(headers.get("content-range", "").strip())
    if found is None:
        return None
    total = found.group(3)
    return int(found.group(1)), None if total == "*" else int(total)


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
        self.received = 0  # bytes that arrived, over every response
        self._waited = 0.0  # seconds spent waiting on the network in the current window ...
        self._window_bytes = 0  # ... and the bytes that arrived in it

    def readable(self) -> bool:
        return True

    def _attach(self, response: httpx.Response) -> None:
        self._close_response()
        # no chunk size: each piece as it comes off the socket, so that a dropped connection
        # loses nothing already received and progress moves as bytes arrive
        self._response, self._chunks, self._left = response, response.iter_raw(), b""

    def _reopen(self) -> None:
        """Open a new response where the broken one stopped."""
        raise NotImplementedError

    def _ended_early(self) -> bool:
        """Whether an ended body is shorter than the server said."""
        return False

    def _done(self) -> str:
        """How far the download got, for messages."""
        return f"{self.received} bytes"

    def _next_chunk(self) -> bytes:
        """The next piece off the network (b"" at the end), timed: fewer than
        ``LOW_SPEED_BYTES`` in ``LOW_SPEED_TIME`` seconds of waiting fails the download."""
        started, chunk = time.monotonic(), b""
        try:
            chunk = next(self._chunks, b"")
        finally:
            self._waited += time.monotonic() - started
            self._window_bytes += len(chunk)
        self.received += len(chunk)
        if self._waited >= LOW_SPEED_TIME:
            if self._window_bytes < LOW_SPEED_BYTES:
                raise SourceError(
                    f"download of {self.url} is too slow: less than {LOW_SPEED_BYTES} bytes "
                    f"arrived in {LOW_SPEED_TIME:g} s (after {self._done()}); try again later",
                    path=self.url,
                )
            self._waited, self._window_bytes = 0.0, 0
        return chunk

    def _pull(self) -> bytes:
        """The next chunk (b"" at the end); a dropped connection is reopened where it broke,
        at most ``_RETRIES`` times in a row, with backoff."""
        for attempt in range(1, _RETRIES + 2):
            try:
                chunk = self._next_chunk()
                if not chunk and self._ended_early():
                    raise httpx.RemoteProtocolError("connection closed early")
                return chunk
            except httpx.TransportError as exc:
                if attempt > _RETRIES:
                    raise SourceError(
                        f"download of {self.url} failed after {self._done()}: {exc}",
                        path=self.url,
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
    response's strong validator; the answer must be the same file, from the same byte), at most
    ``_RETRIES`` times in a row; without a validator it fails instead, so a changed file is
    never spliced. ``total`` is the length when the server gave one; ``position`` counts bytes
    read; ``ranges``: the file can be read by Range requests (the server says so and gave a
    strong validator).
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
        self._validators = ("", "")  # the first response's strong ETag and Last-Modified
        self._connect()

    @property
    def validator(self) -> str:
        """The first response's strong validator ("" if none): the If-Range of a resume."""
        return self._validators[0] or self._validators[1]

    def _done(self) -> str:
        return f"{self.position} of {self.total} bytes" if self.total else f"{self.position} bytes"

    def _cannot_resume(self, why: str) -> SourceError:
        return SourceError(
            f"download of {self.url} broke after {self._done()} and cannot resume: {why}; "
            "try again",
            path=self.url,
        )

    def _connect(self) -> None:
        headers = {"Accept-Encoding": "identity"}
        if self.position:
            if not self.validator:
                raise self._cannot_resume(
                    "the server gave no ETag/Last-Modified, so a dropped download cannot be "
                    "resumed safely"
                )
            headers["Range"] = f"bytes={self.position}-"
            headers["If-Range"] = self.validator
        response = get(self._client, self.url, headers, self._allow_private)
        if self.position:
            try:
                self._check_resumed(response)
            except BaseException:
                response.close()
                raise
        else:
            length = response.headers.get("content-length")
            self.total = int(length) if length and length.isdigit() else None
            self._validators = validators(response.headers)
            offered = response.headers.get("accept-ranges", "").lower() == "bytes"
            self.ranges = offered and bool(self.validator)
            self.content_type = response.headers.get("content-type", "")
            self.final_url = str(response.url)
        self._attach(response)

    def _check_resumed(self, response: httpx.Response) -> None:
        """Refuse an answer to a resume that is not the rest of the same file."""
        if response.status_code != 206:
            raise self._cannot_resume(
                "the server does not honour Range requests, or the file changed"
            )
        found = content_range(response.headers)
        if found is None or found[0] != self.position:
            raise self._cannot_resume(
                "the server answered with another range "
                f"({response.headers.get('content-range') or 'no Content-Range'})"
            )
        total = found[1]
        if self.total is not None and total is not None and total != self.total:
            raise self._cannot_resume(
                f"the file changed on the server (its length went from {self.total} to {total})"
            )
        for was, now in zip(self._validators, validators(response.headers), strict=True):
            if was and now and was != now:
                raise self._cannot_resume(f"the file changed on the server ({was} -> {now})")

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
    range request there. ``size`` is the whole length. Every answer must be the same file: its
    Content-Range total equals ``size``, and it carries the strong validator of the first answer
    (``validator`` if given), which later requests send as ``If-Range``. Use it only for a file
    with a strong validator (``HttpStream.ranges``): without one a change of the same length
    cannot be seen.
    """

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        size: int,
        allow_private: bool,
        on_read: Callable[[int], None] | None = None,
        validator: str = "",
    ) -> None:
        super().__init__(client, url, allow_private, on_read)
        self.size = size
        self._pos = 0
        self._stream_pos = -1
        self._validator = validator
        self._validators: tuple[str, str] | None = None  # of the first answer

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
        headers = {"Range": f"bytes={position}-", "Accept-Encoding": "identity"}
        if self._validator:
            headers["If-Range"] = self._validator
        response = get(self._client, self.url, headers, self._allow_private)
        try:
            self._check(response, position)
        except BaseException:
            response.close()
            raise
        self._attach(response)
        self._stream_pos = position

    def _check(self, response: httpx.Response, position: int) -> None:
        """Refuse an answer that is not bytes ``position``... of the same file."""
        if response.status_code != 206:
            why = "the file changed, or the server" if self._validator else "the server"
            raise SourceError(
                f"{self.url}: {why} stopped honouring Range requests; try again", path=self.url
            )
        found = content_range(response.headers)
        if found is None or found[0] != position:
            raise SourceError(
                f"{self.url} answered a Range request for byte {position} with another range "
                f"({response.headers.get('content-range') or 'no Content-Range'})",
                path=self.url,
            )
        if found[1] is not None and found[1] != self.size:
            raise SourceError(
                f"{self.url} changed on the server while being read (its length went from "
                f"{self.size} to {found[1]}); try again",
                path=self.url,
            )
        now = validators(response.headers)
        if self._validators is None:
            self._validators = now
            self._validator = self._validator or now[0] or now[1]
            return
        for was, new in zip(self._validators, now, strict=True):
            if was and new and was != new:
                raise SourceError(
                    f"{self.url} changed on the server while being read ({was} -> {new}); "
                    "try again",
                    path=self.url,
                )

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
        except httpx.InvalidURL as exc:  # a redirect httpx cannot parse (``client`` names it)
            raise UsageError(
                f"{url} redirects to an invalid URL: {exc}", rule="SOURCE URL must be downloadable"
            ) from exc
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


def _refuse_odd_redirect(response: httpx.Response) -> None:
    """Refuse a redirect to anything but an http(s) URL, naming it (httpx would fail on some,
    such as ``data:`` or ``mailto:``, while preparing the next request)."""
    if not response.has_redirect_location:
        return
    location = response.headers["location"]
    try:
        target = urljoin(str(response.request.url), location)
        ok = urlsplit(target).scheme in ("http", "https") and bool(httpx.URL(target).host)
    except (ValueError, httpx.InvalidURL):
        ok = False
    if not ok:
        raise UsageError(
            f"{response.request.url} redirects to {location!r}, which is not a valid http(s) "
            "URL: refused",
            rule="SOURCE URL must be downloadable",
        )


def client(allow_private: bool = True) -> httpx.Client:
    """An HTTP client for downloads (redirects are followed by ``get``, hop by hop, and refused
    unless to http(s)); unless ``allow_private``, it connects to public addresses only."""
    transport = httpx.HTTPTransport()
    if not allow_private:
        # httpx has no public hook for the connecting backend: its pool is rebuilt with one
        transport._pool = httpcore.ConnectionPool(network_backend=_PublicOnly())
    return httpx.Client(
        timeout=_TIMEOUT,
        follow_redirects=False,
        transport=transport,
        event_hooks={"response": [_refuse_odd_redirect]},
    )
