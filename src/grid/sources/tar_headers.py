"""Tar headers read with bounds: tarfile reads an extended header (PAX, GNU long name) or a GNU
sparse map whole into memory, so their sizes are checked before a byte of them is read, PAX
numbers must be numbers, and a sparse map must be in order and within its member."""

from __future__ import annotations

import re
import tarfile
from typing import Any

from grid.errors import ArchiveError
from grid.sources.archive_rules import MAX_HEADER_BYTES, shown

_TAR: Any = tarfile  # its header internals, which typeshed does not describe
_BLOCK = tarfile.BLOCKSIZE
_EXTENDED = {
    tarfile.XHDTYPE: "PAX",
    tarfile.XGLTYPE: "PAX global",
    tarfile.SOLARIS_XHDTYPE: "Solaris PAX",
    tarfile.GNUTYPE_LONGNAME: "GNU long name",
    tarfile.GNUTYPE_LONGLINK: "GNU long link",
}
_MAX_EXTENDED = 16  # extended headers before one entry (each one a level of tarfile's recursion)
_INTEGER = re.compile(r"[0-9]+\Z")  # ASCII digits only: int() also takes "1_0", " 1", "١"
_INTEGER_BYTES = re.compile(rb"[0-9]+\Z")
_PAX_INTEGERS = {
    *("size", "uid", "gid", "GNU.sparse.size", "GNU.sparse.realsize", "GNU.sparse.numblocks"),
    *("GNU.sparse.offset", "GNU.sparse.numbytes", "GNU.sparse.major", "GNU.sparse.minor"),
}
_PAX_TIMES = {"mtime", "atime", "ctime"}


def invalid_field(name: str, field: str, value: object) -> ArchiveError:
    """The error for archive entry ``name`` whose header holds a bad ``field``."""
    return ArchiveError(
        f"archive entry {shown(name)} has an invalid {field} in its header ({shown(str(value))})",
        path=name,
    )


def _pax_name(member: tarfile.TarInfo, pax_headers: dict[str, str]) -> str:
    return pax_headers.get("GNU.sparse.name") or pax_headers.get("path") or member.name


def sparse_holes(member: tarfile.TarInfo, path: str) -> int:
    """The bytes of a sparse member that are holes: its size less its data. The map must be
    in order and within the size (tarfile would seek backwards, or loop, otherwise)."""
    end = data = 0
    runs: list[tuple[int, int]] = member.sparse or []  # type: ignore[assignment]  # not bytes
    for offset, numbytes in runs:
        if numbytes < 0 or offset < 0:
            raise ArchiveError(f"archive entry {shown(path)} has an invalid sparse map", path=path)
        if numbytes == 0:  # GNU tar's end marker (size, 0), and unused slots
            continue
        if offset < end or offset + numbytes > member.size:
            raise ArchiveError(
                f"archive entry {shown(path)} has an invalid sparse map (out of order, "
                "overlapping or beyond its size)",
                path=path,
            )
        end = offset + numbytes
        data += numbytes
    return member.size - data


class BoundedTarFile(tarfile.TarFile):
    """tarfile, counting the extended headers met before each entry (see ``BoundedTarInfo``)."""

    extended_count = 0
    extended_bytes = 0

    def next(self) -> tarfile.TarInfo | None:
        self.extended_count = self.extended_bytes = 0
        return super().next()


