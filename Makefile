# The two commands a newcomer needs: `make demo` and `make test`. Both set up the environment first
# (uv from PyPI, then the locked dependencies), so they work on a fresh machine.
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: setup demo test lint bench zombie-automation

# Bytecode is compiled once at install: where PYTHONDONTWRITEBYTECODE is set, every start would compile pandas and
# pyarrow again (`kyc-attach validate`: 3.5 s instead of 1 s; bench/bench_cli.py).
setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet --extra demo --compile-bytecode

demo: setup
	$(UV) run kyc-attach demo

test: setup
	$(UV) run lint-imports
	$(UV) run mypy --strict flows transforms connectors
	$(UV) run pytest -n 3 --dist loadfile --no-loadscope-reorder  # one test file per process: a file's servers and fixtures start once; the slowest folders first (tests/conftest.py)

lint: setup
	$(UV) run ruff check .
	$(UV) run mypy flows connectors transforms sandbox
	# the pure rules, the IO edges and the wiring are typed strictly
	$(UV) run mypy --strict flows transforms connectors

# The benchmarks of docs/benchmarks.md with their default sizes (~30 min on 2 cores); each takes flags for more.
bench: setup
	$(UV) run python bench/bench_plan.py
	$(UV) run python bench/bench_e2e.py
	$(UV) run python bench/bench_fanout.py
	$(UV) run python bench/bench_upload_memory.py
	$(UV) run python bench/bench_prefect.py

# The automation that marks shard runs Crashed when their heartbeats stop, (re)applied to the Prefect server of
# PREFECT_API_URL: the old one of that name is deleted first, so applying twice leaves one.
ZOMBIE_AUTOMATION := deployments/zombie-automation.yaml
zombie-automation: setup
	-$(UV) run prefect --no-prompt automation delete "$$(sed -n 's/^name: //p' $(ZOMBIE_AUTOMATION))" 2>/dev/null
	$(UV) run prefect automation create --from-file $(ZOMBIE_AUTOMATION)
