"""Writing outputs: atomic, following the umask, and failing with one line that names the path.

- `atomic_path` / `write_json_atomic`: a reader (or an interrupted run) never sees a half-written file.
- `make_temp_dir`: a staging folder beside a target, with the permissions a plain `mkdir` would give it.
- `staged_folder` / `clear_leftovers`: a folder (an export) written beside its target and swapped into place only
  when whole, so that no reader and no kill ever sees a partial one; and undoing what a killed writer left behind.
- `sha256_file`: the checksum every manifest and record uses.

`tempfile.mkstemp`/`mkdtemp` create 0600 files and 0700 folders whatever the umask; on a shared machine that would
hide runs and exports from the rest of the team, so everything made here is chmod-ed to what the umask allows.
"""

import contextlib
import ctypes
import errno
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cifar_synth.errors import UserError

_CHUNK_BYTES = 1 << 20


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (/proc), else by setting and restoring."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def cannot_write(path: str | Path, error: OSError, needed: int | None = None, written: int = 0) -> UserError:
    """The one-line error for a write that failed (disk full, no permission, read-only file system …)."""
    return UserError(f"cannot write {path}: {error.strerror or error}{full_disk_note(path, error, needed, written)}")


def full_disk_note(path: str | Path, error: OSError, needed: int | None = None, written: int = 0) -> str:
    """For a write to `path` that failed on a full disk (or quota): " (…)" saying how much is free there and, where
    known, how much the file needs (`needed` bytes) or at least how much of it had been written when the disk filled
    (`written` bytes); "" for any other failure."""
    if error.errno not in (errno.ENOSPC, errno.EDQUOT):
        return ""
    free = free_bytes(Path(path).parent)
    need = (f"it needs {human_size(needed)}" if needed else
            f"it needs more than the {human_size(written)} written when the disk filled" if written else None)
    space = ", ".join(part for part in (need, None if free is None else f"{human_size(free)} free there") if part)
    return f" ({space}{': ' if space else ''}free some space or write elsewhere)"


def free_bytes(path: str | Path) -> int | None:
    """Bytes free to an unprivileged writer on the file system of `path` (its nearest existing folder); None when
    that cannot be told."""
    path = Path(path).absolute()
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def human_size(size: int) -> str:
    """1234567 → "1.2 MB" (decimal units, as `df -H` and file managers give them)."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


@contextlib.contextmanager
def atomic_path(target: str | Path, needed: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds.

    An `OSError` while writing becomes a `UserError` naming `target` (`cannot_write`, with `needed`, the bytes the
    file needs where the caller knows them); `target` itself is then left as it was and the temporary file removed.
    """
    target = Path(target)
    # Keep the real suffixes last: some writers (Keras: `.keras`, `.weights.h5`) choose the format from them.
    suffixes = "".join(target.suffixes)
    base = target.name[: len(target.name) - len(suffixes)]
    temp_path = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{base}.tmp", suffix=suffixes)
        os.fchmod(fd, 0o666 & ~current_umask())
        os.close(fd)
        temp_path = Path(temp)
        yield temp_path
        os.replace(temp_path, target)
    except OSError as error:
        written = _remove(temp_path)  # first, so that the space it held counts as free in the message
        raise cannot_write(target, error, needed, written) from None
    finally:
        _remove(temp_path)


def _remove(path: Path | None) -> int:
    """Delete `path` if it exists; the bytes it held (0 when none, or gone)."""
    if path is None:
        return 0
    try:
        size = path.stat().st_size
        path.unlink()
    except OSError:
        return 0
    return size


def write_bytes_atomic(target: str | Path, data: bytes) -> None:
    """Write `data` to `target` atomically; on a full disk the error says how much it needed."""
    with atomic_path(target, needed=len(data)) as temp:
        temp.write_bytes(data)


