"""gembot's benchmarks: ``python -m benchmarks`` (``make bench``) runs them all; results: docs/benchmarks.md

Every figure that has a goal is measured against a baseline measured in the same run on the same emulator
(a bare python-telegram-bot echo bot), because the 2-core machine the figures come from is shared and noisy.
"""
