# cloudrec: `make run` starts the local stack, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.deps-stamp
REQS   := requirements.lock pyproject.toml

.PHONY: deps apt iam node-sdk run test unit lint bench-api bench-start package image deploy clean

IAM    := tests/support/iam
NODE_SDK := tests/support/node_sdk
BROWSER_PLAYER := tests/support/browser_player
deps: apt $(STAMP)

apt:
	@infra/local/apt-deps.sh

# pip runs only when the lock changed since the last install (no network otherwise); the lock pins
# every dependency of requirements-dev.txt, each with the hashes of its files (make lock)
$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# the locks, installed with --require-hashes: requirements.lock (make deps, from requirements-dev.txt),
# recorder_container/requirements.lock (the recorder image) and requirements-{functions,media}.lock
# (the Lambda layers: Python 3.12, glibc 2.34, wheels only; infra/aws/layers.py). After changing a
# pin in a requirements file, `make lock` pins what that needs anew and keeps every other pin (the
# other locks take the dev lock's versions: what ships is what the tests ran); `make lock
# UPGRADE=--upgrade` takes the newest of everything. uv runs from a throwaway venv.
LOCK := uv pip compile --quiet --generate-hashes --custom-compile-command "make lock" $(UPGRADE)
.PHONY: lock
lock:
	@tool=$$(mktemp -d) && trap 'rm -rf "$$tool"' EXIT && $(PYTHON) -m venv "$$tool" && \
	"$$tool/bin/pip" install -q --disable-pip-version-check uv==0.13.9 && PATH="$$tool/bin:$$PATH" && \
	$(LOCK) --universal --python-version 3.11 -o requirements.lock requirements-dev.txt && \
	$(LOCK) --universal --python-version 3.11 -c requirements.lock \
		-o recorder_container/requirements.lock recorder_container/requirements.txt && \
	for layer in functions media; do $(LOCK) --python-version 3.12 --python-platform x86_64-manylinux_2_34 \
		--only-binary :all: -c requirements.lock -o requirements-$$layer.lock requirements-$$layer.txt || exit; done

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

# hls.js, the player the browser tests play recorded HLS with in Chromium (tests only: npm)
.PHONY: browser-player
browser-player: $(BROWSER_PLAYER)/node_modules/.stamp

$(BROWSER_PLAYER)/node_modules/.stamp: $(BROWSER_PLAYER)/package-lock.json
	npm ci --prefix $(BROWSER_PLAYER) --no-audit --no-fund --silent
	@touch $@

# the console's hls.js (served with the page) and playwright-core (tests/e2e/test_console.py drives
# Chromium with it); `make package` copies the page and hls.js into chalicelib/console_static/
CONSOLE := console
.PHONY: console
console: $(CONSOLE)/node_modules/.stamp

$(CONSOLE)/node_modules/.stamp: $(CONSOLE)/package-lock.json
	npm ci --prefix $(CONSOLE) --no-audit --no-fund --silent
	@touch $@

run: deps console
	$(PY) -m infra.local.stack

test: deps iam node-sdk browser-player console lint
	$(PY) -m pytest

unit: deps iam node-sdk console
	$(PY) -m pytest -n 2 tests/unit tests/functional

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint recorder_container/Dockerfile

bench-api: deps
	$(PY) bench/api.py

bench-start: deps
	$(PY) bench/start_latency.py

# the deployment: Chalice's template merged with infra/aws/resources.json, the functions' zip
# and their layers (built for the Lambda runtime), all in build/package/
package: deps console
	rm -rf build/package chalicelib/console_static
	mkdir -p chalicelib/console_static
	cp console/index.html console/console.js console/console.css console/node_modules/hls.js/dist/hls.min.js \
		chalicelib/console_static/
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package --stage prod \
		--merge-template infra/aws/resources.json build/package
	$(PY) -m infra.aws.layers build/package

# the recorder image, pushed to ECR when REGISTRY is given (<account>.dkr.ecr.<region>.amazonaws.com);
# says so and stops when Docker is not there (infra/aws/image.py)
image: deps
	$(PY) -m infra.aws.image $(if $(REGISTRY),--registry $(REGISTRY))

# create or update the stack STACK from build/package; PARAMS="Key=Value ..." are the template's
# parameters (README: Deploy to AWS); uses the AWS credentials and region of the environment
deploy:
	@test -n "$(STACK)" || { echo "make deploy: STACK=<name> is needed"; exit 2; }
	$(MAKE) --no-print-directory package
	$(PY) -m infra.aws.deploy up --stack $(STACK) $(foreach p,$(PARAMS),--param $(p))

clean:
	rm -rf .run build .pytest_cache .mypy_cache .ruff_cache chalicelib/console_static
