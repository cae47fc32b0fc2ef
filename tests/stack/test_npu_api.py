"""The one list of torch_npu names (stack/npu_api.py) covers every use in the project's source."""

from __future__ import annotations

import textwrap

import pytest
from support import npu_source_scan

from pytest_npuperf.stack import npu_api


def _covered(use: npu_source_scan.Use) -> str:
    """'' when the list covers the use, else what is missing."""
    declared = {u.path: u for u in npu_api.USES}
    if use.path in declared:
        missing = set(use.keywords) - set(declared[use.path].keywords)
        return f"keywords {sorted(missing)}" if missing else ""
    if use.keywords:
        return "the name"
    # A module or object reached on the way to a declared name (torch_npu.profiler in
    # torch_npu.profiler.profile) is covered by that name.
    if any(path.startswith(use.path + ".") for path in declared):
        return ""
    return "the name"


def test_every_torch_npu_use_in_the_source_is_declared():
    uses = npu_source_scan.scan_project()
    # The scan must see the known uses at all, or it proves nothing.
    found = {u.path for u in uses}
    for expected in ("torch_npu.npu_quant_matmul", "torch_npu.npu.Event.elapsed_time",
                     "torch_npu.profiler.profile.step", "torch_npu.npu.utils.get_cann_version",
                     "torch_npu.npu.set_device", "torch_npu.dynamo.torchair.get_npu_backend",
                     "torch_npu.dynamo.npugraph_ex.CompilerConfig.mode"):
        assert expected in found, f"the source scan no longer sees {expected}"
    missing = [f"{u.file}:{u.line} {u.path}({', '.join(u.keywords)}): {_covered(u)} not in npu_api.USES"
               for u in uses if _covered(u)]
    assert not missing, "\n".join(missing)


def test_every_declared_name_is_used():
    """A stale entry would be checked against the wheels for nothing."""
    found = {u.path for u in npu_source_scan.scan_project()}
    # Device properties are read with getattr over a tuple of names; the scan cannot see them.
    unused = [u.path for u in npu_api.USES
              if "._DeviceProperties." not in u.path and not any(f == u.path or f.startswith(u.path + ".") for f in found)]
    assert not unused


@pytest.mark.parametrize(
    "source, aliases, expected",
    [
        ("import torch_npu\ntorch_npu.npu_new_op(x, flag=True)\n", {}, ("torch_npu.npu_new_op", ("flag",))),
        ("torch.npu.Event(enable_timing=True, blocking=True)\n", {}, ("torch_npu.npu.Event", ("enable_timing", "blocking"))),
        ("self._module.new_call(self.index)\n", {"self._module": "torch_npu.npu"}, ("torch_npu.npu.new_call", ())),
        ("f(a, torch_npu.npu.utils.get_cann_version(module='DRIVER', x=g(y=1)))\n", {},
         ("torch_npu.npu.utils.get_cann_version", ("module", "x"))),
    ],
)
def test_scan_sees_new_uses_and_their_keywords(source, aliases, expected):
    uses = npu_source_scan.scan_text(source, "x.py", aliases)
    assert [(u.path, u.keywords) for u in uses] == [expected]


def test_a_new_undeclared_use_fails_the_check():
    source = textwrap.dedent(
        """
        # torch_npu.in_a_comment() does not count
        '''nor torch_npu.in_a_docstring()'''
        y = torch_npu.npu_quant_matmul(a, b, s, pertoken_scale=p, output_dtype=d, group_sizes=[1])
        torch_npu.npu.synchronize()
        """
    )
    uses = npu_source_scan.scan_text(source, "x.py", {})
    assert [(u.path, _covered(u)) for u in uses] == [
        ("torch_npu.npu_quant_matmul", "keywords ['group_sizes']"),
        ("torch_npu.npu.synchronize", ""),
    ]
