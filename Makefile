# The two README commands, plus the checks CI and developers share.
.PHONY: demo test check lint typecheck bench setup

demo:        ## set up, then run the broker end to end
	bash scripts/demo.sh

test:        ## set up, then ruff + mypy + the whole test suite (what CI runs)
	bash scripts/test.sh

check: test

setup:
	bash scripts/setup.sh --with-compose --with-bench

lint:
	.venv/bin/ruff check .

typecheck:
	.venv/bin/mypy

bench:       ## the benchmark suite (not part of CI); results land in bench/results/
	bash scripts/setup.sh --with-bench
	.venv/bin/python -m bench
