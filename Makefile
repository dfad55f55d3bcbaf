# Two commands do all the set-up on a fresh machine with Python 3.11 to 3.14 and pip:
#   make run   - create .venv, install, start the service on the embedded AWS backend
#   make test  - create or reuse .venv, install, run the whole suite
# The venv is made with the first of python3.11 … python3.14, then python3, found on PATH (3.11
# first: CI tests constraints.txt on it). `make run PYTHON=/path/to/python3.13` picks another.
SUPPORTED_PYTHONS := python3.11 python3.12 python3.13 python3.14 python3
PYTHON ?= $(firstword $(foreach p,$(SUPPORTED_PYTHONS),$(shell command -v $(p) 2>/dev/null)))
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

STAGE ?= dev
POLICY ?= policy.example.yaml

.PHONY: run test test-unit lint format typecheck bench clean package cfn-lint iam-check mutation

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "no Python 3.11-3.14 on PATH: install one, or set PYTHON=/path/to/python3.x" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 14))' 2>/dev/null \
		|| { echo "$(PYTHON) is not Python 3.11-3.14: set PYTHON=/path/to/python3.x" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'pip<26.3'

# Reinstall only when the dependency declarations change.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,cli]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/steward serve

# The suite records each function's AWS calls (tests/awscalls.py) for the IAM check after it.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p tests.awscalls
	$(MAKE) --no-print-directory cfn-lint iam-check

# The pure tier alone: planners, models, the policy, the house rules; no backend, seconds.
test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

# CloudFormation (SAM) template and deployment zip for $(STAGE), into build/$(STAGE)/.
package: $(STAMP)
	$(BIN)/python infra/package.py --stage $(STAGE) --policy $(POLICY)

# Every stage's packaged template, checked offline (cfn-lint carries its own specs).
cfn-lint: $(STAMP)
	for stage in dev prod; do \
		$(BIN)/python infra/package.py --stage $$stage --no-bytecode --out build/lint-$$stage >/dev/null \
		&& $(BIN)/cfn-lint build/lint-$$stage/sam.json || exit 1; \
	done

# Least privilege, strictly: every grant of every function's policy, and of every role of both
# packaged templates (written by cfn-lint above), is called by a test or listed with its reason
# in infra/functions.json. Needs the record of a whole passing run (build/aws-calls.json).
iam-check: $(STAMP)
	$(BIN)/python infra/iam.py check --strict \
		--template build/lint-dev/sam.json --template build/lint-prod/sam.json

# Mutation testing of the planners against the unit tier (slow: minutes on two cores; not part
# of `make test`). Prints the score; the configuration is [tool.mutmut] in pyproject.toml.
mutation: $(STAMP)
	rm -rf mutants && mkdir -p build
	$(BIN)/mutmut run --max-children $(or $(MUTATION_JOBS),2) > build/mutmut.log 2>&1 \
		|| { tail -n 40 build/mutmut.log; exit 1; }
	$(BIN)/python infra/mutation.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build mutants