class BoundedTarInfo(tarfile.TarInfo):
    """A tar header read with bounds. tarfile reads an extended header (PAX, GNU long name)
    whole into memory, and a chain of them recursively: before one entry they may hold 16
    headers and 1 MiB, checked on the size field before a byte of them is read (as are GNU
    sparse maps). Numbers in PAX records must be numbers (tarfile makes ``size=abc`` 0, and
    ``GNU.sparse.size=abc`` a ValueError). A corrupt header after the first refuses the archive
    (tarfile would take it for the end)."""

    __slots__ = ()

    @classmethod
    def fromtarfile(cls, tar: Any) -> Any:
        at = tar.fileobj.tell()
        try:
            return super().fromtarfile(tar)
        except (_TAR.InvalidHeaderError, _TAR.TruncatedHeaderError) as exc:
            if at == 0:
                raise  # not a tar at all: tarfile.open says so
            raise ArchiveError(f"the archive is truncated or corrupt at byte {at}: {exc}") from None

    def _proc_member(self, tar: Any) -> Any:
        if self.size < 0:
            raise invalid_field(self.name, "size", self.size)
        kind = _EXTENDED.get(self.type)
        if kind is not None:
            tar.extended_count += 1
            tar.extended_bytes += self.size
            if tar.extended_bytes > MAX_HEADER_BYTES:
                raise ArchiveError(
                    f"the archive has a {kind} header of {self.size} bytes at byte "
                    f"{self.offset}: the extended headers of one entry may hold 1 MiB at most "
                    "(a header bomb?)"
                )
            if tar.extended_count > _MAX_EXTENDED:
                raise ArchiveError(
                    f"the archive has more than {_MAX_EXTENDED} extended headers before one "
                    f"entry (at byte {self.offset})"
                )
        try:
            return super()._proc_member(tar)  # type: ignore[misc]
        except UnicodeDecodeError as exc:  # tarfile decodes PAX keywords, hdrcharset as UTF-8
            raise ArchiveError(
                f"the archive has a header that is not UTF-8 at byte {self.offset}: {exc}"
            ) from None

    def _proc_sparse(self, tar: Any) -> Any:
        """tarfile's, reading at most 1 MiB of sparse map."""
        structs, isextended, origsize = self._sparse_structs  # type: ignore[attr-defined]
        del self._sparse_structs  # type: ignore[attr-defined]
        blocks = 0
        while isextended:
            blocks += 1
            if blocks * _BLOCK > MAX_HEADER_BYTES:
                raise ArchiveError(
                    f"archive entry {shown(self.name)} has a sparse map over 1 MiB "
                    "(a header bomb?)",
                    path=self.name,
                )
            buf = tar.fileobj.read(_BLOCK)
            if len(buf) < _BLOCK:
                raise ArchiveError(
                    f"the archive is truncated or corrupt at {shown(self.name)}", path=self.name
                )
            for pos in range(0, 21 * 24, 24):
                try:
                    offset = _TAR.nti(buf[pos : pos + 12])
                    numbytes = _TAR.nti(buf[pos + 12 : pos + 24])
                except ValueError:
                    break
                if offset and numbytes:
                    structs.append((offset, numbytes))
            isextended = bool(buf[504])
        self.sparse = structs
        self.offset_data = tar.fileobj.tell()
        tar.offset = self.offset_data + -(-self.size // _BLOCK) * _BLOCK
        self.size = origsize
        return self

    def _proc_gnusparse_01(self, next: Any, pax_headers: dict[str, str]) -> None:
        numbers = pax_headers["GNU.sparse.map"].split(",")
        if len(numbers) % 2 or not all(_INTEGER.match(n) for n in numbers):
            raise invalid_field(_pax_name(next, pax_headers), "GNU.sparse.map", ",".join(numbers))
        next.sparse = [(int(a), int(b)) for a, b in zip(numbers[::2], numbers[1::2], strict=True)]

    def _proc_gnusparse_10(self, next: Any, pax_headers: dict[str, str], tar: Any) -> None:
        """tarfile's, reading at most 1 MiB of map and refusing what is not a number."""
        name = _pax_name(next, pax_headers)
        buf = tar.fileobj.read(_BLOCK)
        read = len(buf)
        count: int | None = None
        numbers: list[int] = []
        while count is None or len(numbers) < count * 2:
            if b"\n" not in buf:
                more = tar.fileobj.read(_BLOCK) if read < MAX_HEADER_BYTES else b""
                if not more:
                    raise ArchiveError(
                        f"archive entry {shown(name)} has a sparse map that is truncated or "
                        "over 1 MiB",
                        path=name,
                    )
                buf += more
                read += len(more)
                continue
            number, buf = buf.split(b"\n", 1)
            if not _INTEGER_BYTES.match(number):
                raise invalid_field(name, "sparse map", number.decode("ascii", "replace"))
            if count is None:
                count = int(number)
            else:
                numbers.append(int(number))
        next.offset_data = tar.fileobj.tell()
        next.sparse = list(zip(numbers[::2], numbers[1::2], strict=True))

    def _apply_pax_info(self, pax_headers: dict[str, str], encoding: str, errors: str) -> None:
        for key, value in pax_headers.items():
            if key in _PAX_INTEGERS:
                ok = _INTEGER.match(value) is not None
            elif key in _PAX_TIMES:
                try:
                    ok = float(value) == float(value)  # NaN is not
                except ValueError:
                    ok = False
            else:
                continue
            if not ok:
                raise invalid_field(_pax_name(self, pax_headers), key, value)
        super()._apply_pax_info(pax_headers, encoding, errors)  # type: ignore[misc]
