"""The fake vLLM's platform: the device type a test sets (environment variable ``NPUPERF_FAKE_VLLM_PLATFORM``, default cpu)."""

import os


class _Platform:
    @property
    def device_type(self) -> str:
        return os.environ.get("NPUPERF_FAKE_VLLM_PLATFORM", "cpu")


current_platform = _Platform()
