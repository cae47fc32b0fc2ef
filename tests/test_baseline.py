"""The baseline store: round trips, merges, safe paths, refusal to overwrite broken files."""

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_npuperf.errors import BaselineError
from pytest_npuperf.judge.result import Result, Sample, Workload
from pytest_npuperf.store.baselines import BaselineStore, safe_component

floats = st.floats(min_value=1e-4, max_value=1e4, allow_nan=False)


def make_result(test_id="t::a[fp16-bs1-zh_qa]", e2e=(1.0, 1.1), tokens=16):
    workload = Workload("tiny", "abc", "fp16", 1, ("zh_qa",), (31,), tokens)
    samples = [
        Sample(e2e_s=e, ttft_s=e / 10, tpot_s=e / 20, tokens_per_s=tokens / e, output_tokens=[tokens],
               request_e2e_s=[e], request_ttft_s=[e / 10], request_tpot_s=[e / 20], peak_rss_bytes=123)
        for e in e2e
    ]
    return Result(test_id, "cpu-X", workload, samples, {"torch": "2.13"}, "2026-11-26T00:00:00+00:00")


@settings(max_examples=50)
@given(st.lists(floats, min_size=1, max_size=8), st.text(min_size=1, max_size=40))
def test_save_load_round_trip(tmp_path_factory, e2e, test_id):
    store = BaselineStore(tmp_path_factory.mktemp("b"))
    result = make_result(test_id, tuple(e2e))
    store.save("cpu-X", "tiny", [result], reason="why")
    entry = store.load("cpu-X", "tiny")[test_id]
    assert entry.workload == result.workload
    assert entry.values("e2e_s") == list(e2e)
    assert entry.reason == "why" and entry.stack == {"torch": "2.13"}


@given(st.text(min_size=0, max_size=200))
def test_any_name_gives_a_safe_file_name(name):
    safe = safe_component(name)
    assert safe and safe not in (".", "..") and not safe.startswith(".")
    assert "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert len(safe) <= 80
    assert all(c.isalnum() and c.isascii() or c in "._-" for c in safe)


def test_distinct_names_never_share_a_file():
    assert safe_component("a/b") != safe_component("a_b") != safe_component("a-b")
    assert safe_component("../../etc") != safe_component("etc")


def test_hostile_profile_stays_inside_the_store(tmp_path):
    store = BaselineStore(tmp_path / "baselines")
    path = store.path_for("../../../etc/cron.d/x", "../../passwd")
    assert (tmp_path / "baselines") in path.parents


def test_saving_a_subset_keeps_other_entries(tmp_path):
    store = BaselineStore(tmp_path)
    store.save("cpu-X", "tiny", [make_result("a"), make_result("b")])
    store.save("cpu-X", "tiny", [make_result("b", e2e=(2.0, 2.0))])
    entries = store.load("cpu-X", "tiny")
    assert set(entries) == {"a", "b"}
    assert entries["b"].values("e2e_s") == [2.0, 2.0]


def test_file_is_reviewable_json(tmp_path):
    store = BaselineStore(tmp_path)
    path = store.save("cpu-X", "tiny", [make_result("a")])
    text = path.read_text()
    assert text.endswith("}\n")
    data = json.loads(text)
    assert data["schema_version"] == 1
    assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp or lock files left


def test_unknown_fields_are_kept(tmp_path):
    store = BaselineStore(tmp_path)
    path = store.save("cpu-X", "tiny", [make_result("a")])
    data = json.loads(path.read_text())
    data["team_note"] = "keep me"
    data["entries"]["a"]["ticket"] = "PERF-12"
    path.write_text(json.dumps(data))
    store.save("cpu-X", "tiny", [make_result("a", e2e=(3.0,))])
    data = json.loads(path.read_text())
    assert data["team_note"] == "keep me" and data["entries"]["a"]["ticket"] == "PERF-12"


@pytest.mark.parametrize("content, problem", [
    ("{ broken", "cannot be read"),
    ("[1, 2]", "is not a pytest-npuperf baseline"),
    ('{"schema_version": 99, "entries": {}}', "newer than this pytest-npuperf understands"),
    ('{"entries": {"a": {"samples": []}}}', "entry 'a' is malformed"),
])
def test_broken_file_is_reported_and_never_overwritten(tmp_path, content, problem):
    store = BaselineStore(tmp_path)
    path = store.path_for("cpu-X", "tiny")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(BaselineError, match=problem) as info:
        store.load("cpu-X", "tiny")
        store.save("cpu-X", "tiny", [make_result("b")])
    assert str(path) in str(info.value)
    if problem != "entry 'a' is malformed":
        with pytest.raises(BaselineError):
            store.save("cpu-X", "tiny", [make_result("b")])
    assert path.read_text() == content


def test_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    store = BaselineStore(tmp_path)
    path = store.save("cpu-X", "tiny", [make_result("a")])
    before = path.read_text()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.save("cpu-X", "tiny", [make_result("a", e2e=(9.0,))])
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_unwritable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = BaselineStore(blocker / "baselines")
    with pytest.raises(BaselineError, match="cannot create baseline directory.*--npuperf-baseline-dir"):
        store.save("cpu-X", "tiny", [make_result("a")])
