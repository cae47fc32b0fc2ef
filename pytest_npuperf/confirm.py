"""Confirmation of a regression in a fresh process (``--npuperf-confirm``).

Most false alarms on a noisy device are a shift of the whole process (clocks, placement,
neighbours). Re-running only the regressed test in a new process and failing only when it
regresses again turns one unlucky process into a pass, at the cost of one more run of that test.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

CHILD_ENV = "NPUPERF_CONFIRMING"


def in_confirmation_child() -> bool:
    return os.environ.get(CHILD_ENV) == "1"


def confirm_regression(command_prefix: List[str], nodeid: str, cwd: Path, timeout_s: float = 3600.0) -> Tuple[Optional[str], str]:
    """Run ``nodeid`` once more in a new pytest process; return (its status, a one-line account)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "confirm.json"
        cmd = [*command_prefix, f"--npuperf-results={out}", nodeid]
        env = dict(os.environ, **{CHILD_ENV: "1"})
        proc = subprocess.run(cmd, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout_s)
        if not out.exists():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            return None, f"the confirmation run wrote no results (exit {proc.returncode}): {' | '.join(tail)}"
        tests = json.loads(out.read_text(encoding="utf-8"))["tests"]
    for test in tests:
        if test["test_id"] == nodeid:
            return test["status"], f"confirmation run in a fresh process: {test['status']}"
    return None, "the confirmation run did not run this test"
