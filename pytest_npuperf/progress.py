"""How far a long perf run has come, and about how long the rest will take.

Tests are grouped by file (each file is one kind of test, with its own typical duration): the
estimate of what is left is, per file, the mean duration of its finished tests times the tests
still pending, with the run's mean for a file none of whose tests has finished yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

# Without -v on an accelerator, one progress line a minute.
PROGRESS_EVERY_S = 60.0


def duration_text(seconds: float) -> str:
    """'1m02s', '45s'."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def file_of(nodeid: str) -> str:
    """'perf_tests/test_serving.py' of a node id: the estimate groups tests by file."""
    return nodeid.split("::", 1)[0]


class Progress:
    """Counts finished perf tests and estimates the time left; ``every_s`` 0 says so after each."""

    def __init__(self, nodeids: Sequence[str], now: float, every_s: float = 0.0) -> None:
        self.total = len(nodeids)
        self.pending: List[str] = [file_of(n) for n in nodeids]  # the file of each test not yet reported
        self.durations: Dict[str, List[float]] = {}  # per test file: seconds of each finished test
        self.kinds: Dict[str, str] = {}  # test file -> kind of test, once one has finished
        self.started = self.last_line = now
        self.last_done = 0.0
        self.done = 0
        self.every_s = every_s

    def finished(self, nodeid: str, kind: str, test_name: str, runs: int, status: str, now: float) -> Optional[str]:
        """Record a finished test; the progress line when one is due, else None."""
        key = file_of(nodeid)
        if key in self.pending:
            self.pending.remove(key)
        self.durations.setdefault(key, []).append(now - (self.last_done or self.started))
        self.kinds.setdefault(key, kind)
        self.last_done = now
        self.done += 1
        if now - self.last_line >= self.every_s or not self.pending:
            self.last_line = now
            return self.line(test_name, runs, status, now)
        return None

    def line(self, test_name: str, runs: int, status: str, now: float) -> str:
        """'npuperf [12/80] fp16-bs8-zh_qa: 5 runs, OK; elapsed 1m02s, about 5m10s left
        (generation: 40 left, about 4m00s; serving: 8 left, about 1m10s)'."""
        all_done = [d for ds in self.durations.values() for d in ds]
        overall = sum(all_done) / len(all_done)
        left: Dict[str, List[float]] = {}
        for key in self.pending:  # a file none of whose tests has finished: the run's mean so far
            ds = self.durations.get(key) or [overall]
            left.setdefault(self.kinds.get(key, Path(key).name), []).append(sum(ds) / len(ds))
        per_kind = "; ".join(f"{kind}: {len(t)} left, about {duration_text(sum(t))}" for kind, t in left.items())
        return (f"npuperf [{self.done}/{self.total}] {test_name}: {runs} runs, {status}; "
                f"elapsed {duration_text(now - self.started)}, about {duration_text(sum(sum(t) for t in left.values()))} left"
                + (f" ({per_kind})" if per_kind else ""))


def progress_for(reporter: Any, verbose: bool, device_kind: Optional[str]) -> Optional[float]:
    """How often to say how far the run is: after each test with -v (0), every minute on an
    accelerator without it, never (None) on a CPU or without a terminal."""
    if reporter is None:
        return None
    if verbose:
        return 0.0
    return PROGRESS_EVERY_S if device_kind not in (None, "cpu") else None
