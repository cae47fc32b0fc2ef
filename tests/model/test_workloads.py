"""The run's workloads (model/workloads.py): the suite's own, with those the pytest_npuperf_workloads
hooks add or replace; a bad one is refused naming the plugin, and a text a hook gave is identity."""

import pytest

from pytest_npuperf import Prompt
from pytest_npuperf.model.workloads import BATCH_PROMPTS, BUILT_IN, MAX_BATCH, WORKLOADS, WorkloadError, batch_prompts, with_hook_workloads

TEAM = Prompt("team_rag", "Answer from the context: which quay was built in 1847?")


def test_no_hook_leaves_the_suite_as_it_ships():
    assert with_hook_workloads([]) == BUILT_IN and with_hook_workloads([("p", None), ("q", [])]) == BUILT_IN
    assert BUILT_IN.names() == list(WORKLOADS) and BUILT_IN.added() == []
    assert batch_prompts("zh_qa", 3) == [WORKLOADS["zh_qa"], *BATCH_PROMPTS[:2]]


def test_a_hook_adds_a_workload_after_the_suite_s_own_and_replaces_one_explicitly():
    new = with_hook_workloads([("conftest.py", [TEAM]),
                               ("plugin", (Prompt("zh_qa", "用三句话介绍一下长城。", replace=True),))])
    assert new.names() == [*WORKLOADS, "team_rag"] and new.added() == ["team_rag"]
    assert new.batch("team_rag", 2) == [Prompt("team_rag", TEAM.text), BATCH_PROMPTS[0]]
    assert new.batch("zh_qa", 1)[0].text == "用三句话介绍一下长城。"
    assert new.batch("en_qa", 1) == BUILT_IN.batch("en_qa", 1)
    assert [p.prompt_id for p in new.prompts()] == [*WORKLOADS, "team_rag", *(p.prompt_id for p in BATCH_PROMPTS)]
    with pytest.raises(ValueError, match="unknown workload 'nope'; known workloads: zh_qa, .*, team_rag"):
        new.batch("nope", 1)
    with pytest.raises(ValueError, match=f"batch size must be between 1 and {MAX_BATCH}"):
        new.batch("team_rag", MAX_BATCH + 1)


def test_a_text_a_hook_gave_is_identity_and_the_suite_s_own_texts_keep_theirs():
    new = with_hook_workloads([("p", [TEAM, Prompt("en_qa", WORKLOADS["en_qa"].text, replace=True)])])
    assert new.texts_hash(new.batch("zh_qa", 4)) == ""  # the baselines recorded before hooks still match
    team = new.texts_hash(new.batch("team_rag", 1))
    assert len(team) == 16 and team == new.texts_hash(new.batch("team_rag", 8))  # batch prompts are the suite's
    # A replacement is identity even with the very same text: the team owns the prompt now.
    assert new.texts_hash(new.batch("en_qa", 1)) not in ("", team)
    edited = with_hook_workloads([("p", [Prompt("team_rag", TEAM.text.replace("1847", "1848"))])])
    assert edited.texts_hash(edited.batch("team_rag", 1)) != team


@pytest.mark.parametrize("answer,problem", [
    (TEAM, "returned Prompt; return a list of pytest_npuperf.Prompt(prompt_id, text), or None"),
    ({"team_rag": "text"}, "returned dict; return a list of pytest_npuperf.Prompt"),
    (["team_rag"], "item 0 is str; return pytest_npuperf.Prompt(prompt_id, text)"),
    ([TEAM, ("x", "y")], "item 1 is tuple; return pytest_npuperf.Prompt"),
    ([Prompt("team rag", "x")], "item 0: prompt_id 'team rag' must be a non-empty str of letters, digits and "
                                "underscores (it becomes part of test ids and baseline keys)"),
    ([Prompt("", "x")], "prompt_id '' must be a non-empty str"),
    ([Prompt("team-rag", "x")], "prompt_id 'team-rag' must be"),
    ([Prompt(7, "x")], "prompt_id 7 must be"),
    ([Prompt("team_rag", "")], "item 0: workload 'team_rag' has no text; give the prompt's text as a non-empty str"),
    ([Prompt("team_rag", "  \n")], "workload 'team_rag' has no text"),
    ([Prompt("team_rag", None)], "workload 'team_rag' has no text"),
    ([Prompt("zh_qa", "another text")], "workload 'zh_qa' exists already; pass replace=True to replace it, or "
                                        "choose another id"),
    ([TEAM, TEAM], "item 1: workload 'team_rag' was already given by plugin '/repo/conftest.py'; give each id once"),
    ([Prompt("team_rag", "x", replace=True)], "replace=True, but there is no workload 'team_rag' to replace (known: "
                                              "zh_qa, en_qa, code_gen, reasoning, long_summary); drop replace=True"),
    ([Prompt("b1_translate", "x", replace=True)], "'b1_translate' is one of the fixed batch prompts"),
])
def test_a_bad_workload_is_refused_naming_the_plugin_and_the_fix(answer, problem):
    with pytest.raises(WorkloadError) as info:
        with_hook_workloads([("/repo/conftest.py", answer)])
    assert str(info.value).startswith("plugin '/repo/conftest.py'")
    assert problem in str(info.value)


def test_two_plugins_giving_one_id_is_an_error_whether_added_or_replaced():
    with pytest.raises(WorkloadError, match="plugin 'b', item 0: workload 'team_rag' was already given by plugin 'a'"):
        with_hook_workloads([("a", [TEAM]), ("b", [TEAM])])
    twice = Prompt("zh_qa", "x", replace=True)
    with pytest.raises(WorkloadError, match="workload 'zh_qa' was already given by plugin 'a'"):
        with_hook_workloads([("a", [twice]), ("b", [twice])])
