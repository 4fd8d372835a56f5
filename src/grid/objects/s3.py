"""Objects in any S3-compatible store (AWS S3, MinIO, Ceph, R2, moto...) under ``bucket/prefix``.

Credentials and region come from the standard AWS chain (environment, ``~/.aws``, instance
role) or a named ``profile``; ``endpoint_url`` (or ``AWS_ENDPOINT_URL``) selects a non-AWS
store. Requests are retried with backoff on 5xx, throttling, resets and timeouts (botocore's
adaptive mode, ``MAX_ATTEMPTS``), each bounded by ``CONNECT_TIMEOUT`` and ``READ_TIMEOUT``
(seconds without a byte), so a stalled store is an error, never a hang. A response body that
breaks off, stalls or fails its checksum is fetched again (botocore retries only up to the
headers). A PUT is durable once it returns, so ``sync`` has nothing to do. Hot paths never list.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from grid.errors import IntegrityError, NotFoundError, StorageError
from grid.objects.base import Buffer, ObjectInfo, ObjectStore, validate_key

_MULTIPART_OVER = 64 << 20  # objects larger than this go up in parts
_PART = 16 << 20
_MISSING = {"404", "NoSuchKey", "NotFound"}
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
MAX_ATTEMPTS = 5  # the first and 4 retries: at most ~15 s of backoff
BODY_TRIES = 3


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``)."""
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise ValueError(f"{url!r} is not an s3://bucket[/prefix] URL")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix.strip("/")


def client(endpoint_url: str | None, profile: str | None, region: str | None) -> Any:
    """A boto3 S3 client from the standard AWS chain (or ``profile``), retrying 5xx,
    throttling and broken connections with backoff (adaptive), bounded by timeouts,
    path-style for a custom endpoint, 32 connections."""
    import boto3  # here, not at the top: it costs ~0.3 s to import
    from botocore.config import Config

    session = boto3.session.Session(profile_name=profile, region_name=region)
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(
            signature_version="s3v4",  # presigned URLs sign their headers (If-None-Match)
            retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "adaptive"},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            max_pool_connections=32,
            s3={"addressing_style": "path"} if endpoint_url else None,
        ),
    )


