"""The changes between two stacks, the factors that can be swapped alone and the mixes that exist."""

from support.attribution import cann, python, upgrade

from pytest_npuperf.attribute.plan import CANN, PYTHON
from pytest_npuperf.attribute.rules import kernels_problem, pin_problem, same_release, torch_pins


def test_an_upgrade_has_one_factor_per_carrier_when_nothing_separates_its_components():
    plan = upgrade()
    assert [f.key for f in plan.factors] == ["cann_toolkit+cann_kernels", "torch_npu+torch+transformers",
                                             "env:TASK_QUEUE_ENABLE"]
    assert plan.factors[1].name == ("torch_npu 2.5.1 -> 2.6.0 with torch 2.5.1+cpu -> 2.6.0+cpu with transformers "
                                    "4.57.1 -> 5.20.2")
    assert plan.factors[2].name == "env TASK_QUEUE_ENABLE 1 -> 2"
    # Why torch_npu could not be tried alone: its pin, read from the environment's metadata.
    notes = "\n".join(plan.inseparable)
    lines = {line.split(":")[0]: line for line in plan.inseparable}
    assert "torch_npu 2.6.0 pins torch==2.6.0, not torch 2.5.1+cpu" in lines["torch_npu alone"]
    assert "torch_npu 2.5.1 pins torch==2.5.1+cpu, not torch 2.6.0+cpu" in lines["torch alone"]
    assert "CANN toolkit alone: not tried: impossible: the CANN kernels package 8.3.RC1 belongs to another release" in notes
    # transformers 5.20 cannot run on torch 2.5: compat's rule, named.
    assert "transformers alone: not tried: impossible" in notes and "needs torch >= 2.6" in notes


def test_a_candidate_environment_separates_transformers_from_the_torch_npu_pair():
    candidate = python("candidate", "2.6.0", "2.6.0+cpu", "4.57.1")
    plan = upgrade(candidates=[candidate])
    assert [f.key for f in plan.factors if f.carrier == PYTHON] == ["transformers", "torch_npu+torch"]
    mix = plan.mix(frozenset({"torch_npu+torch"}))
    assert not mix.problems and mix.option(PYTHON) == candidate
    assert plan.describe(frozenset({"torch_npu+torch"})) == "good stack + the new torch_npu and torch"
    # The other order does not exist: transformers 5.20 with torch 2.5.1 is impossible.
    impossible = plan.mix(frozenset({"transformers"}))
    assert impossible.problems and "needs torch >= 2.6" in impossible.problems[0]


def test_an_environment_that_breaks_a_rule_is_no_option():
    mismatched = python("candidate", "2.6.0", "2.5.1+cpu", "4.57.1")  # torch_npu 2.6.0 with the wrong torch
    assert mismatched.problems == ("torch_npu 2.6.0 pins torch==2.6.0, not torch 2.5.1+cpu",)
    plan = upgrade(candidates=[mismatched])
    assert "torch_npu+torch+transformers" in [f.key for f in plan.factors]


def test_a_cann_installation_whose_kernels_belong_to_another_release_cannot_run():
    broken = cann("candidate", "8.5.0", "8.3.RC1")
    assert broken.problems and "belongs to another release" in broken.problems[0]
    plan = upgrade(candidates=[broken])
    mix = plan.mix(frozenset({"cann_toolkit+cann_kernels"}))
    assert not mix.problems and mix.option(CANN).origin == "bad"


def test_an_unset_variable_is_a_version_of_its_own():
    plan = upgrade(env_good=None, env_bad="2")
    assert plan.factors[-1].name == "env TASK_QUEUE_ENABLE unset -> 2"
    assert [f.key for f in upgrade(env_good="2", env_bad="2").factors][-1] == "torch_npu+torch+transformers"


def test_mixes_named_from_the_nearer_stack():
    plan = upgrade()
    keys = [f.key for f in plan.factors]
    assert plan.describe(frozenset()) == "good stack" and plan.describe(plan.all_keys) == "bad stack"
    assert plan.describe(frozenset(keys[:1])) == "good stack + the new CANN toolkit and CANN kernels"
    assert plan.describe(plan.all_keys - {keys[2]}) == "bad stack with the old env TASK_QUEUE_ENABLE"


def test_version_rules():
    assert torch_pins(["torch==2.6.0", "torchvision", "torch_npu_extra", "numpy", 'torch>=2; extra == "x"']) == [
        "torch==2.6.0"]
    assert pin_problem("2.6.0", ["torch==2.6.0"], "2.6.0+cpu") == ""  # a local label matches a plain pin
    assert pin_problem("2.5.1", ["torch==2.5.1+cpu"], "2.6.0") == "torch_npu 2.5.1 pins torch==2.5.1+cpu, not torch 2.6.0"
    assert pin_problem("2.5.1", [], "2.6.0") == "" and pin_problem(None, ["torch==2.5.1"], "2.6.0") == ""
    assert same_release("8.0.RC1", "8.0.rc1.alpha001") and not same_release("8.5.0", "8.3.RC1")
    assert kernels_problem("8.5.0", None) == "" and kernels_problem("8.5.0", "8.5.0") == ""
