"""Atomic file writes: a reader (or an interrupted run) never sees a half-written file."""

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real suffixes last: some writers (Keras: `.keras`, `.weights.h5`) choose the format from them.
    suffixes = "".join(target.suffixes)
    base = target.name[: len(target.name) - len(suffixes)]
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{base}.tmp", suffix=suffixes)
    os.close(fd)
    temp_path = Path(temp)
    try:
        yield temp_path
        os.replace(temp_path, target)
    finally:
        temp_path.unlink(missing_ok=True)


def write_json_atomic(target: str | Path, data) -> None:
    with atomic_path(target) as temp:
        temp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
