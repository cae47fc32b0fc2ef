"""Frozen, validated settings built from command line, ini file and defaults.

Every value is checked here, once, and a bad one raises :class:`SettingsError` naming where
it came from, what was wrong and what is accepted. The plugin turns that into a pytest usage
error. Precedence: marker (per test, see :func:`marker_overrides`) > command line > ini >
default.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .attribute.stacks import StackError, load_stack_file
from .judge.metrics import METRICS
from .model.loader import ModelError, check_checkpoint
from .modes import EXECUTION_MODES

DEVICES = ("auto", "npu", "cuda", "cpu")
BUILTIN_MODELS = ("tiny", "mistral-7b")
PRESETS: Dict[str, Dict[str, Any]] = {
    # The study's workloads and output length.
    "full": {"max_new_tokens": 120, "serving_requests": 64,
             "workloads": ("zh_qa", "en_qa", "code_gen", "reasoning", "long_summary")},
    # The default on a CPU (a pipeline check there, a first result in about two minutes) and a
    # smoke check elsewhere; its results never compare with 'full' ones because the output
    # length is part of the workload.
    "quick": {"max_new_tokens": 32, "serving_requests": 16, "workloads": ("zh_qa", "en_qa")},
}
SUMMARY_MODES = ("attention", "full")
MODE_CHOICES = EXECUTION_MODES + ("all",)
# Graph backends that can be pinned: torchair's modes on an NPU (devices/npu_graph.py, in its
# order of preference); 'auto' takes the first the installed release and the chip support.
GRAPH_BACKENDS = ("auto", "npugraph_ex", "reduce-overhead", "max-autotune")
MAX_TOLERANCE = 10.0
# Fresh processes a baseline is recorded in on an accelerator. The baseline's processes bound
# what any comparison can resolve (its standard error never falls below noise x sqrt(1 / this));
# benchmarks/power.py measures what 3 and 6 give.
DEFAULT_ACCELERATOR_PROCESSES = 6
# Fresh processes one undecided test may use in a comparison (its own included), and the seconds
# it may spend in them, on a device where fresh processes are on (see Settings.confirms).
# benchmarks/power.py's simulation, 3% noise between processes, a baseline of 6, 1000 trials:
# 10% slowdowns caught 98.3% at a cap of 8 with futility judged from 3 processes on, 98.7% at 8
# from 4, 99.2% at 10 from 4 (sampling.FUTILITY_FROM_PROCESSES).
DEFAULT_MAX_PROCESSES = 10
DEFAULT_TIME_CAP_S = 600.0
DEFAULT_ATTRIBUTE_BUDGET_S = 3600.0


class SettingsError(ValueError):
    """A bad option value; the message says where it came from and what is accepted."""


@dataclass(frozen=True)
class Settings:
    device: str = "auto"
    model: str = "auto"  # 'auto' -> tiny on cpu, mistral-7b on an accelerator
    baseline_dir: Path = Path("baselines")
    save_baseline: bool = False
    force: bool = False  # save failing tests too; replace an unreadable baseline file (kept aside)
    reset_drift: bool = False  # with save: the saved baselines start a new drift reference
    strict: bool = False  # a requested device that is absent fails instead of skipping
    # Sample an undecided test, or a regression seen in one process, in more fresh processes on
    # the same device, judging the samples of all of them together. None (default): on for
    # accelerators, whose between-process shift is their largest noise; off on a CPU.
    confirm: Optional[bool] = None
    max_processes: int = DEFAULT_MAX_PROCESSES  # per test, its own process included
    time_cap_s: float = DEFAULT_TIME_CAP_S  # per test, for the fresh processes
    # Fresh processes a baseline is recorded in (between-process noise needs >= 2).
    # None (default): 6 on npu and cuda, 1 on a CPU.
    processes: Optional[int] = None
    reason: str = ""
    warmup: int = 1
    runs: int = 5
    max_runs: int = 10
    preset: str = "full"
    # Whether --npuperf-preset / --npuperf-max-new-tokens were given: an unset preset becomes
    # 'quick' on a CPU once the device is known (see for_device).
    preset_given: bool = False
    max_new_tokens_given: bool = False
    max_new_tokens: int = 120
    modes: Tuple[str, ...] = EXECUTION_MODES  # which execution modes run (--npuperf-mode)
    graph_backend: str = "auto"  # --npuperf-graph-backend
    summary: str = "attention"  # terminal summary: what needs attention, or every metric row too
    tolerances: Tuple[Tuple[str, float], ...] = ()
    alpha: float = 0.05
    results_path: Optional[Path] = None
    html_path: Optional[Path] = None
    markdown_path: Optional[Path] = None
    export_benchmark_json: Optional[Path] = None
    profile_dir: Optional[Path] = None  # profile one generation of each regressed test into this folder
    threads: Optional[int] = None
    # --npuperf-attribute: the good stack's file, and the seconds all mixes may take.
    attribute_path: Optional[Path] = None
    attribute_budget_s: float = DEFAULT_ATTRIBUTE_BUDGET_S
    workloads: Tuple[str, ...] = field(default=PRESETS["full"]["workloads"])
    # Filled by the plugin under pytest-xdist: this process's device index and the worker count.
    worker_index: int = 0
    worker_count: int = 1

    @property
    def serving_requests(self) -> int:
        """Requests per serving run: 64 in the full preset (stable medians on an accelerator),
        16 in the quick one."""
        return int(PRESETS[self.preset]["serving_requests"])

    @property
    def tolerance_map(self) -> Dict[str, float]:
        return dict(self.tolerances)

    def confirms(self, device_kind: str) -> bool:
        """Whether a regression is re-run in a fresh process on this device."""
        return self.confirm if self.confirm is not None else device_kind != "cpu"

    def processes_for(self, device_kind: str) -> int:
        """How many fresh processes record a baseline on this device."""
        if self.processes is not None:
            return self.processes
        return 1 if device_kind == "cpu" else DEFAULT_ACCELERATOR_PROCESSES

    def sampling_args(self) -> List[str]:
        """The options of this run that decide how far an undecided test samples fresh processes
        (for the attribution's mixes, which must judge as the run did)."""
        args = [f"--npuperf-max-processes={self.max_processes}", f"--npuperf-time-cap={self.time_cap_s:g}"]
        if self.confirm is not None:
            args.append("--npuperf-confirm" if self.confirm else "--npuperf-no-confirm")
        return args

    def as_args(self) -> List[str]:
        """Command-line options that reproduce these settings in a child pytest process."""
        args = [
            f"--npuperf-device={self.device}", f"--npuperf-model={self.model}",
            f"--npuperf-baseline-dir={self.baseline_dir}", f"--npuperf-preset={self.preset}",
            f"--npuperf-max-new-tokens={self.max_new_tokens}", f"--npuperf-warmup={self.warmup}",
            f"--npuperf-runs={self.runs}", f"--npuperf-max-runs={self.max_runs}", f"--npuperf-alpha={self.alpha}",
            f"--npuperf-mode={self.modes[0] if len(self.modes) == 1 else 'all'}",
            f"--npuperf-graph-backend={self.graph_backend}",
        ]
        if self.threads is not None:
            args.append(f"--npuperf-threads={self.threads}")
        args += [f"--npuperf-tolerance={name}={value}" for name, value in self.tolerances]
        return args


# A raw value and a human description of where it came from ("--npuperf-runs", "ini ...").
Raw = Tuple[Any, str]


def _int(raw: Raw, minimum: int) -> int:
    value, source = raw
    try:
        number = int(str(value).strip())
    except ValueError:
        raise SettingsError(f"{source}: expected an integer, got {value!r}") from None
    if number < minimum:
        raise SettingsError(f"{source}: must be >= {minimum}, got {number}")
    return number


def _choice(raw: Raw, choices: Sequence[str]) -> str:
    value, source = raw
    text = str(value).strip()
    if text not in choices:
        raise SettingsError(f"{source}: {text!r} is not one of {', '.join(choices)}")
    return text


def parse_fraction(value: Any, source: str, low: float = 0.0, high: float = MAX_TOLERANCE) -> float:
    """A relative tolerance such as 0.05 or 5%."""
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise SettingsError(
            f"{source}: expected a fraction such as 0.05 or 5%, got {value!r}"
        ) from None
    if not math.isfinite(number) or not (low < number <= high):
        raise SettingsError(f"{source}: must be > {low:g} and <= {high:g}, got {text}")
    return number


def parse_tolerance_items(items: Sequence[str], source: str) -> Dict[str, float]:
    """METRIC=FRACTION entries (repeatable option or ini lines)."""
    result: Dict[str, float] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise SettingsError(f"{source}: expected METRIC=FRACTION (e.g. e2e_s=0.05), got {item!r}")
        check_metric_name(name, source)
        check_gated(name, source)
        result[name] = parse_fraction(value, f"{source} {name}")
    return result


def check_metric_name(name: str, source: str) -> None:
    if name not in METRICS:
        raise SettingsError(f"{source}: unknown metric {name!r}; known metrics: {', '.join(METRICS)}")


def check_gated(name: str, source: str) -> None:
    """A regression budget only means something for a metric that can fail a test."""
    if not METRICS[name].gated:
        raise SettingsError(
            f"{source}: {name} is reported, not gated, so a regression budget for it would change nothing; "
            f"to hold it to a limit, give its median one: @pytest.mark.npuperf(budget={{{name!r}: ...}}) "
            "or npuperf.assert_budget"
        )


def _model(raw: Raw, rootdir: Path) -> str:
    value, source = raw
    text = str(value).strip()
    if text in BUILTIN_MODELS or text == "auto":
        return text
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        path = rootdir / path
    if not path.is_dir():
        raise SettingsError(
            f"{source}: {text!r} is neither a built-in model ({', '.join(BUILTIN_MODELS)}) nor an "
            "existing checkpoint folder; pass 'tiny', 'mistral-7b' or the path of a local "
            "Hugging Face checkpoint"
        )
    if not (path / "config.json").is_file():
        raise SettingsError(
            f"{source}: {path} has no config.json, so it is not a Hugging Face checkpoint folder"
        )

    try:
        check_checkpoint(str(path))
    except ModelError as exc:
        raise SettingsError(f"{source}: {exc}") from None
    return str(path)


def _path(raw: Raw, rootdir: Path) -> Path:
    value, source = raw
    text = str(value).strip()
    if not text:
        raise SettingsError(f"{source}: empty path")
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else rootdir / path


def build_settings(raw: Mapping[str, Raw], rootdir: Path) -> Settings:
    """Validate raw option values (None means 'not given') into a Settings."""

    def given(name: str) -> Optional[Raw]:
        item = raw.get(name)
        if item is None or item[0] is None:
            return None
        return item

    kwargs: Dict[str, Any] = {}
    if given("device"):
        kwargs["device"] = _choice(raw["device"], DEVICES)
    if given("model"):
        kwargs["model"] = _model(raw["model"], rootdir)
    preset = _choice(raw["preset"], tuple(PRESETS)) if given("preset") else "full"
    kwargs["preset"] = preset
    kwargs["preset_given"] = bool(given("preset"))
    kwargs["max_new_tokens_given"] = bool(given("max_new_tokens"))
    kwargs["workloads"] = tuple(PRESETS[preset]["workloads"])
    if given("summary"):
        kwargs["summary"] = _choice(raw["summary"], SUMMARY_MODES)
    if given("mode"):
        mode = _choice(raw["mode"], MODE_CHOICES)
        kwargs["modes"] = EXECUTION_MODES if mode == "all" else (mode,)
    if given("graph_backend"):
        kwargs["graph_backend"] = _choice(raw["graph_backend"], GRAPH_BACKENDS)
    kwargs["max_new_tokens"] = (
        _int(raw["max_new_tokens"], 2) if given("max_new_tokens") else PRESETS[preset]["max_new_tokens"]
    )
    kwargs["baseline_dir"] = _path(raw["baseline_dir"], rootdir) if given("baseline_dir") else rootdir / "baselines"
    for flag in ("save_baseline", "force", "strict", "reset_drift"):
        kwargs[flag] = bool(raw[flag][0]) if given(flag) else False
    kwargs["confirm"] = raw["confirm"][0] if given("confirm") else None
    kwargs["reason"] = str(raw["reason"][0]).strip() if given("reason") else ""
    if given("warmup"):
        kwargs["warmup"] = _int(raw["warmup"], 0)
    runs = _int(raw["runs"], 1) if given("runs") else Settings.runs
    kwargs["runs"] = runs
    max_runs = _int(raw["max_runs"], 1) if given("max_runs") else max(Settings.max_runs, runs)
    if max_runs < runs:
        raise SettingsError(
            f"{raw['max_runs'][1]}: the cap on runs ({max_runs}) is below the number of runs ({runs})"
        )
    kwargs["max_runs"] = max_runs
    tolerances: Dict[str, float] = {}
    for name in ("tolerance_ini", "tolerance"):  # CLI after ini: CLI wins
        item = given(name)
        if item:
            values, source = item
            tolerances.update(parse_tolerance_items(list(values), source))
    kwargs["tolerances"] = tuple(sorted(tolerances.items()))
    if given("alpha"):
        kwargs["alpha"] = parse_fraction(raw["alpha"][0], raw["alpha"][1], 0.0, 0.5)
    if given("results"):
        text = str(raw["results"][0]).strip()
        kwargs["results_path"] = None if text.lower() in ("", "none") else _path(raw["results"], rootdir)
    else:
        kwargs["results_path"] = rootdir / ".npuperf" / "results.json"
    for name, key in (("html", "html_path"), ("markdown", "markdown_path"),
                      ("export_benchmark_json", "export_benchmark_json"), ("profile_dir", "profile_dir")):
        if given(name):
            kwargs[key] = _path(raw[name], rootdir)
    if given("threads"):
        kwargs["threads"] = _int(raw["threads"], 1)
    if given("processes"):
        kwargs["processes"] = _int(raw["processes"], 1)
    if given("max_processes"):
        kwargs["max_processes"] = _int(raw["max_processes"], 1)
    if given("time_cap"):
        kwargs["time_cap_s"] = _seconds(raw["time_cap"])
    if given("attribute"):
        kwargs["attribute_path"] = _stack_file(raw["attribute"], rootdir)
    if given("attribute_budget"):
        kwargs["attribute_budget_s"] = _seconds(raw["attribute_budget"])
    return Settings(**kwargs)


def _stack_file(raw: Raw, rootdir: Path) -> Path:
    """The good stack's description, read once here so that a bad file stops the run before it starts."""
    path = _path(raw, rootdir)
    try:
        stacks = load_stack_file(path)
        if stacks.good is None:
            raise StackError(f"{path}: holds no good stack")
        if stacks.bad is not None:
            raise StackError(f"{path}: holds a [bad] stack, but with --npuperf-attribute the bad stack is the run's "
                             "own; remove the [bad] table")
    except StackError as exc:
        raise SettingsError(f"{raw[1]}: {exc}") from None
    return path


def _seconds(raw: Raw) -> float:
    value, source = raw
    try:
        number = float(str(value).strip().rstrip("s"))
    except ValueError:
        raise SettingsError(f"{source}: expected seconds, e.g. 600 or 600s, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise SettingsError(f"{source}: must be a positive number of seconds, got {value!r}")
    return number


def for_device(settings: Settings, device_kind: Optional[str]) -> Settings:
    """The settings with the preset resolved: unless one was given, quick on a CPU, full elsewhere
    (``device_kind`` None: the device is unavailable; the tests skip, the preset stays full)."""
    if settings.preset_given or device_kind is None:
        return settings
    preset = "quick" if device_kind == "cpu" else "full"
    tokens = settings.max_new_tokens if settings.max_new_tokens_given else PRESETS[preset]["max_new_tokens"]
    return replace(settings, preset=preset, max_new_tokens=tokens,
                   workloads=tuple(PRESETS[preset]["workloads"]))


def preset_note(settings: Settings, device_kind: Optional[str]) -> str:
    """Says when the quick preset was chosen because the device is a CPU, and how to run the full one."""
    if device_kind == "cpu" and settings.preset == "quick" and not settings.preset_given:
        return ("npuperf: quick preset (the default on a CPU: a pipeline check); the full study: "
                "--npuperf-preset full")
    return ""


MARKER_KEYS = ("tolerance", "budget")


def marker_overrides(kwargs: Mapping[str, Any], where: str) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Validate ``@pytest.mark.npuperf(tolerance={...}, budget={...})`` arguments.

    Returns (tolerances, budgets). Budgets are absolute limits on a metric's median:
    an upper limit for lower-is-better metrics, a lower limit for higher-is-better ones.
    """
    unknown = set(kwargs) - set(MARKER_KEYS)
    if unknown:
        raise SettingsError(
            f"{where}: unknown npuperf marker argument(s) {', '.join(sorted(unknown))}; "
            f"accepted: {', '.join(MARKER_KEYS)}"
        )
    tolerances: Dict[str, float] = {}
    for name, value in dict(kwargs.get("tolerance") or {}).items():
        check_metric_name(name, f"{where} tolerance")
        check_gated(name, f"{where} tolerance")
        tolerances[name] = parse_fraction(value, f"{where} tolerance {name}")
    budgets: Dict[str, float] = {}
    for name, value in dict(kwargs.get("budget") or {}).items():
        check_metric_name(name, f"{where} budget")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{where} budget {name}: expected a number, got {value!r}") from None
        if not math.isfinite(number) or number <= 0:
            raise SettingsError(f"{where} budget {name}: must be a positive number, got {value!r}")
        budgets[name] = number
    return tolerances, budgets
