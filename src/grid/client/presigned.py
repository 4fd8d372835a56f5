"""One owner's objects on a team-mode server, reached with the short-lived URLs it hands out:
bytes go straight between this machine and the object store, never through the API server.

Writes only create (``If-None-Match: *``): the server checks what was uploaded when the
version is committed. URLs are kept until shortly before they expire. Nothing here sends the
API key to the store.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

from grid.client.api_session import ApiSession
from grid.errors import NotFoundError, ServerUnreachableError, StorageError, UsageError
from grid.objects.base import Buffer, ObjectInfo, ObjectStore, validate_key

_CREATE = {"If-None-Match": "*"}
_KEEP_URL = 1800.0  # seconds a URL is reused (the server gives an hour)
_BACKOFF = (0.2, 0.5, 1.0, 2.0, 4.0)  # seconds between tries (as ``ApiSession``)
_TIMEOUT = 120.0


class PresignedObjects(ObjectStore):
    """Objects of ``owner`` on the server of ``api``."""

    def __init__(self, api: ApiSession, owner: str) -> None:
        from grid.client.api_session import import_httpx, lazy_transport

        httpx = import_httpx()
        self._api = api
        self._path = f"/v1/owners/{quote(owner, safe='')}/objects"
        self._checks = f"/v1/owners/{quote(owner, safe='')}/packs/check"
        limits = httpx.Limits(max_connections=32)
        self._http = httpx.Client(timeout=_TIMEOUT, transport=lazy_transport(httpx, limits=limits))
        self._errors = (httpx.TransportError,)
        self._urls: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def _url(self, key: str, method: str) -> str:
        validate_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._urls.get((method, key))
        if hit is not None and hit[1] > now:
            return hit[0]
        body = {"method": method, "keys": [key]}
        urls = self._api.call("POST", self._path, body, idempotent=True)["urls"]
        url = str(urls[key])
        if url.startswith("/"):
            url = self._api.url + url
        with self._lock:
            self._urls[(method, key)] = (url, now + _KEEP_URL)
        return url

    def _send(self, method: str, key: str, **kw: Any) -> Any:
        """``method`` on ``key``'s URL, tried again with backoff when the store cannot be
        reached or answers 5xx (GET, HEAD and a create-only PUT are all idempotent); a refused
        (expired) URL is asked for again once."""
        refreshed = False
        for delay in (*_BACKOFF, None):
            url = self._url(key, method)
            body: Any = kw.get("content")
            if hasattr(body, "seek"):
                body.seek(0)  # a file sent again from its start
            try:
                response = self._http.request(method, url, **kw)
            except self._errors as exc:
                if delay is None:
                    raise ServerUnreachableError(
                        f"cannot reach the object store: {exc}", transient=True
                    ) from exc
                time.sleep(delay)
                continue
            if response.status_code >= 500 and delay is not None:
                time.sleep(delay)
                continue
            if response.status_code == 404:
                raise NotFoundError(f"object {key} does not exist", key=key)
            if response.status_code == 412:
                return response  # a create-only PUT of an object that exists
            if response.status_code in (401, 403) and not refreshed:
                refreshed = True
                with self._lock:
                    self._urls.pop((method, key), None)
                continue
            if response.status_code >= 400 and response.status_code != 416:
                raise StorageError(
                    f"the object store answered {response.status_code} to {method} {key}",
                    key=key,
                    transient=response.status_code >= 500,
                )
            return response
        raise StorageError(f"the object store refused {method} {key}", key=key)

    def put(self, key: str, parts: Sequence[Buffer]) -> int:
        data = b"".join(parts)
        self._created(key, len(data), self._send("PUT", key, content=data, headers=_CREATE))
        return len(data)

    def put_file(self, key: str, path: str) -> int:
        """Stream the file (a manifest may be large), its length sent up front as S3 wants."""
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self._created(key, size, self._send("PUT", key, content=f, headers=_CREATE))
            return size

    def _created(self, key: str, size: int, response: Any) -> None:
        """A refused create is fine if the object is there whole: an earlier try of this
        upload arrived (its answer was lost); anything else is a clash."""
        if response.status_code == 412 and self.size(key) != size:
            raise StorageError(f"object {key} exists with other bytes; not replaced", key=key)

    def get(self, key: str) -> bytes:
        return bytes(self._send("GET", key).content)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            self.size(key)
            return b""
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        response = self._send("GET", key, headers=headers)
        if response.status_code == 416:
            return b""
        data = bytes(response.content)
        return data if response.status_code == 206 else data[offset : offset + length]

    def size(self, key: str) -> int:
        return int(self._send("HEAD", key).headers["content-length"])

    def sync(self, keys: Sequence[str]) -> None:
        """Have the server check the packs among ``keys`` now (it would at commit): the check
        then runs beside the rest of the upload.

        Raises:
            IntegrityError: the server found one damaged (and deleted it).
        """
        pack_ids = [k.rsplit("/", 1)[1] for k in keys if k.startswith("packs/")]
        if pack_ids:
            self._api.call("POST", self._checks, {"pack_ids": pack_ids}, wait=True, idempotent=True)

    def delete(self, key: str) -> None:
        """Nothing: a team-mode server deletes objects itself (delete and gc)."""

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        raise UsageError(
            "a team-mode server's storage is not listed by clients",
            rule="gc of team-mode storage runs on the server",
        )

    def put_if_absent(self, key: str, data: bytes) -> bool:
        raise UsageError("claims are the server's business in team mode")
