# cloudrec: `make run` starts the local stack, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.deps-stamp
REQS   := requirements-functions.txt requirements-dev.txt recorder_container/requirements.txt pyproject.toml

.PHONY: deps apt iam node-sdk run test unit lint bench-api package clean

IAM    := tests/support/iam
NODE_SDK := tests/support/node_sdk
deps: apt $(STAMP)

apt:
	@infra/local/apt-deps.sh

# pip runs only when a requirements file changed since the last install (no network otherwise)
$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# the IAM policy evaluator the recorder-access tests judge policies with (tests only: npm)
iam: $(IAM)/node_modules/.stamp

$(IAM)/node_modules/.stamp: $(IAM)/package-lock.json
	npm ci --prefix $(IAM) --no-audit --no-fund --silent
	@touch $@

# the official Node.js SDK the e2e tests call the API with (tests only: npm)
node-sdk: $(NODE_SDK)/node_modules/.stamp

$(NODE_SDK)/node_modules/.stamp: $(NODE_SDK)/package-lock.json
	npm ci --prefix $(NODE_SDK) --no-audit --no-fund --silent
	@touch $@

run: deps
	$(PY) -m infra.local.stack

test: deps iam node-sdk lint
	$(PY) -m pytest

unit: deps iam node-sdk
	$(PY) -m pytest -n 2 tests/unit tests/functional

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint recorder_container/Dockerfile

bench-api: deps
	$(PY) bench/api.py

# the deployment: Chalice's template merged with infra/aws/resources.json, the functions' zip
# and their layers (built for the Lambda runtime), all in build/package/
package: deps
	rm -rf build/package
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package --stage prod \
		--merge-template infra/aws/resources.json build/package
	$(PY) -m infra.aws.layers build/package

clean:
	rm -rf .run build .pytest_cache .mypy_cache .ruff_cache
