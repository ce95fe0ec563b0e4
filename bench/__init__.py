"""The benchmark suite: the broker side by side with baselines, on one machine, in one run.

`python -m bench` starts its own Redis, simulated provider and workers, runs the scenarios
and writes JSON, a markdown table and PNG charts to bench/results/.
"""
