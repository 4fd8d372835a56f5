"""Every object under ``s3://bucket/prefix`` as a source: keys relative to the prefix become
paths, "folders" come from the ``/`` in keys.

The tree is listed one level at a time (``Delimiter='/'``) and walked depth first with names
sorted, as a local folder is, so memory stays at one level's listing. An object's ETag stands in
for the inode of a local file (and its LastModified for the mtime), so a re-run reads only the
objects whose ETag or size changed.

Keys follow the archive path rule (``grid.sources.archive_rules.key_path``): an empty, ``.`` or
``..`` segment, a segment over 255 bytes, or a key that is both a file and a folder (``a`` and
``a/b``) refuses the source with an ``ArchiveError`` naming the key, before any version is made
of it. A key ending in ``/`` with no body is a folder marker (as the AWS console makes): the
folder, empty or not; one with a body is refused.
"""

from __future__ import annotations

import hashlib
import io
import stat
from collections.abc import Iterator
from datetime import datetime
from typing import Any, BinaryIO

from grid.errors import ArchiveError, SourceError, UsageError
from grid.ids import digest_of
from grid.objects import s3 as s3_objects
from grid.objects.pinned import Pin
from grid.sources.archive_rules import key_path, shown
from grid.tree import SourceDefaults, SourceEntry, Warn

_FILE_MODE = stat.S_IFREG | 0o644
_DIR_MODE = stat.S_IFDIR | 0o755


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``).

    Raises:
        UsageError: not such a URL.
    """
    try:
        return s3_objects.parse_url(url)
    except ValueError as exc:
        raise UsageError(str(exc), rule="s3://bucket[/prefix]") from exc


def _ns(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000_000)


class _Body(io.RawIOBase):
    """A streaming GET as a readable raw file (``readinto`` for the chunker)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


