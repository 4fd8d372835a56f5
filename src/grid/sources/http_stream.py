"""The body of a GET read as a forward stream that resumes after a dropped connection, and
what it shares with the seekable reader of ``grid.sources.http_ranges``: retries, the low-speed
limit, and the validators that tell one version of a file from another.

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
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from grid.errors import SourceError
from grid.sources.http import get

_RETRIES = 5
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


class RetryingBody(io.RawIOBase):
    """An open streamed response and the rest of its last chunk, handed out by ``_take``. A
    dropped connection is reopened where it broke (``_reopen``, by the subclass) at most
    ``_RETRIES`` times in a row; a download under the low-speed limit fails."""

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


class HttpStream(RetryingBody):
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