class S3Store(ObjectStore):
    """Keys are stored as ``prefix/key`` in ``bucket``.

    Args:
        bucket: the bucket (must exist).
        prefix: folder inside the bucket ('' for the root).
        endpoint_url: an S3-compatible endpoint instead of AWS.
        region: AWS region (default from the chain).
        profile: a named profile of ``~/.aws/credentials``.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
    ) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._s3 = client(endpoint_url, profile, region)

        self._client_error, self._transport_error = ClientError, BotoCoreError
        self._checksum_error = FlexibleChecksumError
        self._errors = (ClientError, BotoCoreError)
        self._cors: tuple[float, list[dict[str, Any]]] | None = None

    def _name(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, exc: Exception, key: str, doing: str) -> Exception:
        where = f"s3://{self.bucket}/" + "/".join(p for p in (self.prefix, key) if p)
        if isinstance(exc, self._client_error):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                return NotFoundError(f"object {key} does not exist", key=key)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status >= 500 or code in ("SlowDown", "Throttling"):
                return StorageError(
                    f"cannot {doing} {where}: {code or exc}, still after {MAX_ATTEMPTS} "
                    "attempts; the store is failing or overloaded: try again later",
                    key=key,
                    transient=True,
                )
            return StorageError(f"cannot {doing} {where}: {code or exc}", key=key)
        if isinstance(exc, self._checksum_error):
            return IntegrityError(
                f"{where} arrived damaged {BODY_TRIES} times in a row ({exc}); the store or "
                "the network alters data: check it, then try again"
            )
        return StorageError(
            f"cannot {doing} {where}: {exc}; the store could not be reached or broke off, "
            "still after retries: check that it is up, then try again",
            key=key,
            transient=True,
        )

    def _read(self, key: str, **extra: str) -> bytes:
        """GET ``key`` (``extra``: a Range) and read its body. A body that breaks off, stalls
        or fails its checksum is fetched again, ``BODY_TRIES`` times in all: botocore retries
        only until the headers."""
        for attempt in range(1, BODY_TRIES + 1):
            response = self._s3.get_object(Bucket=self.bucket, Key=self._name(key), **extra)
            body: Any = response["Body"]
            try:
                return bytes(body.read())
            except self._transport_error:
                body.close()
                if attempt == BODY_TRIES:
                    raise
        raise AssertionError("unreachable")

    def put(self, key: str, parts: Sequence[Buffer]) -> int:
        name = self._name(key)
        total = sum(len(p) for p in parts)
        try:
            if total <= _MULTIPART_OVER:
                self._s3.put_object(Bucket=self.bucket, Key=name, Body=b"".join(parts))
            else:
                self._put_parts(name, b"".join(parts))
        except self._errors as exc:
            raise self._fail(exc, key, "store") from exc
        return total

    def _put_parts(self, name: str, data: bytes) -> None:
        upload = self._s3.create_multipart_upload(Bucket=self.bucket, Key=name)["UploadId"]
        try:
            done = []
            for number, start in enumerate(range(0, len(data), _PART), start=1):
                part = self._s3.upload_part(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload,
                    PartNumber=number,
                    Body=data[start : start + _PART],
                )
                done.append({"PartNumber": number, "ETag": part["ETag"]})
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=name, UploadId=upload, MultipartUpload={"Parts": done}
            )
        except BaseException:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload)
            raise

    def put_file(self, key: str, path: str) -> int:
        import os

        try:
            self._s3.upload_file(path, self.bucket, self._name(key))  # multipart when large
        except self._errors as exc:
            raise self._fail(exc, key, "store") from exc
        return os.path.getsize(path)

    def copy(self, src: str, dst: str) -> int:
        """A server-side CopyObject: the bytes never leave the store."""
        try:
            self._s3.copy_object(
                Bucket=self.bucket,
                Key=self._name(dst),
                CopySource={"Bucket": self.bucket, "Key": self._name(src)},
            )
        except self._errors as exc:
            raise self._fail(exc, src, "copy") from exc
        return self.size(dst)

    def presign(
        self, key: str, method: str, seconds: int, *, create_only: bool = False
    ) -> str | None:
        operation = {"GET": "get_object", "HEAD": "head_object", "PUT": "put_object"}[method]
        params = {"Bucket": self.bucket, "Key": self._name(key)}
        if create_only and method == "PUT":
            params["IfNoneMatch"] = "*"  # a signed header: a PUT without it is refused
        url: str = self._s3.generate_presigned_url(operation, Params=params, ExpiresIn=seconds)
        return url

    def browser_may(self, origin: str, method: str) -> bool:
        """From the bucket's CORS rules, read at most once a minute."""
        now = time.monotonic()
        if self._cors is None or now - self._cors[0] > 60:
            try:
                rules = self._s3.get_bucket_cors(Bucket=self.bucket).get("CORSRules", [])
            except self._errors:
                rules = []  # none set (or not readable): browsers are refused
            self._cors = (now, rules)
        return any(
            method in rule.get("AllowedMethods", [])
            and any(o in ("*", origin) for o in rule.get("AllowedOrigins", []))
            for rule in self._cors[1]
        )

    def get(self, key: str) -> bytes:
        try:
            return self._read(key)
        except self._errors as exc:
            raise self._fail(exc, key, "read") from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            self.size(key)
            return b""
        try:
            return self._read(key, Range=f"bytes={offset}-{offset + length - 1}")
        except self._client_error as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                self.size(key)  # past the end of an existing object: nothing to read
                return b""
            raise self._fail(exc, key, "read") from exc
        except self._errors as exc:
            raise self._fail(exc, key, "read") from exc

    def size(self, key: str) -> int:
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=self._name(key))
        except self._errors as exc:
            raise self._fail(exc, key, "look up") from exc
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=self._name(key))
        except self._errors as exc:
            raise self._fail(exc, key, "delete") from exc

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base + prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(
                        str(obj["Key"])[len(base) :],
                        int(obj["Size"]),
                        obj["LastModified"].timestamp(),
                    )
        except self._errors as exc:
            raise self._fail(exc, prefix, "list") from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """A PUT with ``If-None-Match: *`` (AWS, MinIO, SeaweedFS, moto answer 412 when the
        key exists). A store that ignores the header is caught by reading the object back:
        of two racing writers only the one whose bytes are there has won. So is a retry
        refused because the attempt before it stored the object but lost its answer."""
        if self.exists(key):
            return False
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self._name(key), Body=data, IfNoneMatch="*")
            return self.get(key) == data
        except self._client_error as exc:
            meta = exc.response.get("ResponseMetadata", {})
            if meta.get("HTTPStatusCode", 0) in (409, 412):  # exists, or a concurrent PUT
                return bool(meta.get("RetryAttempts")) and self.get(key) == data
            raise self._fail(exc, key, "store") from exc
        except self._errors as exc:
            raise self._fail(exc, key, "store") from exc
