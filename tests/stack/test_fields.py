"""Fields the pytest_npuperf_stack_fields hooks add to the fingerprint (stack/fields.py): checked,
kept apart from the measured facts, and named in the stack changes like a built-in field."""

import pytest

from pytest_npuperf.devices.cpu import CpuDevice
from pytest_npuperf.stack import fingerprint
from pytest_npuperf.stack.changes import HOOK_FIELDS, stack_changes
from pytest_npuperf.stack.fields import BUILT_IN_FIELDS, DEVICE_PREFIX, StackFieldError, hook_fields, with_hook_fields


def test_the_answers_of_every_plugin_are_merged_and_none_adds_nothing():
    answers = [("conftest.py", {"driver_build": "1051", "image": "perf:2026.02", "nodes": 4}),
               ("team_plugin", None), ("other", {"calibrated": True, "clock_ghz": 1.8, "rack": None})]
    assert hook_fields(answers) == {"driver_build": "1051", "image": "perf:2026.02", "nodes": 4, "calibrated": True,
                                    "clock_ghz": 1.8, "rack": None}
    assert hook_fields([]) == {} and hook_fields([("p", {})]) == {}


@pytest.mark.parametrize("answer,problem", [
    ([("driver_build", "1")], "returned list; return a dict of field name (str) -> str, int, float, bool or None"),
    ({1: "x"}, "field 1: a field name must be a str starting with a letter"),
    ({"": "x"}, "field '': a field name must be a str"),
    ({"has space": "x"}, "field 'has space': a field name must be a str"),
    ({"torch": "2.13"}, "field 'torch': the fingerprint records 'torch' itself"),
    ({"env": "x"}, "field 'env': the fingerprint records 'env' itself"),
    ({HOOK_FIELDS: "x"}, f"field '{HOOK_FIELDS}': the fingerprint records"),
    ({"device_rack": "x"}, "field 'device_rack': the fingerprint records 'device_rack' itself (names starting with "
                           "'device_' are the device's); choose another name, such as 'team_device_rack'"),
    ({"build": ["1", "2"]}, "field 'build': a list is not a plain JSON scalar; convert it with str(), int() or float()"),
    ({"build": {"id": 1}}, "field 'build': a dict is not a plain JSON scalar"),
    ({"build": b"1051"}, "field 'build': a bytes is not a plain JSON scalar"),
    ({"clock": float("nan")}, "field 'clock': nan is not a finite number"),
    ({"clock": float("inf")}, "field 'clock': inf is not a finite number"),
])
def test_a_bad_answer_names_the_plugin_the_field_and_the_fix(answer, problem):
    with pytest.raises(StackFieldError) as info:
        hook_fields([("/repo/conftest.py", answer)])
    assert str(info.value).startswith("plugin '/repo/conftest.py'")
    assert problem in str(info.value)


def test_a_numpy_scalar_is_refused_although_it_subclasses_float():
    numpy = pytest.importorskip("numpy")
    with pytest.raises(StackFieldError, match="a float64 is not a plain JSON scalar; convert it with str"):
        hook_fields([("p", {"clock": numpy.float64(1.5)})])


def test_two_plugins_giving_one_field_is_an_error_naming_both():
    with pytest.raises(StackFieldError, match="plugin 'b', field 'image': plugin 'a' gives this field too"):
        hook_fields([("a", {"image": "x"}), ("b", {"image": "y"})])


def test_the_fields_live_under_their_own_key_and_replace_earlier_ones():
    stack = {"torch": "2.13.0", HOOK_FIELDS: {"old": 1}}
    merged = with_hook_fields(stack, {"z": 1, "a": "x"})
    assert merged == {"torch": "2.13.0", HOOK_FIELDS: {"a": "x", "z": 1}} and stack[HOOK_FIELDS] == {"old": 1}
    assert with_hook_fields(stack, {}) == {"torch": "2.13.0"}


def test_a_changed_field_is_named_like_a_built_in_one_after_them_and_before_the_environment():
    baseline = {"torch": "2.12.0", HOOK_FIELDS: {"driver_build": "1051", "image": "a"}, "env": {"OMP_NUM_THREADS": "8"}}
    current = {"torch": "2.13.0", HOOK_FIELDS: {"driver_build": "1052", "image": "a", "rack": "r7"},
               "env": {"OMP_NUM_THREADS": "4"}}
    assert stack_changes(baseline, current) == [
        "torch 2.12.0 -> 2.13.0", "driver_build 1051 -> 1052", "rack unknown -> r7", "env OMP_NUM_THREADS 8 -> 4"]
    assert stack_changes({"torch": "2.13.0"}, {"torch": "2.13.0", HOOK_FIELDS: {"image": "b"}}) == ["image unknown -> b"]


def test_every_key_the_fingerprint_writes_is_reserved(monkeypatch, fake_npu):
    """The reserved names follow collect(): a key it writes on a CPU or an NPU that a hook could
    take would let a team's field shadow a measured fact in the changes."""
    cpu = fingerprint.collect("cpu", CpuDevice().info(), environ={})
    npu = fingerprint.collect("npu", {"device_kind": "npu", "device_name": "Ascend910B3"}, environ={})
    for key in set(cpu) | set(npu):
        assert key in BUILT_IN_FIELDS or key.startswith(DEVICE_PREFIX), key
