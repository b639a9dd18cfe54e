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
	.venv/bin/pytest -q -n 3 --timeout 600

bench: setup
	.venv/bin/python -m benchmarks.run

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
