"""Which part of an upgrade caused a regression: the failing tests run on mixed stacks.

A stack is a Python environment (torch, torch_npu, transformers), a CANN installation (toolkit
and kernels) and environment variables. From a good and a bad stack, the mixes that isolate each
changed component are planned (``plan.py``, by the version rules of ``rules.py``), chosen one at a
time (``search.py``: one factor at a time, or a bisection over the ordered changes) and run in
fresh processes (``runner.py``), each judged by the suite's own rule against the same baseline.

``stacks.py``, ``rules.py``, ``plan.py`` and ``search.py`` are pure (no subprocess, no device);
``probe.py`` reads the versions a stack holds and ``runner.py`` runs the mixes.
"""
