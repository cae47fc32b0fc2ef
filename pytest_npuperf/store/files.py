"""Files the store writes: safe names, atomic JSON writes, and the lock that serializes writers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from ..errors import BaselineError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_component(name: str, max_len: int = 80) -> str:
    """A file-name-safe version of ``name``: never empty, never '.', '..' or hidden.

    When characters had to be replaced or the name cut, a short hash of the original is
    appended so that two different names never share a file.
    """
    cleaned = _SAFE.sub("-", name).strip("-.") or "unnamed"
    if cleaned != name or len(cleaned) > max_len:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        cleaned = f"{cleaned[: max_len - 9]}-{digest}"
    return cleaned


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON next to ``path`` and rename over it: readers see old or new, never half."""
    text = json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(folder: Path, timeout_s: float) -> Iterator[None]:
    """An exclusive advisory lock (fcntl) on the profile's folder while a file is rewritten.

    Locking the folder itself leaves no lock file behind in the reviewed baselines.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: atomic replace still protects readers
        yield
        return
    fd = os.open(str(folder), os.O_RDONLY)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BaselineError(
                        f"another process has held the lock on {folder} for more than {timeout_s:.0f}s; "
                        "wait for the other baseline save to finish and run again"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
