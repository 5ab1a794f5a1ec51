"""Writing outputs: atomic, following the umask, and failing with one line that names the path.

- `atomic_path` / `write_json_atomic`: a reader (or an interrupted run) never sees a half-written file.
- `make_temp_dir`: a staging folder beside a target, with the permissions a plain `mkdir` would give it.
- `sha256_file`: the checksum every manifest and record uses.

`tempfile.mkstemp`/`mkdtemp` create 0600 files and 0700 folders whatever the umask; on a shared machine that would
hide runs and exports from the rest of the team, so everything made here is chmod-ed to what the umask allows.
"""

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
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


def cannot_write(path: str | Path, error: OSError) -> UserError:
    """The one-line error for a write that failed (disk full, no permission, read-only file system …)."""
    return UserError(f"cannot write {path}: {error.strerror or error}")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds.

    An `OSError` while writing becomes a `UserError` naming `target`; `target` itself is then left as it was.
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
        raise cannot_write(target, error) from None
    finally:
        if temp_path is not None:
            temp_path.unlink(missing_ok=True)


def write_json_atomic(target: str | Path, data) -> None:
    with atomic_path(target) as temp:
        temp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def make_temp_dir(parent: str | Path, prefix: str) -> Path:
    """A new, uniquely named folder in `parent` with the permissions the umask gives a plain `mkdir`."""
    try:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        path.chmod(0o777 & ~current_umask())
    except OSError as error:
        raise cannot_write(Path(parent) / f"{prefix}…", error) from None
    return path


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            while chunk := file.read(_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    return digest.hexdigest()
