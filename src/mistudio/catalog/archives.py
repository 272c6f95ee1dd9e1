"""Safe unpacking of uploaded SAE archives (.zip, .tar, .tar.gz): no entry may escape the target folder,
no links, and the unpacked size is capped."""

from __future__ import annotations

import lzma
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Protocol

from mistudio.errors import InvalidInputError
from mistudio.fsutil import safe_join

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def is_archive(path: Path) -> bool:
    """True if `path` names a supported archive file."""
    name = path.name.lower()
    return path.is_file() and name.endswith(ARCHIVE_SUFFIXES)


def _add_size(total: int, size: int, archive: Path, max_bytes: int) -> int:
    """Running unpacked size; refuses archives that unpack to more than `max_bytes`."""
    total += size
    if total > max_bytes:
        raise InvalidInputError(f"{archive.name} unpacks to more than {max_bytes} bytes "
                                "(MISTUDIO_MAX_IMPORT_BYTES); raise the limit or import fewer files")
    return total


def _check_member(name: str, dest: Path) -> Path:
    if name.startswith(("/", "\\")) or ".." in Path(name).parts or ":" in Path(name).parts[0]:
        raise InvalidInputError(f"archive entry {name!r} escapes the target folder; the archive was rejected")
    try:
        return safe_join(dest, name)
    except InvalidInputError:
        raise InvalidInputError(f"archive entry {name!r} escapes the target folder; the archive was rejected") from None


class _Source(Protocol):
    """A member's content stream."""

    def read(self, n: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


def _write_member(name: str, target: Path, source: _Source) -> None:
    """Copy one member's content to `target`; a name clashing with another entry is refused."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
    except (FileExistsError, IsADirectoryError, NotADirectoryError):
        raise InvalidInputError(f"archive entry {name!r} clashes with another entry of the same name; "
                                "the archive was rejected") from None
    finally:
        source.close()


def _unpack_zip(archive: Path, dest: Path, max_bytes: int) -> None:
    total = 0
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InvalidInputError(f"{archive.name} is not a readable zip archive ({exc})") from None
    with zf:
        for info in zf.infolist():
            target = _check_member(info.filename, dest)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise InvalidInputError(f"archive entry {info.filename!r} is a symbolic link; links are not allowed")
            total = _add_size(total, info.file_size, archive, max_bytes)
            if info.is_dir():
                try:
                    target.mkdir(parents=True, exist_ok=True)
                except (FileExistsError, NotADirectoryError):
                    raise InvalidInputError(f"archive entry {info.filename!r} clashes with a file of the same "
                                            "name; the archive was rejected") from None
                continue
            _write_member(info.filename, target, zf.open(info))  # zipfile stops at the declared size


def _unpack_tar(archive: Path, dest: Path, max_bytes: int) -> None:
    total = 0
    try:
        tf = tarfile.open(archive)  # noqa: SIM115 - closed by the with block below
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise InvalidInputError(f"{archive.name} is not a readable tar archive ({exc})") from None
    with tf:
        for member in tf:
            target = _check_member(member.name, dest)
            if member.issym() or member.islnk() or member.isdev():
                raise InvalidInputError(f"archive entry {member.name!r} is a link or device; not allowed")
            total = _add_size(total, member.size, archive, max_bytes)
            if member.isdir():
                try:
                    target.mkdir(parents=True, exist_ok=True)
                except (FileExistsError, NotADirectoryError):
                    raise InvalidInputError(f"archive entry {member.name!r} clashes with a file of the same "
                                            "name; the archive was rejected") from None
            elif member.isfile():
                content = tf.extractfile(member)
                if content is not None:  # only links and special members have no content; refused above
                    _write_member(member.name, target, content)


def unpack_archive(archive: Path, dest: Path, max_bytes: int) -> None:
    """Unpack `archive` into `dest`, refusing escaping entries, links, clashing names and more than `max_bytes` of
    content; a damaged archive is refused as such (what was unpacked so far stays in `dest` for the caller to
    remove).

    Raises:
        InvalidInputError: the archive is unreadable, damaged, too large, or has an entry that is not allowed.
    """
    dest.mkdir(parents=True, exist_ok=True)
    unpack = _unpack_zip if archive.name.lower().endswith(".zip") else _unpack_tar
    try:
        unpack(archive, dest, max_bytes)
    except InvalidInputError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError) as exc:  # damaged data, unsupported compression, encryption
        raise InvalidInputError(f"{archive.name} is damaged or uses an unsupported feature "
                                f"({type(exc).__name__}: {exc}); re-create the archive") from None
