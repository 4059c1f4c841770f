"""Benchmarks of the workflow and the deployed app (issue 7). Run: `python -m bench <name>`.

Not part of the test run. Each benchmark writes bench/results/<name>.json;
`python -m bench report` (and `all`) regenerates bench/RESULTS.md and bench/plots/.
"""
