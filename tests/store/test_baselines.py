"""The baseline store (store/baselines.py): round trips, merges, history, safe paths, locking;
broken files reported and never overwritten (kept aside with --npuperf-force)."""

import json
import multiprocessing
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.results import make_result

from pytest_npuperf.cli import main
from pytest_npuperf.errors import BaselineError
from pytest_npuperf.store.baselines import BaselineStore
from pytest_npuperf.store.files import locked, safe_component

floats = st.floats(min_value=1e-4, max_value=1e4, allow_nan=False)


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


def test_a_serving_tests_offered_load_is_stored_with_its_entry(tmp_path):
    store = BaselineStore(tmp_path)
    load = {"load": 0.4, "capacity_rps": 12.5, "rate_rps": 5.0, "measured": "cpu-X, 2026-12-05"}
    served = make_result("serve")
    served.extra["serving_load"] = load
    store.save("cpu-X", "tiny", [served, make_result("plain")])
    entries = store.load("cpu-X", "tiny")
    assert entries["serve"].serving_load == load and entries["plain"].serving_load is None
    store.save("cpu-X", "tiny", [make_result("serve")])  # recorded again as a rate test: no stale load
    assert store.load("cpu-X", "tiny")["serve"].serving_load is None


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


def _save_many(root, prefix):
    store = BaselineStore(root)
    for i in range(15):
        store.save("cpu-X", "tiny", [make_result(f"{prefix}{i}")])


def test_concurrent_writers_lose_nothing(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_save_many, args=(tmp_path, p)) for p in "abc"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    entries = BaselineStore(tmp_path).load("cpu-X", "tiny")
    assert len(entries) == 45


def test_lock_timeout_is_a_clear_error(tmp_path):
    import fcntl

    fd = os.open(str(tmp_path), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()

        def attempt():
            try:
                with locked(tmp_path, 0.2):
                    queue.put("locked")
            except BaselineError as exc:
                queue.put(str(exc))

        proc = ctx.Process(target=attempt)
        proc.start()
        proc.join(10)
        assert "another process has held the lock" in queue.get(timeout=5)
    finally:
        os.close(fd)


def test_files_are_read_as_json_only(tmp_path):
    store = BaselineStore(tmp_path)
    path = store.path_for("cpu-X", "tiny")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x80\x04\x95")  # a pickle header is just a broken file
    with pytest.raises(BaselineError, match="cannot be read"):
        store.load("cpu-X", "tiny")


SAVE = "--npuperf-save-baseline"


def baseline_file(npt):
    files = list((npt.path / "baselines").rglob("*.json"))
    assert len(files) == 1, files
    return files[0]


def test_corrupt_baseline_fails_comparison_naming_the_file(npt):
    npt.fake()
    npt.run(SAVE)
    path = baseline_file(npt)
    path.write_text('{"entries": ')
    result = npt.run()
    result.assert_outcomes(failed=8)
    result.stdout.fnmatch_lines([f"*baseline file {path} cannot be read*--npuperf-force*"])
    assert path.read_text() == '{"entries": '


def test_corrupt_baseline_is_reported_and_kept(npt):
    npt.fake()
    npt.run(SAVE)
    path = baseline_file(npt)
    path.write_text("{ not json")
    result = npt.run(SAVE)
    result.stdout.fnmatch_lines([f"*baseline file {path} cannot be read*"])
    assert path.read_text() == "{ not json"


def test_force_replaces_a_broken_file_and_keeps_it_aside(npt):
    npt.fake()
    npt.run(SAVE)
    path = baseline_file(npt)
    path.write_text("garbage")
    npt.run(SAVE).stdout.fnmatch_lines(["*baseline NOT saved: baseline file * cannot be read*"])
    assert path.read_text() == "garbage"
    result = npt.run(SAVE, "--npuperf-force")
    result.assert_outcomes(passed=8)
    assert len(json.loads(path.read_text())["entries"]) == 8
    (aside,) = path.parent.glob(path.name + ".corrupt-*")
    assert aside.read_text() == "garbage"


def test_unwritable_baseline_dir_reports_and_fails_the_run(npt):
    npt.fake()
    (npt.path / "blocked").write_text("a file, not a folder")
    result = npt.run(SAVE, "--npuperf-baseline-dir", "blocked/baselines")
    result.stdout.fnmatch_lines(["*baseline NOT saved: cannot create baseline directory*--npuperf-baseline-dir*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_saving_again_keeps_the_earlier_baseline_as_history(npt, capsys):
    npt.fake()
    npt.run(SAVE, "--npuperf-reason", "CANN 8.0.RC1")
    npt.run(SAVE, "--npuperf-reason", "CANN 8.0.0", seed=1, NPUPERF_FAKE_SLOWDOWN="fp16-bs1-zh_qa=1.5")
    (path,) = (npt.path / "baselines").rglob("*.json")
    entry = json.loads(path.read_text())["entries"]["test_perf.py::test_generate[fp16-bs1-zh_qa]"]
    assert entry["reason"] == "CANN 8.0.0"
    (old,) = entry["history"]
    assert old["reason"] == "CANN 8.0.RC1" and old["n"] == 5
    assert entry["samples"][0]["e2e_s"] > 1.4 * old["medians"]["e2e_s"]
    assert main(["show", "--baseline-dir", str(npt.path / "baselines")]) == 0
    out = capsys.readouterr().out
    assert "earlier:" in out and "CANN 8.0.RC1" in out
    assert "fp16-bs1-zh_qa               e2e_s " in out and "nan" not in out
