"""The hook object that carries a run (hooks.py): the header it writes after collection."""

from types import SimpleNamespace

from fakes import synthetic
from support.results import make_result

from pytest_npuperf.hooks import NpuPerfRun
from pytest_npuperf.settings import build_settings
from pytest_npuperf.store.baselines import BaselineEntry


def test_the_header_names_accelerator_baselines_without_noise(tmp_path, monkeypatch):
    stored = make_result()
    entries = {"a": BaselineEntry("a", stored.to_dict(), "x"),
               "b": BaselineEntry("b", dict(stored.to_dict(), noise_cv={"e2e_s": 0.02}), "x")}
    run = NpuPerfRun(build_settings({}, tmp_path), [])
    monkeypatch.setattr(run.perf, "profile_entries", lambda: entries)
    monkeypatch.setattr(run.perf, "calibration", lambda: dict(synthetic.CALIBRATION))

    def device(kind, profile):
        return SimpleNamespace(kind=kind, profile=lambda: profile, name=lambda: profile, timing_source="t",
                               memory_source="m")

    monkeypatch.setattr(run.perf, "device", lambda: device("npu", "npu-Ascend910B4"))
    noise = [line for line in run.header_lines() if "between-process noise" in line]
    assert len(noise) == 1
    assert noise[0].startswith("npuperf: 1 of 2 baseline entries of npu-Ascend910B4 carry no between-process noise")
    monkeypatch.setattr(run.perf, "device", lambda: device("cpu", "cpu-X"))
    assert not [line for line in run.header_lines() if "between-process noise" in line]
