# ComfyUI-EmoCAST developer tasks.  CI runs `make test` (see .ci/run).
#
#   make setup   install missing Debian packages (espeak-ng, ffmpeg) when root, build
#                or reuse a ComfyUI tree and its venv (scripts/provision.sh);
#                writes their paths to .cache/env-*.mk
#   make test    setup, then the whole pytest suite, real-ComfyUI tests included
#                (extra pytest arguments: make test PYTEST_ARGS="-k server -x")
#                against ComfyUI 0.3.75; COMFYUI=0.33.0 (an archive in ../shared/comfyui)
#                or COMFYUI=/path/to/ComfyUI (a folder or archive) tests another one
#   make demo    setup, then run workflows/emocast_demo.json on the embedded demo model
#                (demo_model/) in a real ComfyUI server and print where the mp4 is
#                (DEMO_ARGS="--models DIR workflows/emocast_basic.json" for real weights)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
COMFYUI ?= 0.3.75
# One environment file per ComfyUI choice, so two choices can run side by side.
ENV_MK := .cache/env-$(shell printf '%s' '$(COMFYUI)' | sha256sum | cut -c1-12).mk
PYTEST_ARGS ?=
DEMO_ARGS ?=

# Environment of every test/demo process: the two provisioned paths, one
# thread per process (2 cores, a server beside pytest), offline model hubs,
# and bytecode caching back on (PYTHONDONTWRITEBYTECODE doubles import time).
RUN_ENV = set -a && . ./$(ENV_MK) && set +a && unset PYTHONDONTWRITEBYTECODE && \
	export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 &&

.PHONY: help setup test demo

help:
	@sed -n '3,12p' Makefile | sed 's/^# \{0,1\}//'

setup:
	@mkdir -p .cache
	@bash scripts/system_packages.sh
	@bash scripts/provision.sh '$(COMFYUI)' > $(ENV_MK).tmp
	@mv $(ENV_MK).tmp $(ENV_MK)
	@cat $(ENV_MK)

test: setup
	@$(RUN_ENV) export EMOCAST_REQUIRE_COMFY=1 && "$$EMOCAST_VENV/bin/python" -m pytest $(PYTEST_ARGS)

demo: setup
	@$(RUN_ENV) "$$EMOCAST_VENV/bin/python" -m scripts.runner.demo $(DEMO_ARGS)
