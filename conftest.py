"""Project-wide pytest setup.

The plugin itself is registered by its ``pytest11`` entry point; listing it in
``pytest_plugins`` here would register it twice and abort pytest.
"""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("npuperf"):
        raise pytest.UsageError(
            "pytest-npuperf is not installed in this environment: run 'pip install -e .' "
            "in the repository root (see README.md)"
        )
