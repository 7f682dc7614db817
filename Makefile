# sealtrail: the two set-up commands are `make demo` and `make test` (everything but the
# soak runs); `make unit` runs the fast tests alone (CONTRIBUTING.md says which go where).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo unit test soak bench fuzz lint typecheck docs system-deps clean venv

$(STAMP): pyproject.toml setup.py sealtrail/_canonical_avro.c sealtrail/core/_avro_native.c \
		sealtrail/core/_canonical_native.c
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The main job, end to end, on the embedded stack.
demo: $(STAMP)
	$(BIN)/sealtrail demo

# The unit tests: no broker, registry, S3, database, browser or child process; about
# 40 seconds on one core. Run these first (CONTRIBUTING.md).
unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

# The whole suite (minus the long soak runs). PostgreSQL and Chromium, for the search
# backend and report tests, are installed from Debian packages when we are root with
# apt; elsewhere those tests skip and say why.
test: $(STAMP) system-deps
	$(BIN)/sealtrail schemas check
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m sealtrail.config_doc --check
	$(BIN)/pytest -m "not slow"

system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; \
	  command -v pg_ctlcluster >/dev/null || [ -d /usr/lib/postgresql ] || missing="$$missing postgresql"; \
	  [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing$$missing from Debian packages (tests that need them skip otherwise)"; \
	    (timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 \
	      apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	      || echo "could not install$$missing; those tests will skip"; \
	  fi; \
	fi

# Long fault and soak runs (many SIGKILLs and rebalances over 200k+ events).
soak: $(STAMP)
	$(BIN)/pytest -m slow -s

# Benchmarks: one `name: value` line per figure; see docs/performance.md.
bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Fuzz every target for FUZZ_SECONDS each (atheris where it installs, hypothesis otherwise;
# the C extensions under ASan and UBSan); findings go to .fuzz/findings/. docs/fuzzing.md.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	@$(BIN)/pip install --quiet -e '.[fuzz]' 2>/dev/null \
	  || echo "atheris does not install here: fuzzing with hypothesis byte strategies"
	PYTHONPATH=. $(BIN)/python -m fuzz --seconds $(FUZZ_SECONDS)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/python -m sealtrail.config_doc

clean:
	rm -rf $(VENV) .sealtrail .pytest_cache .mypy_cache .ruff_cache .fuzz
