"""This compare pass's own between-process noise, held against the baseline's (pure).

A verdict decided in a test's first process rests on the between-process noise of the baseline's
recording (the run-wide prior of gate.estimate): one process says nothing about how far the next
would land. The compare pass measures that noise itself only where undecided tests took fresh
processes. Their spread, pooled over those tests, is this pass's own estimate; when it is
clearly larger than the baseline's (an upgrade that made the device less steady, a busy host),
every verdict decided from the baseline's noise alone may be too confident, and the run says so.

Only the fresh processes count: a test takes them because its first process landed far from the
baseline, so that first process is not a fair draw of the noise. Each fresh process ran that
test alone, so the tests' spreads are independent and their degrees of freedom add up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .gate import NoisePrior, log_medians, spread
from .metrics import METRICS
from .noise import NOISE_METRICS
from .result import Result, values_by_tag

# One-sided F-test level at which this pass is 'clearly noisier' than the baseline's recording.
NOISIER_LEVEL = 0.99


@dataclass(frozen=True)
class OwnNoise:
    """One metric's between-process variance (of log process medians) in this compare pass."""

    metric: str
    variance: float
    df: int
    tests: int  # tests whose fresh processes gave it
    prior: Optional[NoisePrior]  # the baseline's, that first-process verdicts used (None: none stored)
    noisier: bool  # clearly larger than the prior (one-sided F-test at NOISIER_LEVEL)

    def as_dict(self) -> Dict[str, object]:
        """The results JSON's form: CVs as fractions, the baseline's None where it measured none."""
        return {"metric": self.metric, "cv": math.sqrt(self.variance), "df": self.df, "tests": self.tests,
                "baseline_cv": None if self.prior is None else math.sqrt(self.prior.variance),
                "baseline_df": None if self.prior is None else self.prior.df, "noisier": self.noisier}

    def text(self) -> str:
        """'tpot_s CV 6.1% (df 14, 9 test(s)) against the baseline's 2.0% (df 5)'."""
        own = f"{self.metric} CV {math.sqrt(self.variance):.1%} (df {self.df}, {self.tests} test(s))"
        if self.prior is None:
            return own + ", the baseline's not known"
        return own + f" against the baseline's {math.sqrt(self.prior.variance):.1%} (df {self.prior.df:g})"


def pooled(results: Iterable[Result]) -> Dict[str, Tuple[float, int, int]]:
    """Per gated timing metric: (sum of squares, degrees of freedom, tests) of the log process
    medians of every test's fresh processes (process tags above the first), where there are two
    or more."""
    out: Dict[str, Tuple[float, int, int]] = {}
    for result in results:
        for name in NOISE_METRICS:
            metric = METRICS[name]
            if not metric.statistical:
                continue
            groups = [g for tag, g in sorted(values_by_tag(result.samples, name).items()) if tag > 0]
            if len(groups) < 2 or any(v <= 0 or not math.isfinite(v) for g in groups for v in g):
                continue
            ss, df, tests = out.get(name, (0.0, 0, 0))
            out[name] = (ss + spread(log_medians(groups, metric.higher_is_better)), df + len(groups) - 1, tests + 1)
    return out


def check(results: Iterable[Result], priors: Mapping[str, NoisePrior], level: float = NOISIER_LEVEL) -> List[OwnNoise]:
    """This pass's own noise for every metric it measured, tested against the baseline's where
    the baseline's recording measured it too."""
    from scipy.stats import f  # heavy import, only when there is something to test

    out = []
    for name, (ss, df, tests) in sorted(pooled(results).items()):
        prior: Optional[NoisePrior] = priors.get(name)
        if prior is not None and (prior.df <= 0 or prior.variance <= 0):
            prior = None
        variance = ss / df
        noisier = prior is not None and variance > prior.variance * float(f.ppf(level, df, prior.df))
        out.append(OwnNoise(name, variance, df, tests, prior, noisier))
    return out


def summary_lines(checks: Sequence[OwnNoise], first_process_verdicts: Sequence[str]) -> List[str]:
    """The terminal summary's lines: what this pass's own noise ruled out, or that it measured none.
    ``first_process_verdicts``: the tests decided in their first process (short ids).

    A report, not a failure: the check fires in 1.3% of compare passes as steady as their
    baseline, and catches 30% of passes three times noisier (benchmarks/own_noise.py), too weak
    and too often wrong to fail a nightly run on its word."""
    if not checks:
        return ["npuperf: this compare pass measured no between-process noise of its own (no test took two fresh "
                "processes); its verdicts rest on the noise the baseline's recording processes showed"]
    noisier = [c for c in checks if c.noisier]
    if not any(c.prior is not None for c in checks):
        return ["npuperf: this compare pass's own process noise: " + "; ".join(c.text() for c in checks)
                + " (the baseline's recording measured no between-process noise to hold it against)"]
    if not noisier:
        return [f"npuperf: this compare pass's own process noise is consistent with the baseline's (F test, "
                f"{NOISIER_LEVEL:.0%}): " + "; ".join(c.text() for c in checks)]
    lines = [f"npuperf: NOISE needs attention: this compare pass's fresh processes scattered more than the baseline's "
             f"recording processes (F test, {NOISIER_LEVEL:.0%}): " + "; ".join(c.text() for c in noisier)]
    if first_process_verdicts:
        lines.append(f"npuperf: {len(first_process_verdicts)} test(s) decided in their first process used the "
                     "baseline's smaller noise and may be too confident: " + ", ".join(first_process_verdicts)
                     + " (a device made less steady by the upgrade, or a busy host; more processes per test: "
                     "--npuperf-max-processes)")
    return lines