class S3Source(SourceDefaults):
    """Objects of a bucket under a prefix.

    Args:
        url: ``s3://bucket[/prefix]``.
        warn: where non-fatal problems are reported.
        endpoint_url, profile, region: as for boto3 (default: the standard AWS chain).
        pinned: list each object's latest version (``ListObjectVersions``) and give, as each
            file entry's ``location``, the name of its ``Pin`` (version id where the bucket
            keeps versions, else ETag and size): for ``--no-copy`` (``grid.store.referencing``).
    """

    sequential = False
    noun = "prefix"
    workers = 16  # GETs wait on the network: many in flight

    def __init__(
        self,
        url: str,
        warn: Warn | None = None,
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
        region: str | None = None,
        pinned: bool = False,
    ) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self.pinned = pinned
        self._where = (endpoint_url, region)
        self._versioned: bool | None = None  # the bucket keeps versions (asked when pinning)

        self.root = url.rstrip("/")
        self.bucket, self.prefix = parse_url(url)
        self.warn = warn or (lambda _msg: None)
        self.exclude: tuple[str, ...] = ()
        self._s3 = s3_objects.client(endpoint_url, profile, region)
        self._errors = (ClientError, BotoCoreError)
        self._client_error = ClientError

    def _problem(self, exc: Exception, doing: str) -> Exception:
        code = ""
        if isinstance(exc, self._client_error):
            code = str(exc.response.get("Error", {}).get("Code", ""))
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        if code == "NoSuchBucket":
            return UsageError(f"bucket {self.bucket!r} does not exist", rule="SOURCE must exist")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return SourceError(
                f"access denied to {where} ({code}): grant s3:ListBucket and s3:GetObject "
                "(see README, 'Create from S3')",
                path=where,
            )
        return SourceError(f"cannot {doing} {where}: {code or exc}", path=where)

    def _level(self, prefix: str) -> tuple[list[str], list[dict[str, Any]]]:
        """Sub-folder names and objects directly under ``prefix`` (a folder's name is what
        lies between ``prefix`` and the next ``/``: it may be empty, for ``a//b``)."""
        folders: list[str] = []
        objects: list[dict[str, Any]] = []
        try:
            listing = (
                "list_object_versions"
                if self.pinned and self._keeps_versions()
                else ("list_objects_v2")
            )
            pages = self._s3.get_paginator(listing).paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                folders += [p["Prefix"][len(prefix) : -1] for p in page.get("CommonPrefixes", [])]
                listed = page.get("Contents", [])
                if listing == "list_object_versions":  # each key's current version, if any
                    listed = [v for v in page.get("Versions", []) if v.get("IsLatest")]
                for obj in listed:
                    if not obj["Key"].endswith("/"):
                        objects.append(obj)
                    elif int(obj.get("Size", 0)):  # the folder's own marker, with a body
                        raise ArchiveError(
                            f"S3 key {shown(obj['Key'])} ends in '/' but holds "
                            f"{obj['Size']} bytes: it cannot be both a folder and a file; "
                            "rename the object",
                            path=obj["Key"],
                        )
        except self._errors as exc:
            raise self._problem(exc, "list") from exc
        return folders, objects

    def _first_key(self, prefix: str) -> str:
        """A key under ``prefix`` (to name in a message), or ``prefix...`` if none is found."""
        try:
            listed = self._s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
            return str(listed["Contents"][0]["Key"])
        except (*self._errors, KeyError, IndexError):
            return f"{prefix}..."

    def _children(self, prefix: str, rel: str) -> list[tuple[str, str, Any]]:
        """(name, path, object or None for a folder) under ``prefix``, names sorted, each
        checked by the path rule.

        Raises:
            ArchiveError: a key that cannot be a path, or a file and a folder of one name.
        """
        folders, objects = self._level(prefix)
        files = {o["Key"][len(prefix) :]: o for o in objects}
        children: list[tuple[str, str, Any]] = []
        for name in folders:
            path = f"{rel}/{name}" if rel else name
            try:
                key_path(f"{prefix}{name}/", path)
            except ArchiveError:
                key_path(self._first_key(f"{prefix}{name}/"), path)  # names a key
                raise
            if name in files:
                key, under = files[name]["Key"], self._first_key(f"{prefix}{name}/")
                raise ArchiveError(
                    f"S3 keys {shown(key)} and {shown(under)} make {shown(path)} both a file "
                    "and a folder; rename one of them",
                    path=key,
                )
            children.append((name, path, None))
        for name, obj in files.items():
            path = f"{rel}/{name}" if rel else name
            key_path(obj["Key"], path)
            children.append((name, path, obj))
        return sorted(children, key=lambda c: c[0])

    def fingerprint(self) -> str:
        """A digest of every object's key, ETag and size under the prefix: it changes when
        any object does (a schedule makes no version while it stays the same)."""
        digest = hashlib.sha256()
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    digest.update(f"{obj['Key']}\0{obj.get('ETag', '')}\0{obj['Size']}\n".encode())
        except self._errors as exc:
            raise self._problem(exc, "list") from exc
        return "s3:" + digest.hexdigest()

    def is_empty(self) -> bool:
        folders, objects = self._level(f"{self.prefix}/" if self.prefix else "")
        return not folders and not objects

    def cancel(self) -> None:
        """Nothing to do: reads of a local file or an object end on their own."""

    def entries(self) -> Iterator[SourceEntry]:
        yield from self._walk(f"{self.prefix}/" if self.prefix else "", "")

    def _walk(self, prefix: str, rel: str) -> Iterator[SourceEntry]:
        for name, path, obj in self._children(prefix, rel):
            if obj is None:
                yield SourceEntry(rel, name, _DIR_MODE, 0, 0, None, f"{prefix}{name}/")
                yield from self._walk(f"{prefix}{name}/", path)
            else:
                etag = str(obj.get("ETag", "")).strip('"')
                if self.pinned:
                    yield self._pinned_entry(rel, name, obj, etag)
                    continue
                yield SourceEntry(
                    rel,
                    name,
                    _FILE_MODE,
                    int(obj["Size"]),
                    _ns(obj["LastModified"]),
                    None,
                    f"s3://{self.bucket}/{obj['Key']}",
                    # the ETag, as a number, plays the inode: a changed object gets a new one
                    int.from_bytes(digest_of(etag.encode())[:7], "big") or 1,
                    0,
                )

    def _keeps_versions(self) -> bool:
        """Whether the bucket keeps versions (enabled, or suspended: some objects may have
        one); a store that will not say is taken for one that keeps none (ETag pins)."""
        if self._versioned is None:
            try:
                answer = self._s3.get_bucket_versioning(Bucket=self.bucket)
                self._versioned = answer.get("Status") in ("Enabled", "Suspended")
            except self._errors:
                self._versioned = False
        return self._versioned

    def _pinned_entry(self, rel: str, name: str, obj: dict[str, Any], etag: str) -> SourceEntry:
        version = str(obj.get("VersionId") or "")
        if version == "null":  # written while versioning was off: pinned by its ETag, as
            etag = self._etag(obj["Key"])  # HEAD gives it (a version listing may differ)
        pin = Pin(
            self.bucket,
            obj["Key"],
            etag,
            int(obj["Size"]),
            None if version in ("", "null") else version,  # "null": the bucket keeps none
            *self._where,
        )
        return SourceEntry(
            rel, name, _FILE_MODE, pin.size, _ns(obj["LastModified"]), None, pin.name
        )

    def _etag(self, key: str) -> str:
        try:
            return str(self._s3.head_object(Bucket=self.bucket, Key=key).get("ETag", "")).strip('"')
        except self._errors as exc:
            raise self._problem(exc, "read") from exc

    def open(self, entry: SourceEntry) -> BinaryIO:
        key = entry.location.removeprefix(f"s3://{self.bucket}/")
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        except self._client_error as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(entry.location) from exc
            raise self._problem(exc, "read") from exc
        except self._errors as exc:
            raise self._problem(exc, "read") from exc
        return io.BufferedReader(_Body(body), 1 << 20)
