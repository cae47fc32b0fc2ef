"""Fakes for the plugin's own tests, imported as ``fakes.<module>``.

- ``synthetic``: deterministic synthetic measurements behind the real plugin (seeded samples,
  slowdowns, OOM, crashes of a confirmation child, ... set by environment variables);
- ``torch_npu``: a fake ``torch_npu`` with the documented API surface and quirks of each release,
  its int8 operators from ``npu_ops``;
- ``torchair``: a fake torchair and npugraph_ex of each torch_npu release;
- ``npu_session``: the real plugin on the asynchronous fake NPU (``--npuperf-device npu``);
- ``slow_when``: a slowdown tied to the stack (a CANN release, a torch_npu release, a variable),
  for the attribution's tests;
- ``vllm_site/``: a folder holding only a fake ``vllm`` package; a test puts this folder (not the
  ``fakes`` package) on ``sys.path`` so that ``import vllm`` finds the fake.

The tests folder (``TESTS_DIR``) is on ``sys.path`` in every test process (pytest puts it there
for ``tests/conftest.py``). A pytester run's conftest puts it there first, so that the
confirmation and recording child processes, which import that conftest, find the fakes too:
:func:`install_conftest` writes such a conftest.
"""

from __future__ import annotations

from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent.parent
VLLM_SITE = Path(__file__).resolve().parent / "vllm_site"


def sys_path_line() -> str:
    """The conftest line that makes ``import fakes.<module>`` work in a pytester run and its children."""
    return f"import sys\nsys.path.insert(0, {str(TESTS_DIR)!r})  # child processes too\n"


def install_conftest(module: str) -> str:
    """conftest.py text of a pytester run that installs ``fakes.<module>`` when pytest configures
    and removes it when pytest unconfigures."""
    return (
        sys_path_line()
        + f"from fakes import {module}\n\n"
        + f"def pytest_configure(config):\n    {module}.install()\n\n"
        + f"def pytest_unconfigure(config):\n    {module}.uninstall()\n"
    )