def write_json_atomic(target: str | Path, data) -> None:
    write_bytes_atomic(target, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def make_temp_dir(parent: str | Path, prefix: str) -> Path:
    """A new, uniquely named folder in `parent` with the permissions the umask gives a plain `mkdir`."""
    try:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        path.chmod(0o777 & ~current_umask())
    except OSError as error:
        raise cannot_write(Path(parent) / f"{prefix}…", error) from None
    return path


def sha256_file(path: str | Path) -> str:
    return file_digest(path, "sha256")


def file_digest(path: str | Path, algorithm: str) -> str:
    """The hex digest of a file's bytes by a hashlib `algorithm` (sha256, or md5 where a publisher gives only it)."""
    digest = hashlib.new(algorithm)
    try:
        with open(path, "rb") as file:
            while chunk := file.read(_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    return digest.hexdigest()


# --- a folder replaced whole ------------------------------------------------------------------------------------------

@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield a new hidden folder beside `target` to write into; when the block succeeds it becomes `target`
    (`swap_into_place`), and on any exception, Ctrl-C included, it is deleted and `target` is left as it was.

    Hold a lock on `target` around this, and call `clear_leftovers` under it first.
    """
    staging = make_temp_dir(target.parent, _staging_prefix(target))
    try:
        yield staging
        swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def swap_into_place(staging: Path, target: Path) -> None:
    """Make the whole folder `staging` the one at `target`; at no instant is `target` partial or both folders lost.

    Where the system can exchange two directories atomically (Linux renameat2), `target` always holds one whole
    folder, and after the exchange `staging` holds the old one until it is deleted. Elsewhere the old folder is
    renamed aside first: a kill between the two renames leaves `target` missing and the old folder whole beside it,
    which `clear_leftovers` puts back.
    """
    if not target.exists():
        os.rename(staging, target)
    elif _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # the new folder is in place; `clear_leftovers` removes what stays
    else:
        aside = target.parent / (_aside_prefix(target) + staging.name[len(_staging_prefix(target)):])
        os.rename(target, aside)
        try:
            os.rename(staging, target)
        except BaseException:
            os.rename(aside, target)
            raise
        shutil.rmtree(aside, ignore_errors=True)


@dataclass(frozen=True)
class Leftovers:
    """What `clear_leftovers` found beside a target."""

    restored: bool  # the old folder, set aside by an interrupted swap, was put back at the missing target
    removed: list[tuple[Path, int]]  # (folder, bytes it held) of each staging or set-aside folder deleted
    stuck: list[Path]  # those that could not be deleted


def clear_leftovers(target: Path, complete_marker: str) -> Leftovers:
    """Undo what killed writers of `target` left beside it. Call it under `target`'s lock, so they are gone.

    A folder set aside by an interrupted swap comes back when `target` is missing and the folder holds
    `complete_marker` (the file its writer wrote last); staging folders (partial ones, or an old one swapped out but
    not yet deleted) and other set-aside folders are removed.
    """
    asides = sorted(_beside(target, _aside_prefix(target)), key=lambda path: path.stat().st_mtime)
    restored = bool(asides) and not target.exists() and (asides[-1] / complete_marker).is_file()
    if restored:
        os.rename(asides.pop(), target)
    removed, stuck = [], []
    for leftover in [*asides, *_beside(target, _staging_prefix(target))]:
        size = sum(file.stat().st_size for file in leftover.rglob("*") if file.is_file())
        shutil.rmtree(leftover, ignore_errors=True)
        if leftover.exists():
            stuck.append(leftover)
        else:
            removed.append((leftover, size))
    return Leftovers(restored, removed, stuck)


def _staging_prefix(target: Path) -> str:
    return f".{target.name}.partial-"


def _aside_prefix(target: Path) -> str:
    return f".{target.name}.old-"


def _beside(target: Path, prefix: str) -> list[Path]:
    return list(target.parent.glob(glob.escape(prefix) + "*"))


def _exchange(first: Path, second: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:  # not glibc ≥ 2.28: macOS, musl
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # a kernel or file system without the exchange
        return False
    raise OSError(code, os.strerror(code), str(second))
