"""Stack descriptions: TOML and JSON files, and a clear error for each kind of bad input."""

import json
import os
import sys

import pytest

from pytest_npuperf.attribute.stacks import StackError, load_stack_file


@pytest.fixture
def layout(tmp_path):
    """An environment folder, a CANN installation with its set_env.sh, an ascend-toolkit layout."""
    env = tmp_path / "envs" / "torch26"
    (env / "bin").mkdir(parents=True)
    os.symlink(sys.executable, env / "bin" / "python")
    cann = tmp_path / "cann-8.5.0"
    cann.mkdir()
    (cann / "set_env.sh").write_text("export ASCEND_TOOLKIT_HOME=x\n")
    toolkit = tmp_path / "ascend-toolkit" / "latest"
    toolkit.mkdir(parents=True)
    (tmp_path / "ascend-toolkit" / "set_env.sh").write_text("")
    return tmp_path


def test_a_toml_file_of_good_bad_and_candidates(layout):
    (layout / "stacks.toml").write_text(f"""
[good]
python = "{sys.executable}"
cann = "ascend-toolkit/latest"
env = {{ TASK_QUEUE_ENABLE = "1", ACLNN_CACHE_LIMIT = 10000 }}
[bad]
python = "envs/torch26"
cann = "cann-8.5.0"
env = {{ TASK_QUEUE_ENABLE = "2" }}
[candidates]
python = ["envs/torch26/bin/python"]
""")
    stacks = load_stack_file(layout / "stacks.toml")
    assert stacks.good.python == sys.executable
    assert stacks.good.cann == str(layout / "ascend-toolkit" / "set_env.sh")  # found in the home's parent
    assert stacks.good.env == (("ACLNN_CACHE_LIMIT", "10000"), ("TASK_QUEUE_ENABLE", "1"))
    assert stacks.bad.python == str(layout / "envs" / "torch26" / "bin" / "python")
    assert stacks.bad.cann == str(layout / "cann-8.5.0" / "set_env.sh")
    assert stacks.candidates.python == (str(layout / "envs" / "torch26" / "bin" / "python"),)


def test_a_json_file_of_one_stack_with_an_unset_variable(layout):
    path = layout / "good.json"
    path.write_text(json.dumps({"python": sys.executable, "env": {"TASK_QUEUE_ENABLE": None}}))
    stacks = load_stack_file(path)
    assert stacks.good.cann is None and stacks.good.env == (("TASK_QUEUE_ENABLE", None),) and stacks.bad is None


@pytest.mark.parametrize("content, message", [
    ('{"python": "/nowhere/bin/python"}', "python /nowhere/bin/python is not an executable file"),
    ('{"pyhton": "x"}', "unknown key(s) pyhton; a stack takes python, cann, env"),
    ('{"cann": "cann-8.5.0"}', "'python' is missing"),
    ('{"python": "envs/torch26", "cann": "envs"}', "holds no set_env.sh"),
    ('{"python": "envs/torch26", "cann": "gone/set_env.sh"}', "does not exist; give the set_env.sh"),
    ('{"python": "envs/torch26", "env": {"A-B": "1"}}', "'A-B' is not a valid environment variable name"),
    ('{"python": "envs/torch26", "env": {"A": true}}', "env A must be a string"),
    ('{"good": {"python": "envs/torch26"}, "ugly": {}}', "unknown table(s) ugly"),
    ('{"good": {"python": "envs/torch26"}, "candidates": {"python": "x"}}', "'python' must be a list of paths"),
    ('[1, 2]', "expected a table of keys"),
    ('{"python": ', "not valid JSON"),
])
def test_bad_input_names_the_problem_and_the_fix(layout, content, message):
    path = layout / "stack.json"
    path.write_text(content)
    with pytest.raises(StackError, match=None) as info:
        load_stack_file(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_an_unreadable_file(tmp_path):
    with pytest.raises(StackError, match="cannot read the stack description"):
        load_stack_file(tmp_path / "absent.toml")
    (tmp_path / "bad.toml").write_text("[good\n")
    with pytest.raises(StackError, match="not valid TOML"):
        load_stack_file(tmp_path / "bad.toml")
