"""Reproducible performance measurements of enhtrain against vanilla PyTorch and Lightning.

Run ``python -m benchmarks --quick`` (a few minutes) or ``python -m benchmarks`` (the full mode). Every
comparison is a ratio of runs interleaved in one invocation, so that the load of a shared machine cancels
out. Results go to ``benchmarks/results/`` as JSON and Markdown; ``docs/performance.md`` holds the latest
table.
"""
