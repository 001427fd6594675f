# amiguard: `make demo` runs the main job on the local AWS twin, `make test` runs every test.
SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3

.PHONY: all build test test-rust test-twin lint setup demo bench

all: build

build:
	$(CARGO) build

## Install what the tests need (Debian's packer, the twin's pinned Python packages).
setup:
	@command -v packer >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq packer; }
	$(PYTHON) -m pip install -q --disable-pip-version-check -r tests/requirements.txt

## Every test: formatting and lints, the Rust tests, the twin's fidelity tests and the
## real-Packer end-to-end tests. Each suite starts its own twin and stops it.
test: lint test-rust test-twin

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

test-rust:
	$(CARGO) test

test-twin:
	cd tests && $(PYTHON) -m pytest -q -p no:cacheprovider twin e2e

## The seed's story on the local twin, with the real Packer: refused, injected and verified, refused.
demo:
	bash scripts/demo.sh

## Benchmarks (release build): ratios against the AWS CLI and Packer, measured in one run.
bench:
	$(CARGO) build --release
	$(PYTHON) scripts/bench.py
