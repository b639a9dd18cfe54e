# The two commands a newcomer needs: `make demo` and `make test`.
.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@.venv/bin/gitops-canary demo

LINT_PATHS := gitops_canary tests $(wildcard benchmarks)

lint: setup
	.venv/bin/ruff format --check $(LINT_PATHS)
	.venv/bin/ruff check $(LINT_PATHS)
	.venv/bin/mypy
	.venv/bin/lint-imports

test: lint
	# The engine decides every rollout: every branch of it is exercised by a test.
	.venv/bin/pytest -q -p no:cacheprovider tests/unit/test_engine_*.py \
		--cov=gitops_canary.core.engine --cov-branch --cov-report=term --cov-fail-under=100
	.venv/bin/pytest -q -n 3 --timeout 600

bench: setup
	.venv/bin/python -m benchmarks.run

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
