"""Safe unpacking of uploaded SAE archives (.zip, .tar, .tar.gz): no entry may escape the target folder,
no links, and the unpacked size is capped."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

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


def unpack_archive(archive: Path, dest: Path, max_bytes: int) -> None:
    """Unpack `archive` into `dest`, refusing escaping entries, links and more than `max_bytes` of content."""
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    if archive.name.lower().endswith(".zip"):
        try:
            zf = zipfile.ZipFile(archive)
        except zipfile.BadZipFile as exc:
            raise InvalidInputError(f"{archive.name} is not a readable zip archive ({exc})") from None
        with zf:
            for info in zf.infolist():
                target = _check_member(info.filename, dest)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise InvalidInputError(f"archive entry {info.filename!r} is a symbolic link; links are not allowed")
                total = _add_size(total, info.file_size, archive, max_bytes)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
        return
    try:
        tf = tarfile.open(archive)  # noqa: SIM115 - closed by the with block below
    except tarfile.TarError as exc:
        raise InvalidInputError(f"{archive.name} is not a readable tar archive ({exc})") from None
    with tf:
        for member in tf.getmembers():
            target = _check_member(member.name, dest)
            if member.issym() or member.islnk() or member.isdev():
                raise InvalidInputError(f"archive entry {member.name!r} is a link or device; not allowed")
            total = _add_size(total, member.size, archive, max_bytes)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                content = tf.extractfile(member)
                if content is None:  # only links and special members have no content; refused above
                    continue
                with content, open(target, "wb") as out:
                    while chunk := content.read(1 << 20):
                        out.write(chunk)
