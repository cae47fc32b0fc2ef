"""The command line (cli.py): calibrate, show, compare and report."""

import json
import re

import pytest

from pytest_npuperf.cli import main


@pytest.mark.orchestration
def test_calibrate_stores_between_process_noise(npt, capsys):
    from pytest_npuperf.cli import main

    npt.fake()
    npt.monkeypatch.chdir(npt.path)
    assert main(["calibrate", "--processes", "3", "--baseline-dir", "cal", "--", "test_perf.py", "-k", "bs1"]) == 0
    out = capsys.readouterr().out
    assert "saved 4 entries with their between-process noise" in out
    (path,) = (npt.path / "cal").rglob("*.json")
    entry = json.loads(path.read_text())["entries"]["test_perf.py::test_generate[fp16-bs1-zh_qa]"]
    assert len(entry["samples"]) == 15  # 3 processes x 5 runs, pooled
    assert set(entry["noise_cv"]) == {"e2e_s", "ttft_s", "tpot_s", "tokens_per_s", "peak_allocated_bytes",
                                      "peak_reserved_bytes"}  # every gated metric measured
    assert all(0 <= v < 0.05 for v in entry["noise_cv"].values())  # the fake's noise is 1% per sample
    assert main(["show", "--baseline-dir", "cal"]) == 0
    assert "noise-calibrated" in capsys.readouterr().out


def test_show_names_the_headline_metric_of_each_kind_of_test(tmp_path, capsys):
    from pytest_npuperf.store.baselines import BaselineStore

    path = BaselineStore(tmp_path).path_for("cuda-X", "m")
    path.parent.mkdir(parents=True)
    serving = {"serving_ttft_p50_s": 0.5, "serving_tokens_per_s": 200.0}
    step = {"time_s": 0.002, "achieved_tflops": 1.5}
    path.write_text(json.dumps({"schema_version": 1, "profile": "cuda-X", "model": "m", "entries": {
        "t.py::test_serving[fp16-static-rate20]": {"samples": [serving] * 5, "workload": {}, "stack": {}},
        "t.py::test_step[decode]": {"samples": [step] * 3, "workload": {}, "stack": {}},
    }}))
    assert main(["show", "--baseline-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "serving_ttft_p50_s 500.00ms  serving_tokens_per_s 200.00  n=5" in out
    assert "time_s 2.00ms  achieved_tflops 1.5  n=3" in out and "nan" not in out


def test_cli_compares_two_result_files(npt, capsys):
    npt.fake()
    npt.run("--npuperf-results", "a.json")
    npt.run("--npuperf-results", "b.json", seed=1, NPUPERF_FAKE_SLOWDOWN="fp16-bs8-zh_qa=1.2", TASK_QUEUE_ENABLE="2")
    code = main(["compare", str(npt.path / "a.json"), str(npt.path / "b.json")])
    out = capsys.readouterr().out
    assert code == 1
    assert "stack changes A -> B: env TASK_QUEUE_ENABLE unknown -> 2" in out
    assert re.search(r"fp16-bs8-zh_qa\s+e2e_s .* REGRESSED", out)


def test_cli_report_renders_from_a_stored_results_file(npt, capsys):
    npt.fake()
    npt.run()
    assert main(["report", str(npt.path / "results.json"), "--html", str(npt.path / "r.html"),
                 "--markdown", str(npt.path / "r.md")]) == 0
    assert '<details id="kind-generation" open><summary>generation: 8 tests (NO_BASELINE 8)</summary>' in (
        npt.path / "r.html").read_text()
    assert "| generation | 8 | ➖ NO_BASELINE 8 |" in (npt.path / "r.md").read_text().splitlines()


def test_cli_errors_are_clear(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text("[]")
    assert main(["report", str(bad), "--html", str(tmp_path / "r.html")]) == 2
    assert "not a pytest-npuperf results file" in capsys.readouterr().err


def test_cli_compare_fails_when_b_lost_a_test_that_a_measured(npt, capsys):
    npt.fake()
    npt.run("--npuperf-results", "a.json")
    npt.run("--npuperf-results", "b.json", "-k", "not fp16-bs8-zh_qa")
    assert main(["compare", str(npt.path / "b.json"), str(npt.path / "a.json")]) == 0  # A's tests all in B
    capsys.readouterr()
    code = main(["compare", str(npt.path / "a.json"), str(npt.path / "b.json")])
    out = capsys.readouterr().out
    assert code == 1
    assert "LOST: in A but not measured in B: fp16-bs8-zh_qa" in out.splitlines()
