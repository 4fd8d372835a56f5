"""A URL read as a seekable file over Range requests (a zip's central directory is at its end),
every answer checked to be the same file."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx

from grid.errors import SourceError
from grid.sources.http import get
from grid.sources.http_stream import RetryingBody, content_range, validators

_SKIP_MAX = 1 << 20  # a forward seek shorter than this reads through instead of reconnecting


class RangeFile(RetryingBody):
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
            given = self._validator  # an ETag ("...") or a Last-Modified date
            found_now = now[0] if given.startswith('"') else now[1]
            if given and found_now and found_now != given:  # the server ignored If-Range
                raise SourceError(
                    f"{self.url} changed on the server ({given} -> {found_now}); try again",
                    path=self.url,
                )
            self._validators = now
            self._validator = given or now[0] or now[1]
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
