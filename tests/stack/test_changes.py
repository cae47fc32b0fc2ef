"""What changed between two stack fingerprints (stack/changes.py): the lines next to every verdict."""

from pytest_npuperf.stack.changes import STACK_KEYS, stack_changes


def test_the_important_keys_come_first_in_their_order_then_the_others_then_the_environment():
    baseline = {"torch": "2.12.0", "zeta": 1, "cann_version": "8.0.RC1", "alpha": "a", "device_name": "Ascend910B3",
                "python": "3.11.9", "env": {"TASK_QUEUE_ENABLE": "1", "HCCL_BUFFSIZE": "200"}}
    current = {"torch": "2.13.0", "zeta": 2, "cann_version": "8.0.0", "alpha": "a", "device_name": "Ascend910B4",
               "python": "3.11.9", "beta": "new", "env": {"TASK_QUEUE_ENABLE": "2", "OMP_NUM_THREADS": "8",
                                                         "HCCL_BUFFSIZE": "200"}}
    assert stack_changes(baseline, current) == [
        "device_name Ascend910B3 -> Ascend910B4",
        "cann_version 8.0.RC1 -> 8.0.0",
        "torch 2.12.0 -> 2.13.0",
        "beta unknown -> new",
        "zeta 1 -> 2",
        "env OMP_NUM_THREADS unknown -> 8",
        "env TASK_QUEUE_ENABLE 1 -> 2",
    ]
    assert STACK_KEYS.index("device_name") < STACK_KEYS.index("cann_version") < STACK_KEYS.index("torch")


def test_nothing_changed_gives_no_line_and_a_missing_value_is_unknown():
    same = {"torch": "2.13.0", "cpu_model": "x86", "env": {"OMP_NUM_THREADS": "8"}}
    assert stack_changes(same, dict(same)) == []
    assert stack_changes({"driver_version": None, "env": None}, {"driver_version": "25.0.rc1"}) == [
        "driver_version unknown -> 25.0.rc1"]
    assert stack_changes({"torch": "2.13.0", "env": {"OMP_NUM_THREADS": "8"}}, {}) == [
        "torch 2.13.0 -> unknown", "env OMP_NUM_THREADS 8 -> unknown"]
