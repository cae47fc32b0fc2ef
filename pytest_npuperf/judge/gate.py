"""The budget rule: a change with a confidence bound that counts the process as the unit of noise,
decided against the metric's regression budget (docs/regression-rule.md).

Pure functions over samples grouped by the process that took them. A nightly run is a new
process, and the samples of one process share its shift (clocks, placement, neighbours), so they
are not independent evidence about the next one. For one timing metric:

1. each process contributes the median of its samples; values are taken on the log scale and
   signed so that positive means worse (slower, or fewer tokens/s);
2. the change is the difference of the two sides' mean log process medians;
3. its standard error comes from the spread of the process medians, pooled over both sides and,
   where the baseline store holds several recorded processes of other tests, over the run's
   tests too (unless this test is clearly noisier than the rest: then its own spread); never
   smaller than what the spread within the processes alone implies;
4. one-sided bounds at ``level`` (Student's t on the pooled degrees of freedom):
   REGRESSED when even the lower bound is beyond the budget, IMPROVED when even the upper bound
   is below the budget's mirror, OK when the upper bound is inside the budget (DRIFT when the
   lower bound is above zero too), and otherwise UNDECIDED: more samples, or at the cap
   INCONCLUSIVE, naming the smallest regression the run could have resolved.

The budget is the largest change the team accepts; noise never widens it. A noisy run is not
turned into a pass: it stays undecided.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import List, Optional, Sequence

from .stats import DRIFT, IMPROVED, INCONCLUSIVE, OK, REGRESSED, UNDECIDED

# Standard normal quantile of 80% power: the smallest resolvable regression is the one this run
# would catch four times in five.
Z_POWER = 0.8416
# Degrees of freedom credited to a between-process CV stored with an older baseline whose samples
# carry no process tags (recorded in 3 processes by default).
NOISE_CV_DF = 2.0
# A test is 'clearly noisier than the run' when its own between-process variance exceeds the
# run's pooled one at this one-sided F-test level; then its own estimate (and its few degrees of
# freedom) is used instead of the pool.
HETEROGENEITY_LEVEL = 0.99


@dataclass(frozen=True)
class NoisePrior:
    """Between-process variance of log process medians measured elsewhere, with its degrees of
    freedom: the noise pooled over the stored baselines (this test's among them), or the CV stored
    with an older baseline whose samples carry no process tags."""

    variance: float
    df: float
    source: str


@dataclass(frozen=True)
class Caps:
    """How far a test may sample before its verdict is final: runs per process, processes."""

    runs: int
    processes: int


@dataclass(frozen=True)
class Estimate:
    """The change of one metric, worse-positive, with its one-sided bounds at ``level``."""

    change: float  # relative change in the worse direction: +0.05 = 5% worse
    low: float  # lower bound of the worse-direction change
    high: float  # upper bound: 'at most this much worse'
    level: float
    se_log: float  # standard error of the log change
    df: float  # degrees of freedom of the noise estimate (inf: within-process noise only)
    processes: int  # processes on the current side
    baseline_processes: int
    noise_source: str
    between_var: float  # the between-process variance used (0 when none was estimated)
    within_var: float  # variance of one process median from the spread inside the processes
    # The same, averaged over each side's processes alone (within_var averages over both).
    within_current: float = 0.0
    within_baseline: float = 0.0

    def text(self, name: str) -> str:
        """'tpot_s +0.4%, at most +2.1% (95%)'."""
        return f"{name} {self.change * 100:+.1f}%, at most {self.high * 100:+.1f}% ({self.level:.0%})"


def quantile(level: float, df: float) -> float:
    """One-sided quantile of Student's t (normal for infinite df)."""
    from scipy.stats import norm, t  # heavy import, only when a decision is made

    return float(norm.ppf(level) if math.isinf(df) else t.ppf(level, df))


def _f_quantile(level: float, df1: float, df2: float) -> float:
    from scipy.stats import f

    return float(f.ppf(level, df1, df2))


def median_variance(logs: Sequence[float]) -> float:
    """Variance of the median of ``logs``: (pi / 2) x (1.4826 MAD)^2 / n (0 for one value)."""
    if len(logs) < 2:
        return 0.0
    m = statistics.median(logs)
    sd = 1.4826 * statistics.median(abs(x - m) for x in logs)
    if sd == 0:
        sd = statistics.stdev(logs)  # half the values tie (a coarse timer): the plain spread
    return math.pi / 2 * sd * sd / len(logs)


def log_medians(groups: Sequence[Sequence[float]], higher_is_better: bool) -> List[float]:
    """The worse-positive log median of each process."""
    sign = -1.0 if higher_is_better else 1.0
    return [sign * math.log(statistics.median(g)) for g in groups if g]


def spread(medians: Sequence[float]) -> float:
    """Sum of squared deviations from the mean."""
    if len(medians) < 2:
        return 0.0
    mean = statistics.fmean(medians)
    return sum((v - mean) ** 2 for v in medians)


def estimate(
    current: Sequence[Sequence[float]],
    baseline: Sequence[Sequence[float]],
    higher_is_better: bool,
    level: float = 0.95,
    prior: Optional[NoisePrior] = None,
) -> Estimate:
    """The worse-direction change of ``current`` against ``baseline``, both a list of samples per
    process (values > 0), with one-sided bounds at ``level``."""
    cur = [list(g) for g in current if g]
    base = [list(g) for g in baseline if g]
    if not cur or not base:
        raise ValueError("both sides need at least one process with samples")
    for side in (cur, base):
        for group in side:
            if not all(math.isfinite(v) and v > 0 for v in group):
                raise ValueError(f"samples must be finite and positive, got {group}")
    sign = -1.0 if higher_is_better else 1.0
    x, y = log_medians(cur, higher_is_better), log_medians(base, higher_is_better)
    delta = statistics.fmean(x) - statistics.fmean(y)
    within_cur = [median_variance([sign * math.log(v) for v in g]) for g in cur]
    within_base = [median_variance([sign * math.log(v) for v in g]) for g in base]
    within = statistics.fmean(within_cur + within_base)
    ss, df_own = spread(x) + spread(y), float(len(x) - 1 + len(y) - 1)
    own = ss / df_own if df_own > 0 else None
    if prior is not None and prior.df > 0 and prior.variance > 0:
        if own is not None and own > prior.variance * _f_quantile(HETEROGENEITY_LEVEL, df_own, prior.df):
            between, df, source = own, df_own, "this test's processes (noisier than the run's other tests)"
        else:
            # The prior already holds the baseline's processes (it is pooled over the stored
            # baselines), so only the current side's spread joins it.
            between = (spread(x) + prior.variance * prior.df) / (len(x) - 1 + prior.df)
            df, source = len(x) - 1 + prior.df, prior.source
    elif own is not None:
        between, df, source = own, df_own, "this test's processes"
    else:
        between, df, source = 0.0, math.inf, "within one process only (no between-process noise measured)"
    var = max(between, within)
    se = math.sqrt(var * (1 / len(x) + 1 / len(y)))
    q = quantile(level, df)
    return Estimate(
        change=math.expm1(delta), low=math.expm1(delta - q * se), high=math.expm1(delta + q * se), level=level,
        se_log=se, df=df, processes=len(x), baseline_processes=len(y), noise_source=source,
        between_var=between, within_var=within, within_current=statistics.fmean(within_cur),
        within_baseline=statistics.fmean(within_base),
    )


def decide(est: Estimate, budget: float) -> str:
    """REGRESSED, IMPROVED, DRIFT, OK or UNDECIDED for a worse-direction change and its budget."""
    if est.low > budget:
        return REGRESSED
    if est.high < -budget / (1 + budget):  # the budget's mirror on the log scale
        return IMPROVED
    if est.high <= budget:
        return DRIFT if est.low > 0 else OK
    return UNDECIDED


def final(status: str) -> str:
    """The verdict of a run that takes no more samples: undecided becomes INCONCLUSIVE."""
    return INCONCLUSIVE if status == UNDECIDED else status


def resolvable(est: Estimate, budget: float) -> float:
    """The smallest regression this run tells from the budget with 80% power: the budget plus
    (t + z) standard errors, on the log scale."""
    return math.expm1(math.log1p(budget) + (quantile(est.level, est.df) + Z_POWER) * est.se_log)


def processes_needed(est: Estimate, budget: float, cap: int) -> Optional[int]:
    """How many processes on the current side would, on expectation, settle the decision if the
    change and the noise stay as measured (a power calculation at 50%, the degrees of freedom
    growing with each process); None when even ``cap`` would not: sampling on is then futile.

    The plan takes the measured change as the true one, and from a few processes that change is
    as often too small as too large. A change clearly above zero (its lower bound) is therefore
    never futile: it is sized against the budget up to ``cap``, so a real slowdown that its first
    processes happened to understate is not left INCONCLUSIVE (benchmarks/power.py, 3% process
    noise, 200 trials: 10% slowdowns caught went from 94.8% to 98.5% at a cap of 6)."""
    if est.between_var <= 0:
        return est.processes  # no between-process noise known: more processes cannot be planned
    gap = abs(math.log1p(est.change) - math.log1p(budget))
    var = max(est.between_var, est.within_var)
    for k in range(est.processes, cap + 1):
        q = quantile(est.level, est.df + (k - est.processes))
        if q * math.sqrt(var * (1 / k + 1 / est.baseline_processes)) < gap:
            return k
    return cap if est.low > 0 else None


def runs_needed(est: Estimate, budget: float, runs: int, cap: int) -> int:
    """How many runs in this process would settle the decision (a power calculation on the
    within-process noise), at most ``cap``; ``runs`` when more runs cannot help, because the
    between-process noise dominates or none is left to reduce. Only this side's medians get
    tighter with more runs (their variance falls as 1/n); the baseline's stay as recorded."""
    if est.within_var <= est.between_var or est.within_current <= 0:
        return runs
    gap = abs(math.log1p(est.change) - math.log1p(budget))
    q = quantile(est.level, est.df)
    cur, base = est.processes, est.baseline_processes

    def settles(n: float) -> bool:
        # estimate()'s within: the mean over every process, this side's now from n runs
        within = (est.within_current * runs / n * cur + est.within_baseline * base) / (cur + base)
        return (q + Z_POWER) * math.sqrt(max(within, est.between_var) * (1 / cur + 1 / base)) < gap

    if not settles(math.inf):
        return runs  # the baseline's own spread (or the processes) is what is left
    for n in range(runs, cap + 1):
        if settles(n):
            return n
    return cap
