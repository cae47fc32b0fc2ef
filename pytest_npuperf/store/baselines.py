"""The baseline store: ``<dir>/<device profile>/<model>.json``, one entry per test id.

Files are JSON with sorted keys, indent 2 and a trailing newline, so that a baseline update
is a reviewable diff. Writes are atomic (temporary file + ``os.replace``) and serialized by a
lock file; saving some tests merges into the file and never drops the others; fields this
version does not know are kept as they are. A file that cannot be read is reported with its
path and the problem and is never overwritten.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import BaselineError
from ..judge.drift import RESET_KEY
from ..judge.metrics import METRICS
from ..judge.result import Result, Sample, Workload, values_by_process
from ..stack.changes import HOOK_FIELDS, STACK_KEYS
from .files import atomic_write_json, locked, safe_component

# Entry key: the offered load of a serving test (load, capacity_rps, rate_rps, measured), frozen
# when its first baseline on a profile is recorded.
SERVING_LOAD_KEY = "serving_load"

SCHEMA_VERSION = 1


def model_key(model: str) -> str:
    """'tiny', 'mistral-7b', or the folder name of a local checkpoint."""
    return model if "/" not in model and os.sep not in model else Path(model).name or "checkpoint"


class BaselineEntry:
    """A stored baseline of one test."""

    def __init__(self, test_id: str, data: Mapping[str, Any], path: Path) -> None:
        self.test_id = test_id
        self.raw = dict(data)
        try:
            self.workload = Workload.from_dict(data["workload"])
            self.samples = [Sample.from_dict(s) for s in data["samples"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise BaselineError(
                f"{path}: entry {test_id!r} is malformed ({type(exc).__name__}: {exc}); "
                "fix or delete that entry and record it again with --npuperf-save-baseline"
            ) from None
        self.stack: Dict[str, Any] = dict(data.get("stack", {}))
        self.recorded_at: str = str(data.get("recorded_at", ""))
        self.reason: str = str(data.get("reason", ""))
        # Between-process noise per metric (relative CV), when it was measured.
        # Earlier baselines of this test, oldest first: {recorded_at, reason, stack, medians, ...}.
        self.history: List[Dict[str, Any]] = [h for h in data.get("history", []) if isinstance(h, dict)]
        self.drift_reset = bool(data.get(RESET_KEY))
        load = data.get(SERVING_LOAD_KEY)
        # A serving test's offered load, as measured when its first baseline was recorded.
        self.serving_load: Optional[Dict[str, Any]] = dict(load) if isinstance(load, dict) else None
        self.noise_cv: Dict[str, float] = {
            k: float(v) for k, v in dict(data.get("noise_cv", {})).items()
        }

    def values(self, metric: str) -> List[float]:
        out = [s.metric(metric) for s in self.samples]
        return [v for v in out if v is not None]

    def values_by_process(self, metric: str) -> List[List[float]]:
        return values_by_process(self.samples, metric)


class BaselineStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, profile: str, model: str) -> Path:
        return self.root / safe_component(profile) / f"{safe_component(model_key(model))}.json"

    def read_file(self, path: Path) -> Dict[str, Any]:
        """The raw document of one baseline file (an empty one if it does not exist)."""
        if not path.exists():
            return {"schema_version": SCHEMA_VERSION, "entries": {}}
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BaselineError(
                f"baseline file {path} cannot be read: {exc}. It was left untouched; repair it "
                "(e.g. 'git checkout -- <file>'), or record anew with --npuperf-force, which keeps "
                "the broken file beside it"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
            raise BaselineError(
                f"baseline file {path} is not a pytest-npuperf baseline (no 'entries' object). "
                "It was left untouched; restore it from version control, or record anew with "
                "--npuperf-force, which keeps the broken file beside it"
            )
        version = data.get("schema_version", 1)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise BaselineError(
                f"baseline file {path} has schema_version {version!r}, newer than this "
                f"pytest-npuperf understands ({SCHEMA_VERSION}); upgrade pytest-npuperf"
            )
        return data

    def other_profiles(self, profile: str, model: str) -> List[str]:
        """The folders of other device profiles that hold baselines of ``model`` (a renamed device,
        or baselines recorded elsewhere, leave this run without any)."""
        name = self.path_for(profile, model).name
        mine = self.path_for(profile, model).parent
        return sorted(p.parent.name for p in self.root.glob(f"*/{name}") if p.parent != mine)

    def load(self, profile: str, model: str) -> Dict[str, BaselineEntry]:
        path = self.path_for(profile, model)
        data = self.read_file(path)
        return {tid: BaselineEntry(tid, entry, path) for tid, entry in data["entries"].items()}

    def save(
        self,
        profile: str,
        model: str,
        results: List[Result],
        reason: str = "",
        noise_cv: Optional[Mapping[str, Mapping[str, float]]] = None,
        lock_timeout_s: float = 60.0,
        force: bool = False,
        reset_drift: bool = False,
    ) -> Path:
        """Merge ``results`` into the profile's file; other entries stay as they are.

        A file that cannot be read is an error; with ``force`` it is moved aside (kept as
        ``<name>.corrupt-<time>``) and a new file is started.
        """
        path = self.path_for(profile, model)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BaselineError(
                f"cannot create baseline directory {path.parent}: {exc}; choose a writable "
                "--npuperf-baseline-dir"
            ) from None
        with locked(path.parent, lock_timeout_s):
            try:
                data = self.read_file(path)
            except BaselineError:
                if not force:
                    raise
                aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
                os.replace(path, aside)
                data = {"schema_version": SCHEMA_VERSION, "entries": {}}
            data["schema_version"] = SCHEMA_VERSION
            data["profile"] = profile
            data["model"] = model_key(model)
            for result in results:
                old = data["entries"].get(result.test_id, {})
                entry = dict(old) if isinstance(old, dict) else {}
                if entry.get("samples"):
                    entry["history"] = list(entry.get("history", [])) + [history_item(entry)]
                entry.update(
                    {
                        "workload": result.workload.to_dict(),
                        "samples": [s.to_dict() for s in result.samples],
                        "stack": result.stack,
                        "recorded_at": result.timestamp,
                        "reason": reason,
                    }
                )
                if "calibration" in result.extra:
                    entry["calibration"] = result.extra["calibration"]
                if SERVING_LOAD_KEY in result.extra:  # the offered load frozen at the first recording
                    entry[SERVING_LOAD_KEY] = result.extra[SERVING_LOAD_KEY]
                else:
                    entry.pop(SERVING_LOAD_KEY, None)
                if reset_drift:
                    entry[RESET_KEY] = True  # the drift check starts here (a drift the team accepted)
                else:
                    entry.pop(RESET_KEY, None)
                if noise_cv and result.test_id in noise_cv:
                    entry["noise_cv"] = dict(noise_cv[result.test_id])
                else:
                    entry.pop("noise_cv", None)
                data["entries"][result.test_id] = entry
            atomic_write_json(path, data)
        return path


def entry_medians(entry: Mapping[str, Any]) -> Tuple[Dict[str, float], int]:
    """Per metric, the median of a stored entry's samples; and how many samples it holds."""
    samples = [s for s in entry.get("samples", []) if isinstance(s, dict)]
    medians = {}
    for name in METRICS:
        values = [s[name] for s in samples if isinstance(s.get(name), (int, float))]
        if values:
            medians[name] = statistics.median(values)
    return medians, len(samples)


def history_item(entry: Mapping[str, Any]) -> Dict[str, Any]:
    """What is kept of a replaced baseline: medians, stack, when and why (not the raw samples)."""
    medians, n = entry_medians(entry)
    stack = dict(entry.get("stack", {}))
    kept = {k: stack.get(k) for k in STACK_KEYS}
    if stack.get(HOOK_FIELDS):  # a team's own facts: what the history shows changing with them
        kept[HOOK_FIELDS] = stack[HOOK_FIELDS]
    return {
        "recorded_at": entry.get("recorded_at", ""),
        "reason": entry.get("reason", ""),
        "stack": kept,
        "workload": entry.get("workload", {}),
        "medians": medians,
        "n": n,
        **({RESET_KEY: True} if entry.get(RESET_KEY) else {}),
    }
