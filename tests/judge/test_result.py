"""The workload is what was run, not its name (judge/result.py): every identity field that
differs is named, and a baseline recorded before an identity change asks to be recorded again."""

import json

from pytest_npuperf.judge.result import IDENTITY_VERSION, Workload, token_ids_hash

SAVE = "--npuperf-save-baseline"


def _baseline_file(npt):
    (path,) = (npt.path / "baselines").rglob("*.json")
    return path


def test_other_token_ids_of_the_same_lengths_are_another_workload(npt):
    npt.fake()
    npt.run(SAVE)
    result = npt.run("-k", "fp16-bs1-zh_qa", NPUPERF_FAKE_TOKEN="7")  # a tokenizer upgrade, same lengths
    result.assert_outcomes(failed=1, deselected=7)
    result.stdout.fnmatch_lines([
        "*workload differs from the baseline, so the results are not comparable:",
        "  input_ids_hash: * (baseline) vs * (now)",
    ])


def test_a_baseline_recorded_before_the_identity_change_asks_to_be_recorded_again(npt):
    npt.fake()
    npt.run(SAVE)
    path = _baseline_file(npt)
    data = json.loads(path.read_text())
    new_fields = ("input_ids_hash", "tokenizer", "generation", "quant_kernel", "serving", "identity_version")
    for entry in data["entries"].values():
        for key in new_fields:
            entry["workload"].pop(key)
    path.write_text(json.dumps(data))
    result = npt.run("-k", "bs1")
    result.assert_outcomes(failed=4, deselected=4)
    result.stdout.fnmatch_lines([
        "*workload differs from the baseline, so the results are not comparable:",
        "  the baseline's workload was recorded by an older pytest-npuperf (workload identity version 1, this "
        f"one records version {IDENTITY_VERSION}: exact input token ids, *record it again with --npuperf-save-baseline",
    ])
    assert npt.run(SAVE).ret == 0  # re-recording replaces the old entries
    assert npt.run().ret == 0


def test_every_identity_field_that_differs_is_named():
    a = Workload("tiny", "f", "int8-w8a16", 1, ("zh_qa",), (31,), 16, input_ids_hash="a", tokenizer="t",
                 generation="greedy, attn=sdpa", quant_kernel="aten._weight_int8pack_mm")
    b = Workload("tiny", "f", "int8-w8a16", 1, ("zh_qa",), (31,), 16, input_ids_hash="a", tokenizer="t",
                 generation="greedy, attn=eager", quant_kernel="torch._int_mm + per-token quant")
    assert [line.split(":")[0] for line in b.differences(a)] == ["generation", "quant_kernel"]
    assert Workload.from_dict(a.to_dict()) == a and not a.differences(Workload.from_dict(a.to_dict()))


def test_token_ids_hash_sees_ids_and_rows():
    assert token_ids_hash([[1, 5, 5]]) != token_ids_hash([[1, 5, 7]])
    assert token_ids_hash([[1, 5], [5]]) != token_ids_hash([[1], [5, 5]])


def test_int8_against_a_16bit_baseline_is_a_mismatch():
    a = Workload("tiny", "x", "bf16", 1, ("zh_qa",), (31,), 120)
    b = Workload("tiny", "y", "int8-w8a16", 1, ("zh_qa",), (31,), 120)
    assert "precision: bf16 (baseline) vs int8-w8a16 (now)" in b.differences(a)
