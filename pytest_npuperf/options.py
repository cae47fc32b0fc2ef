"""The command-line options and ini keys, with one help text each, and their raw values.

``add_options`` declares them; ``raw_settings`` reads what was given, with where it came from,
for :func:`pytest_npuperf.settings.build_settings` to validate (command line > ini > default).
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Tuple

import pytest

from .settings import DEVICES, GRAPH_BACKENDS, MODE_CHOICES, PRESETS, SUMMARY_MODES

# (option name, ini name, help, kind); one help text serves both.
OPTIONS: Tuple[Tuple[str, str, str, str], ...] = (
    ("device", "npuperf_device", f"device to run on: {'|'.join(DEVICES)} (auto: npu, else cuda, else cpu). Default auto.", "string"),
    ("model", "npuperf_model",
     "model: tiny | mistral-7b | PATH of a local Hugging Face checkpoint. Default: tiny on cpu, mistral-7b on an accelerator.",
     "string"),
    ("baseline_dir", "npuperf_baseline_dir", "folder of stored baselines. Default: <rootdir>/baselines.", "string"),
    ("preset", "npuperf_preset",
     f"suite size: {'|'.join(PRESETS)} (quick: 2 workloads, 32 new tokens). Default: quick on a CPU, full on an accelerator.",
     "string"),
    ("max_new_tokens", "npuperf_max_new_tokens", "fixed output length per request (overrides the preset).", "string"),
    ("warmup", "npuperf_warmup", "untimed warm-up generations at the measured shapes. Default 1.", "string"),
    ("runs", "npuperf_runs", "timed runs per test and process before the first verdict. Default 5.", "string"),
    ("max_runs", "npuperf_max_runs",
     "cap on runs per process while a verdict is undecided (the count is planned from the measured noise). Default 10.",
     "string"),
    ("alpha", "npuperf_alpha",
     "1 - confidence of the one-sided bounds on each change (0.05: bounds at 95 percent). Default 0.05.", "string"),
    ("max_processes", "npuperf_max_processes",
     "cap on fresh processes per test (its own included) while a verdict is undecided, where fresh processes are on "
     "(--npuperf-confirm; default on npu/cuda). Default 6.", "string"),
    ("time_cap", "npuperf_time_cap",
     "cap in seconds on the fresh processes of one undecided test; at a cap the test is INCONCLUSIVE. Default 600.",
     "string"),
    ("results", "npuperf_results",
     "results JSON of the whole run ('none' to disable). Default: <rootdir>/.npuperf/results.json.", "string"),
    ("threads", "npuperf_threads", "torch CPU threads (torch.set_num_threads). Default: torch's choice.", "string"),
    ("processes", "npuperf_processes",
     "with --npuperf-save-baseline: record in N fresh processes, storing pooled samples and the "
     "between-process noise of every gated metric. Default 6 on npu/cuda, 1 on cpu.", "string"),
    ("html", "npuperf_html", "write a self-contained offline HTML report (charts included) to PATH.", "string"),
    ("markdown", "npuperf_markdown",
     "write a Markdown summary to PATH. Default: appended to $GITHUB_STEP_SUMMARY when that is set.", "string"),
    ("profile_dir", "npuperf_profile_dir",
     "profile one generation of every regressed test (torch_npu.profiler on NPU, torch.profiler elsewhere) into DIR.",
     "string"),
    ("mode", "npuperf_mode",
     f"execution modes to run: {'|'.join(MODE_CHOICES)} (eager: transformers' generate, the study's path; graph: the "
     "decode step compiled by the device's graph backend over a static KV cache, ids ending in '-graph'). Default all.",
     "string"),
    ("graph_backend", "npuperf_graph_backend",
     f"graph backend: {'|'.join(GRAPH_BACKENDS)} (auto: on an NPU the first of npugraph_ex, reduce-overhead "
     "(aclgraph), max-autotune (GE) that torch_npu and the chip support; pin one to keep comparing the same "
     "compiler across a torch_npu upgrade; CUDA and CPU have one backend each). Default auto.", "string"),
    ("summary", "npuperf_summary",
     f"terminal summary: {'|'.join(SUMMARY_MODES)} (attention: what needs attention, counts per kind of test and "
     "the generation matrix; full: also every test's metric rows, as -v does). Default attention.", "string"),
    ("attribute", "npuperf_attribute",
     "when tests regress, find which change of the stack caused it: run them on mixes of this run's stack (the bad "
     "one) and the good stack described in the TOML/JSON file STACK (docs/attribution.md).", "string"),
    ("attribute_budget", "npuperf_attribute_budget",
     "time budget in seconds of --npuperf-attribute, all mixes together. Default 3600.", "string"),
    ("export_benchmark_json", "npuperf_export_benchmark_json",
     "also write the results in pytest-benchmark's JSON format (e2e latency as the timed value) to PATH.", "string"),
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("npuperf", "Mistral inference performance gate (pytest-npuperf)")
    for name, ini, help_text, kind in OPTIONS:
        group.addoption(
            f"--npuperf-{name.replace('_', '-')}", dest=f"npuperf_{name}", default=None,
            metavar=name.split("_")[-1].upper(), help=help_text,
        )
        parser.addini(ini, help_text, type=kind, default=None)
    group.addoption("--npuperf-tolerance", dest="npuperf_tolerance", action="append", default=None,
                    metavar="METRIC=FRACTION",
                    help="regression budget of one metric, the largest change in the worse direction accepted, "
                         "e.g. e2e_s=0.05 or tokens_per_s=5%%; repeatable.")
    parser.addini("npuperf_tolerance", "regression budgets, one METRIC=FRACTION per line.", type="linelist", default=[])
    group.addoption("--npuperf-save-baseline", dest="npuperf_save_baseline", action="store_true", default=False,
                    help="record the results of passing tests as the baseline of this device profile.")
    group.addoption("--npuperf-force", dest="npuperf_force", action="store_true", default=False,
                    help="with --npuperf-save-baseline: also save failing tests, and replace an unreadable "
                         "baseline file (the old one is kept beside it as <file>.corrupt-<time>).")
    group.addoption("--npuperf-reset-drift", dest="npuperf_reset_drift", action="store_true", default=False,
                    help="with --npuperf-save-baseline: the saved baselines start a new drift reference, so the "
                         "drift check no longer adds up the changes recorded before them (a drift the team accepted).")
    group.addoption("--npuperf-strict", dest="npuperf_strict", action="store_true", default=False,
                    help="fail (instead of skip) the perf tests when the requested device is absent, and fail an "
                         "INCONCLUSIVE test (undecided at the sampling cap) or a NO_BASELINE that needs attention.")
    group.addoption("--npuperf-confirm", dest="npuperf_confirm", action="store_true", default=None,
                    help="sample an undecided test, or a regression seen in one process, in more fresh processes, "
                         "judging all their samples together (default on npu/cuda, off on cpu).")
    group.addoption("--npuperf-no-confirm", dest="npuperf_confirm", action="store_false",
                    help="judge each test on its own process's samples only.")
    group.addoption("--npuperf-reason", dest="npuperf_reason", default=None, metavar="TEXT",
                    help="why this baseline is recorded (stored with it), e.g. 'CANN 8.0.0 validated'.")


def raw_settings(config: pytest.Config) -> Dict[str, Tuple[Any, str]]:
    """Every option's value (None: not given) and where it came from, for build_settings."""
    raw: Dict[str, Tuple[Any, str]] = {}
    for name, ini, _help, _kind in OPTIONS:
        cli = config.getoption(f"npuperf_{name}")
        if cli is not None:
            raw[name] = (cli, f"--npuperf-{name.replace('_', '-')}")
        else:
            value = config.getini(ini)
            raw[name] = (value if value not in (None, "") else None, f"ini option {ini}")
    raw["tolerance"] = (config.getoption("npuperf_tolerance"), "--npuperf-tolerance")
    raw["tolerance_ini"] = (config.getini("npuperf_tolerance") or None, "ini option npuperf_tolerance")
    raw["save_baseline"] = (config.getoption("npuperf_save_baseline"), "--npuperf-save-baseline")
    raw["reason"] = (config.getoption("npuperf_reason"), "--npuperf-reason")
    raw["force"] = (config.getoption("npuperf_force"), "--npuperf-force")
    raw["strict"] = (config.getoption("npuperf_strict"), "--npuperf-strict")
    raw["reset_drift"] = (config.getoption("npuperf_reset_drift"), "--npuperf-reset-drift")
    raw["confirm"] = (config.getoption("npuperf_confirm"), "--npuperf-confirm/--npuperf-no-confirm")
    return raw


def child_command(config: pytest.Config) -> List[str]:
    """The child pytest command that re-runs tests in a fresh process, before the run's settings."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-W", "ignore::UserWarning",
           f"--rootdir={config.rootpath}"]
    if config.inipath is not None:
        cmd.append(f"-c={config.inipath}")
    return cmd
