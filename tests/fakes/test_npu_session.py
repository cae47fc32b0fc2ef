"""The session helper of the fake NPU (tests/fakes/npu_session.py)."""

from __future__ import annotations

import sys


def test_the_session_helper_makes_the_fake_torchair_importable() -> None:
    from fakes import npu_session as fake_npu_session

    fake_npu_session.install()
    try:
        import npugraph_ex
        import torchair

        assert torchair.CompilerConfig().mode.value == "max-autotune"
        assert npugraph_ex.CompilerConfig().mode.value == "npugraph_ex"
    finally:
        fake_npu_session.uninstall()
    assert "torchair" not in sys.modules and "npugraph_ex" not in sys.modules
