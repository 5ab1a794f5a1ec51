"""One writer per output: a run directory or an export target is held by one process at a time.

`hold(target, what)` takes an exclusive lock on the hidden file `.<name>.lock` beside `target` (beside, not inside,
so that `--fresh` or an export's swap can replace the whole of `target`). A second process is refused at once with
a `UserError` naming the holder, which writes its host, pid, start time and command into `.<name>.lock.json`.

The lock is the operating system's (`filelock`: flock on Unix), so it dies with its process: a holder killed with
SIGKILL or a crashed machine's (after the file server's lease time, on NFS) does not block the next run, and the
left-over holder file is simply overwritten by the next holder.
"""

import contextlib
import json
import os
import socket
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from cifar_synth.errors import UserError
from cifar_synth.files import cannot_write, write_json_atomic


def lock_paths(target: str | Path) -> tuple[Path, Path]:
    """The lock file and the holder file of `target`."""
    target = Path(target)
    lock = target.parent / f".{target.name}.lock"
    return lock, lock.with_name(lock.name + ".json")


@contextlib.contextmanager
def hold(target: str | Path, what: str = "run directory") -> Iterator[None]:
    """Hold `target` for the duration of the block, or raise `UserError` naming the process that holds it."""
    lock_file, holder_file = lock_paths(target)
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_file, timeout=0)
        lock.acquire()
    except Timeout:
        raise UserError(f"{what} {target} is in use by {_describe_holder(holder_file)}; wait for it to finish "
                        "or stop it (a crashed holder releases the lock by itself)") from None
    except OSError as error:
        raise cannot_write(lock_file, error) from None
    try:
        write_json_atomic(holder_file, {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
        })
        yield
    finally:
        holder_file.unlink(missing_ok=True)
        lock.release()


def _describe_holder(holder_file: Path) -> str:
    try:
        holder = json.loads(holder_file.read_text())
        return (f"process {holder['pid']} on host {holder['host']} (since {holder['since']}: "
                f"{holder['command']})")
    except (OSError, ValueError, KeyError, TypeError):
        # The holder has just taken the lock and not yet written the file (or cannot write it).
        return "another process (its host and pid are not recorded yet)"
