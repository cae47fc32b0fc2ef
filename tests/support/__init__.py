"""Helpers of the plugin's own tests, imported as ``support.<module>`` (the tests folder is on
``sys.path``):

- ``skips``: skip a test with the plugin's own reason where the installed stack lacks a feature;
- ``results``: small synthetic results and results documents;
- ``attribution``: synthetic stacks and an oracle of which mixes regress (the attribution's search);
- ``npu_source_scan``: every torch_npu use in the project's source;
- ``torch_npu_wheels``, ``torch_npu_meta``, ``npu_probes``: the published torch-npu wheels, their
  meta functions and the probe calls run through them and the fake (conformance tests).
"""
