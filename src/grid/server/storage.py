"""Where a server keeps bytes, and the URLs it hands clients to move them.

With S3-compatible storage a client gets presigned URLs and talks to the store itself: the
server never carries pack bytes. With a local folder (a one-machine server) the URLs point at
the server's own ``/v1/objects/TOKEN``, where TOKEN names one object and method until it
expires, signed with a secret every server on the database shares.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

from grid.errors import UnauthorizedError, UsageError
from grid.objects import LocalDirectory, ObjectStore
from grid.objects.base import validate_key
from grid.objects.urls import open_url

URL_SECONDS = 3600
OBJECTS_PATH = "/v1/objects"


def open_storage(url: str) -> ObjectStore:
    """The object store of ``url``: ``s3://bucket[/prefix]``, ``file:///folder`` or a path.

    Raises:
        UsageError: an unsupported URL.
    """
    if "://" not in url:
        return LocalDirectory(url)
    objects = open_url(url)
    if objects is None:
        raise UsageError(
            f"unsupported storage URL {url!r}", rule="s3://bucket[/prefix] or file:///folder"
        )
    return objects


class ObjectUrls:
    """Short-lived URLs to one object each, presigned by the store or signed here."""

    def __init__(self, objects: ObjectStore, secret: str) -> None:
        self.objects = objects
        self._secret = secret.encode()

    def url(self, key: str, method: str) -> str:
        """A URL (absolute, or relative to the server) to ``method`` object ``key``; a PUT
        only creates (``If-None-Match: *``): it never replaces an object."""
        presigned = self.objects.presign(key, method, URL_SECONDS, create_only=True)
        if presigned is not None:
            return presigned
        return f"{OBJECTS_PATH}/{self.sign(key, method)}"

    def sign(self, key: str, method: str) -> str:
        """A token for ``method`` on ``key`` until ``URL_SECONDS`` from now."""
        payload = base64.urlsafe_b64encode(
            json.dumps([key, method, int(time.time()) + URL_SECONDS]).encode()
        ).decode()
        return f"{payload}.{self._mac(payload)}"

    def _mac(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()

    def check(self, token: str, method: str) -> str:
        """The key ``token`` allows ``method`` on.

        Raises:
            UnauthorizedError: forged, for another method, or expired.
        """
        payload, _, mac = token.partition(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise UnauthorizedError("this object URL is not valid")
        try:
            key, allowed, expires = json.loads(base64.urlsafe_b64decode(payload))
            validate_key(key)
        except (ValueError, TypeError, UsageError) as exc:
            raise UnauthorizedError("this object URL is not valid") from exc
        if allowed != method and not (allowed == "GET" and method == "HEAD"):
            raise UnauthorizedError(f"this object URL allows {allowed}, not {method}")
        if expires < time.time():
            raise UnauthorizedError("this object URL has expired: ask for a new one")
        return str(key)


def default_storage(home: str) -> str:
    """A one-machine server's storage: a folder under its GRID_HOME."""
    return os.path.join(home, "server-objects")
