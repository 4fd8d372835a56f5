"""Objects a version references where they are (``create s3://... --no-copy``), each pinned
at the moment the version was made: by its ``versionId`` where the bucket keeps versions, else
by its ETag and size. Every read asks for exactly that (``VersionId=``, or ``If-Match:`` the
ETag) and checks the answer's size, version and ETag, so it gives the pinned bytes or an error
naming the object, never other bytes.

A pin is written into the manifest as the name of the "pack" its file's pieces lie in
(``Pin.name``: ``ext:`` and a compact JSON); see docs/format.md, "Referenced objects".
Credentials come from the standard AWS chain (or ``profile``) of whoever reads, as for the S3
source; the endpoint and region recorded at create are used again.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from grid.errors import ReferenceChangedError, StorageError
from grid.objects import s3 as s3_objects

PREFIX = "ext:"
_GONE = {"NoSuchKey", "NoSuchVersion", "404", "NotFound"}
_CHANGED = {"PreconditionFailed", "412"}


@dataclass(frozen=True)
class Pin:
    """One object as it was: ``version_id`` None where the bucket kept no versions."""

    bucket: str
    key: str
    etag: str
    size: int
    version_id: str | None = None
    endpoint_url: str | None = None
    region: str | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        """The pin as a manifest records it."""
        fields = [self.bucket, self.key, self.etag, self.size, self.version_id]
        fields += [self.endpoint_url, self.region]
        return PREFIX + json.dumps(fields, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def parse(cls, name: str) -> Pin:
        """The pin ``name`` records.

        Raises:
            ReferenceChangedError: not a pin (a damaged manifest).
        """
        try:
            bucket, key, etag, size, version, endpoint, region = json.loads(name[len(PREFIX) :])
            if not (isinstance(bucket, str) and isinstance(key, str) and isinstance(size, int)):
                raise ValueError(name)
            return cls(bucket, key, str(etag), size, version, endpoint, region)
        except (ValueError, TypeError) as exc:
            raise ReferenceChangedError(f"damaged manifest: {name[:80]!r} is not a pin") from exc


def is_pin(name: str) -> bool:
    return name.startswith(PREFIX)


class PinnedObjects:
    """Ranged reads of pinned objects (one S3 client per endpoint and region, made when
    first needed)."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str | None, str | None], Any] = {}
        self._lock = threading.Lock()

    def _client(self, pin: Pin) -> Any:
        where = (pin.endpoint_url, pin.region)
        with self._lock:
            if where not in self._clients:
                self._clients[where] = s3_objects.client(pin.endpoint_url, None, pin.region)
            return self._clients[where]

    def get_ranges(self, pin: Pin, ranges: list[tuple[int, int]]) -> list[bytes]:
        """The bytes of each ``(offset, length)`` of the pinned object, read with one GET.

        Raises:
            ReferenceChangedError: the object changed, or is gone, since it was pinned.
            StorageError: the store cannot be read (access, network).
        """
        if not ranges:
            return []
        start = min(o for o, _ in ranges)
        end = max(o + n for o, n in ranges)
        if end > pin.size:
            raise ReferenceChangedError(f"{pin.url}: a read past its pinned {pin.size} bytes")
        data, answer = self._get(pin, {**_asking(pin), "Range": f"bytes={start}-{end - 1}"})
        total = str(answer.get("ContentRange", "")).rpartition("/")[2]
        etag = str(answer.get("ETag", "")).strip('"')
        if (
            len(data) != end - start
            or (total.isdecimal() and int(total) != pin.size)
            or _differs(pin, etag, answer.get("VersionId"))
        ):
            raise _overwritten(pin)
        return [data[o - start : o - start + n] for o, n in ranges]

    def check(self, pin: Pin) -> None:
        """Check the pinned object is still there as pinned (a HEAD).

        Raises:
            ReferenceChangedError, StorageError: as ``get_ranges``.
        """
        answer = self._call(pin, "head_object", _asking(pin))
        etag = str(answer.get("ETag", "")).strip('"')
        if int(answer.get("ContentLength", -1)) != pin.size or _differs(
            pin, etag, answer.get("VersionId")
        ):
            raise _overwritten(pin)

    def _get(self, pin: Pin, args: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        answer = self._call(pin, "get_object", args)
        try:
            return answer["Body"].read(), answer
        except Exception as exc:  # a broken body: botocore's and urllib3's errors
            raise StorageError(f"cannot read {pin.url}: {exc}") from exc
        finally:
            answer["Body"].close()

    def _call(self, pin: Pin, method: str, args: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return dict(getattr(self._client(pin), method)(**args))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in _GONE or status == "404":
                raise ReferenceChangedError(
                    f"{pin.url} was deleted since this version pinned it"
                    + (f" (version {pin.version_id})" if pin.version_id else ""),
                    key=pin.url,
                ) from exc
            if code in _CHANGED or status == "412":
                raise ReferenceChangedError(
                    f"{pin.url} changed since this version pinned it (ETag {pin.etag}); the "
                    "bucket keeps no versions, so the pinned bytes are gone",
                    key=pin.url,
                ) from exc
            raise StorageError(f"cannot read {pin.url}: {code or exc}", key=pin.url) from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read {pin.url}: {exc}", key=pin.url) from exc


def _asking(pin: Pin) -> dict[str, Any]:
    """A GET's or HEAD's arguments that ask for the pinned object and nothing else."""
    if pin.version_id:
        return {"Bucket": pin.bucket, "Key": pin.key, "VersionId": pin.version_id}
    return {"Bucket": pin.bucket, "Key": pin.key, "IfMatch": f'"{pin.etag}"'}


def _overwritten(pin: Pin) -> ReferenceChangedError:
    return ReferenceChangedError(
        f"{pin.url} is not the object this version pinned "
        f"({pin.size} bytes, ETag {pin.etag}): it was overwritten",
        key=pin.url,
    )


def _differs(pin: Pin, etag: str, version: object) -> bool:
    """Whether an answer is of another object than ``pin``: by version id where pinned by
    one (a store may list another form of a version's ETag than it answers), else by ETag."""
    if pin.version_id:
        return version not in (None, pin.version_id)
    return bool(etag) and etag != pin.etag
