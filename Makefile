# dvrd: the two commands of the README, and the pieces they are made of.
#   make demo   install what is missing, build, run the live demo (root)
#   make test   install what is missing, run every test (root); CI runs this
#   make deb    build the Debian package target/debian/dvrd_<version>_<arch>.deb
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all deps build deb demo test bench lint fuzz clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --release --workspace --bins

deb: build
	@packaging/make-deb.sh

demo: build
	@scripts/hugepages.sh 512 >/dev/null
	@target/release/dvr-demo

test: deps
	@scripts/test.sh

bench: build
	@bench/run.sh quick

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fuzz:
	@scripts/fuzz.sh 60

clean:
	$(CARGO) clean
