"""The search over mixes and what its evidence explains, with an oracle standing in for measurement."""

import itertools

import pytest
from support.attribution import culprit_oracle, drive, python, upgrade

from pytest_npuperf.attribute.plan import build_plan, env_option
from pytest_npuperf.attribute.search import (
    CLEAN,
    CULPRIT,
    INTERACTION,
    NOT_REPRODUCED,
    OUTSIDE,
    REGRESSED,
    SEVERAL,
    UNATTRIBUTED,
    MixResult,
    conclude,
)

CANN_KEY, PY_KEY, ENV_KEY = "cann_toolkit+cann_kernels", "torch_npu+torch+transformers", "env:TASK_QUEUE_ENABLE"


@pytest.mark.parametrize("key", [CANN_KEY, PY_KEY, ENV_KEY])
def test_one_culprit_is_named_and_the_search_stops(key):
    plan = upgrade()
    asked, results = drive(plan, culprit_oracle(key))
    found = conclude(plan, results)
    assert found.kind == CULPRIT and found.members == [[key]], found
    assert asked[:2] == [plan.all_keys, frozenset()]  # the bad stack reproduces, the good one is clean
    assert asked[-1] == frozenset({key})  # stopped at the run that settled it
    assert len(asked) <= 2 + 2 * len(plan.factors)


def test_an_interaction_is_named_as_such():
    plan = upgrade()
    asked, results = drive(plan, culprit_oracle(CANN_KEY, PY_KEY))
    found = conclude(plan, results)
    assert found.kind == INTERACTION and found.members == [[CANN_KEY, PY_KEY]]
    assert found.text.startswith("slower only with the new CANN toolkit and CANN kernels and the new torch_npu and "
                                 "torch and transformers together")
    assert all(results[frozenset({k})].state == CLEAN for k in (CANN_KEY, PY_KEY))


def test_two_changes_that_each_regress_alone():
    plan = upgrade()
    oracle = lambda applied: REGRESSED if applied & {CANN_KEY, ENV_KEY} else CLEAN  # noqa: E731
    found = conclude(plan, drive(plan, oracle)[1])
    assert found.kind == SEVERAL and found.members == [[CANN_KEY], [ENV_KEY]]


def test_a_broken_mix_is_never_blamed_nor_cleared():
    plan = upgrade()
    culprit = frozenset({PY_KEY})
    asked, results = drive(plan, culprit_oracle(PY_KEY), broken=[culprit])
    found = conclude(plan, results)
    assert culprit in asked and results[culprit].state == "broken"
    assert found.kind != CULPRIT and not found.explained
    assert "broken (the child died)" in found.text


def test_not_reproduced_and_outside():
    plan = upgrade()
    assert conclude(plan, drive(plan, lambda a: CLEAN)[1]).kind == NOT_REPRODUCED
    asked, results = drive(plan, lambda a: REGRESSED)
    assert asked == [plan.all_keys, frozenset()] and conclude(plan, results).kind == OUTSIDE
    same = build_plan({"python": python("good", "2.6.0", "2.6.0", "5.20.2")},
                      {"python": python("bad", "2.6.0", "2.6.0", "5.20.2")}, {}, {})
    assert not same.factors and conclude(same, {}).kind == OUTSIDE


def test_a_bad_stack_that_broke_explains_nothing():
    plan = upgrade()
    asked, results = drive(plan, culprit_oracle(ENV_KEY), broken=[plan.all_keys])
    assert asked == [plan.all_keys]
    assert conclude(plan, results).kind == UNATTRIBUTED


def test_contradicting_evidence_is_not_an_answer():
    plan = upgrade()
    results = {plan.all_keys: MixResult(plan.all_keys, REGRESSED), frozenset(): MixResult(frozenset(), CLEAN),
               frozenset({ENV_KEY}): MixResult(frozenset({ENV_KEY}), REGRESSED),
               frozenset({ENV_KEY, CANN_KEY}): MixResult(frozenset({ENV_KEY, CANN_KEY}), CLEAN)}
    found = conclude(plan, results)
    assert found.kind == UNATTRIBUTED and "contradicts itself" in found.text


def _many(n):
    good = {f"env:V{i}": env_option(f"V{i}", "0", "good") for i in range(n)}
    bad = {f"env:V{i}": env_option(f"V{i}", "1", "bad") for i in range(n)}
    return build_plan(good, bad, {}, {})


@pytest.mark.parametrize("n", [5, 8, 13])
def test_bisection_finds_any_single_culprit_in_few_runs(n):
    plan = _many(n)
    for i in range(n):
        key = f"env:V{i}"
        asked, results = drive(plan, culprit_oracle(key))
        found = conclude(plan, results)
        assert found.kind == CULPRIT and found.members == [[key]], (i, found)
        # Bad, good, a bisection (ceil(log2 n) runs), the culprit alone and reverted.
        assert len(asked) <= 2 + (n - 1).bit_length() + 2, (i, asked)


@pytest.mark.parametrize("n", [6, 9])
def test_bisection_finds_a_pair_that_regresses_only_together(n):
    plan = _many(n)
    for i, j in itertools.combinations(range(n), 2):
        pair = [f"env:V{i}", f"env:V{j}"]
        found = conclude(plan, drive(plan, culprit_oracle(*pair))[1])
        assert found.kind == INTERACTION and found.members == [pair], (i, j, found)


def test_one_at_a_time_against_every_culprit_of_up_to_four_factors():
    """Exhaustive: every set of needed changes among four factors is explained (a single culprit or
    an interaction), never wrongly."""
    plan = _many(4)
    keys = [f.key for f in plan.factors]
    for size in range(1, 5):
        for needed in itertools.combinations(keys, size):
            found = conclude(plan, drive(plan, culprit_oracle(*needed))[1])
            assert found.explained and found.members == [list(needed)], (needed, found)



def test_bisection_steps_over_a_mix_that_broke():
    plan = _many(8)
    middle = frozenset(f.key for f in plan.factors[:4])
    asked, results = drive(plan, culprit_oracle("env:V5"), broken=[middle])
    assert middle in asked and results[middle].state == "broken"
    found = conclude(plan, results)
    assert found.kind == CULPRIT and found.members == [["env:V5"]]
