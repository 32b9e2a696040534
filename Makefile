# dwop's developer entry points. The README's two commands are `make bench`
# (the main job) and `make test`; both create .venv and build what they need.
#
#   make build    .venv with the pinned requirements, the op library
#                 (dwop/_dwop_ops.so) and the C ABI (build/libdwop_c.so)
#   make test     build, then the whole test suite
#   make test-fast  the TensorFlow-free suites only (C ABI, CPU kernel, CUDA
#                 planner and emulator, build flags, fuzz model and C ABI
#                 sample): about a minute, for the edit-compile-test loop
#   make lint     clang-format (.clang-format) and ruff (pyproject.toml) over
#                 LINT_CC and LINT_PY
#   make print-flags  the compiler flags (declared in tools/build_flags.bzl)
#   make bench    build, then the benchmark (python/bench.py)
#   make lib PY=/path/to/python BUILD=dir   the op library against another
#                 interpreter's TensorFlow (what `pip install .` runs, with
#                 BUILD=build/pip-<platform>-<python>-tf<version>: one
#                 object directory per interpreter and TensorFlow version)
#   make cabi     only the framework-free C ABI (no TensorFlow needed)
#
# CUDA kernels are compiled and linked in when nvcc is on the PATH (or NVCC is
# set); DWOP_CUDA=0 turns them off.

SHELL := /bin/bash
.DEFAULT_GOAL := build

PYTHON ?= python3
VENV ?= .venv
PY ?= $(VENV)/bin/python
BUILD ?= build
CXX ?= g++

LIB ?= dwop/_dwop_ops.so
CABI := $(BUILD)/libdwop_c.so

# --- The compiler flags, declared once in tools/build_flags.bzl (which Bazel
# loads): KERNEL_COPTS, OPT_COPTS, CUDA_COPTS, CUDA_GENCODE and each special
# source's SOURCE_COPTS, as Make assignments in $(BUILD)/flags.mk (remade,
# and make restarted, whenever the .bzl changes). `make print-flags` shows
# them; tests/build_flags_test.py checks Make and Bazel agree.
FLAGS_MK := $(BUILD)/flags.mk
$(FLAGS_MK): tools/build_flags.bzl tools/build_flags.py
	@mkdir -p $(dir $@)
	$(PYTHON) tools/build_flags.py make > $@.tmp && mv $@.tmp $@
include $(FLAGS_MK)

# --- Framework-free kernels: compiled without TensorFlow's include path, so a
# stray TensorFlow include fails to compile.
CXXFLAGS ?= $(OPT_COPTS)
KERNEL_CXXFLAGS := $(KERNEL_COPTS) -fPIC -I. -MMD -MP $(CXXFLAGS)
# Each room (common, cpu, cuda) of cc/kernels; .cu.cc files go to nvcc.
KERNEL_SRCS := $(filter-out %.cu.cc,$(wildcard cc/kernels/*/*.cc))
KERNEL_OBJS := $(KERNEL_SRCS:%.cc=$(BUILD)/%.o)
CABI_OBJS := $(patsubst %.cc,$(BUILD)/%.o,$(wildcard cc/c_api/*.cc))

# --- CUDA (section owned by the CUDA build).
# cc/kernels/cuda/*.cu.cc are compiled by nvcc (no TensorFlow include path) for
# CUDA_GPU_ARCHS of tools/build_flags.bzl (CUDA_GENCODE), and linked with
# the static CUDA runtime
# into both libraries. The runtime's directory comes from CUDA_HOME when set,
# else from what nvcc itself reports (`nvcc --dryrun`: robust to wrappers).
# The emulator (cuda/emulator.cc) and planner are plain C++, always built.
DWOP_CUDA ?= 1
NVCC ?= $(shell command -v nvcc 2>/dev/null)
CUDA_OBJS :=
CUDA_LDFLAGS :=
CUDA_DEFINES :=
NVCC_FLAGS ?= $(OPT_COPTS)
ifneq ($(DWOP_CUDA),0)
ifneq ($(NVCC),)
CUDA_LIB_CANDIDATES := $(if $(CUDA_HOME),$(CUDA_HOME)/lib64 \
    $(CUDA_HOME)/targets/x86_64-linux/lib,$(shell $(NVCC) --dryrun -c -x cu \
    /dev/null -o /dev/null 2>&1 | sed -n 's/^\#\$$ LIBRARIES=//p' \
    | tr -d '"' | sed 's/-L//g'))
CUDA_LIBDIR := $(patsubst %/,%,$(dir $(firstword $(wildcard \
    $(addsuffix /libcudart_static.a,$(CUDA_LIB_CANDIDATES))))))
ifeq ($(CUDA_LIBDIR),)
$(error nvcc is $(NVCC) but libcudart_static.a is in none of [$(CUDA_LIB_CANDIDATES)]; set CUDA_HOME, or DWOP_CUDA=0 to build without CUDA)
endif
CUDA_SRCS := $(wildcard cc/kernels/cuda/*.cu.cc)
CUDA_OBJS := $(CUDA_SRCS:%.cu.cc=$(BUILD)/%.cu.o)
# The runtime's symbols stay private to our libraries (TensorFlow loads its
# own libcudart).
CUDA_LDFLAGS := -L$(CUDA_LIBDIR) -Wl,--exclude-libs,libcudart_static.a \
                -lcudart_static -ldl -lrt -lpthread
CUDA_DEFINES := -DGOOGLE_CUDA=1 -DDWOP_WITH_CUDA=1
endif
endif
CUDA_CXXFLAGS := $(CUDA_COPTS) -I. -MMD -MP $(CUDA_GENCODE) $(NVCC_FLAGS)

$(BUILD)/cc/kernels/%.cu.o: cc/kernels/%.cu.cc
	@mkdir -p $(dir $@)
	$(NVCC) $(CUDA_CXXFLAGS) -x cu -c $< -o $@

# The glue compiled with or without CUDA_DEFINES is rebuilt when DWOP_CUDA or
# the presence of nvcc changes (build/cuda.config records the last choice).
CUDA_CONFIG := cuda=$(if $(CUDA_OBJS),$(NVCC) $(CUDA_LIBDIR),off)
$(shell mkdir -p $(BUILD) && [ "$$(cat $(BUILD)/cuda.config 2>/dev/null)" = \
    '$(CUDA_CONFIG)' ] || echo '$(CUDA_CONFIG)' > $(BUILD)/cuda.config)
$(BUILD)/cc/tf/kernels.o $(BUILD)/cc/tf/info.o $(CABI_OBJS): \
    $(BUILD)/cuda.config

# --- TensorFlow glue. Flags come from the interpreter's tf.sysconfig, cached
# in $(BUILD)/tf/ (TensorFlow's headers are treated as system headers).
TF_SRCS := cc/tf/ops.cc cc/tf/kernels.cc
# cc/tf/info.cc: what `python -m dwop` asks the library (CPU ISA, CUDA built).
TF_SRCS := $(sort $(TF_SRCS) cc/tf/info.cc)
TF_OBJS := $(TF_SRCS:%.cc=$(BUILD)/%.o)
# The op library ships only what the ops run: not the CUDA host emulator
# (cc/kernels/cuda/emulator.cc), a test tool that only the C ABI links.
LIB_KERNEL_OBJS := $(filter-out $(BUILD)/cc/kernels/cuda/emulator.o,$(KERNEL_OBJS))
TF_CFG := $(BUILD)/tf/config
TF_CXXFLAGS = -fPIC -O2 -Wall -I. -MMD -MP $(shell cat $(TF_CFG).cflags) \
              -DDWOP_TF_VERSION='"$(shell cat $(TF_CFG).version)"' \
              $(CUDA_DEFINES)

.PHONY: build lib cabi test test-fast bench clean venv lint print-flags

build: venv
	$(MAKE) lib cabi PY=$(PY)

lib: $(LIB)
cabi: $(CABI)

# --- The pinned virtual environment.
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	touch $@

$(TF_CFG): python/tf_config.py
	@mkdir -p $(dir $@)
	$(PY) python/tf_config.py $(TF_CFG)

# Sources with flags of their own get SOURCE_COPTS (KERNEL_SOURCE_COPTS of
# tools/build_flags.bzl, in $(BUILD)/flags.mk): the CPU kernels once per ISA
# level, every cc/kernels/cpu/*_avx512.cc and *_avx2.cc with that level's -m
# flags (cpu/cpu.cc picks a level at run time; DWOP_CPU_ISA can force a lower
# one; the rest of the library stays portable), and the CUDA emulator at -O1.
$(BUILD)/cc/kernels/%.o: cc/kernels/%.cc
	@mkdir -p $(dir $@)
	$(CXX) $(KERNEL_CXXFLAGS) $(SOURCE_COPTS) -c $< -o $@

$(BUILD)/cc/c_api/%.o: cc/c_api/%.cc
	@mkdir -p $(dir $@)
	$(CXX) $(KERNEL_CXXFLAGS) $(CUDA_DEFINES) -c $< -o $@

$(BUILD)/cc/tf/%.o: cc/tf/%.cc $(TF_CFG)
	@mkdir -p $(dir $@)
	$(CXX) $(TF_CXXFLAGS) -c $< -o $@

$(LIB): $(TF_OBJS) $(LIB_KERNEL_OBJS) $(CUDA_OBJS) $(TF_CFG)
	$(CXX) -shared -o $@ $(TF_OBJS) $(LIB_KERNEL_OBJS) $(CUDA_OBJS) \
	    $(shell cat $(TF_CFG).lflags) $(CUDA_LDFLAGS) -Wl,--no-undefined

$(CABI): $(CABI_OBJS) $(KERNEL_OBJS) $(CUDA_OBJS)
	$(CXX) -shared -o $@ $^ $(CUDA_LDFLAGS) -lpthread -Wl,--no-undefined

# --- Running.
test: build
	$(PY) -m pytest tests

# The TensorFlow-free suites, for the edit-compile-test loop: the C ABI, the
# CPU kernel, the CUDA planner and emulator, the build flags, and the fuzzer's
# model, harness and C ABI sample. Only the C ABI is built.
TEST_FAST := tests/cabi_test.py $(wildcard tests/*kernel_test.py) \
             $(wildcard tests/gpu_*_test.py) tests/build_flags_test.py \
             tests/fuzz_test.py
# (less their cases that load TensorFlow or the op library)
TEST_FAST_FILTER := not tensorflow_sample and not test_corpus0 \
                    and not GpuRegistrationTest \
                    and not test_availability_is_consistent
# (.venv too, unless PY names another interpreter: a fresh clone has none.)
test-fast: cabi $(if $(filter $(VENV)/bin/python,$(PY)),venv)
	$(PY) -m pytest -q -k "$(TEST_FAST_FILTER)" $(TEST_FAST)

# The flags each build step gets (tools/build_flags.bzl, through flags.mk).
print-flags:
	@echo "kernels:   $(CXX) $(KERNEL_CXXFLAGS)"
	@echo "c_api:     $(CXX) $(KERNEL_CXXFLAGS) $(CUDA_DEFINES)"
	@echo "cuda:      $(NVCC) $(CUDA_CXXFLAGS)"
	@grep SOURCE_COPTS $(FLAGS_MK)

# --- Lint: clang-format (.clang-format, Google style as TensorFlow) over all
# C++ and ruff (pyproject.toml) over all Python, both pinned in
# requirements.txt.
LINT_CC := $(wildcard cc/*/*.cc cc/*/*.h cc/kernels/*/*.cc cc/kernels/*/*.h \
                      cc/kernels/*/*.inc tests/sanitize/*.cc \
                      tests/sanitize/*.h tools/*.cc)
LINT_PY := dwop python tests tools setup.py
# LINT_BIN and LINT_DEPS: lint tools installed elsewhere, e.g.
# `make lint LINT_BIN=$$HOME/lintvenv/bin LINT_DEPS=`.
LINT_BIN ?= $(VENV)/bin
LINT_DEPS ?= venv
lint: $(LINT_DEPS)
	$(LINT_BIN)/clang-format --dry-run --Werror $(LINT_CC)
	$(LINT_BIN)/ruff check $(LINT_PY)

bench: build
	$(PY) python/bench.py $(BENCH_ARGS)

# End-to-end Keras training step, stock vs dwop.enable() (python/bench_e2e.py):
# MobileNetV2, EfficientNetB0, ConvNeXtTiny, RepLKNet-style; BENCH_E2E_ARGS
# e.g. --quick, --models replknet, --out dir.
.PHONY: bench-e2e
bench-e2e: build
	PYTHONPATH=$(CURDIR) $(PY) python/bench_e2e.py $(BENCH_E2E_ARGS)

clean:
	rm -rf $(BUILD) $(LIB)

# --- Hardening: fuzzing, sanitizers, tensors of more than 2^31 elements.
#   make fuzz       python/fuzz/ (python -m fuzz): FUZZ_CABI_CASES calls
#                   through the C ABI, then FUZZ_CASES through TensorFlow, in
#                   child processes
#                   (FUZZ_SEED picks the campaign, FUZZ_JOBS runs children in
#                   parallel); `make test` runs a fixed-seed sample of it
#   make sanitize   the framework-free kernels and the C ABI built with
#                   ASan+UBSan (and, separately, TSan) in $(BUILD)/asan and
#                   $(BUILD)/tsan; replays SAN_CASES fuzz problems and the
#                   regression corpus through tests/sanitize/replay.cc (which
#                   links them statically, so LeakSanitizer runs too), then the
#                   C ABI fuzz sample and tests/cabi_test.py in Python with
#                   libasan preloaded
#   make test-large tests/large_test.py: 64-bit indexing on tensors of more
#                   than 2^31 elements (about 10 GiB of memory)
FUZZ_CASES ?= 10000
FUZZ_CABI_CASES ?= 20000
FUZZ_SEED ?= 0
FUZZ_JOBS ?= 1
SAN_CASES ?= 3000
SAN_SEED ?= 7
ASAN_BUILD := $(BUILD)/asan
TSAN_BUILD := $(BUILD)/tsan
ASAN_FLAGS := -fsanitize=address,undefined,float-cast-overflow \
              -fno-sanitize-recover=all -fno-omit-frame-pointer -g
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer -g
ASAN_RUN := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:check_initialization_order=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
TSAN_RUN := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
# Python is not instrumented: libasan must be loaded first, and Python's own
# never-freed allocations are not leaks worth reporting.
ASAN_PY := LD_PRELOAD=$(shell $(CXX) -print-file-name=libasan.so) \
           ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
           DWOP_CABI=$(ASAN_BUILD)/libdwop_c.so
SAN_REPLAY_SRC := tests/sanitize/replay.cc
FUZZ := PYTHONPATH=python$(if $(PYTHONPATH),:$(PYTHONPATH)) $(PY) -m fuzz

.PHONY: fuzz sanitize sanitize-build test-large

# Both campaigns, the export and the replay cover the three ops (filter
# gradient, forward, input gradient), drawn per case (python/fuzz/).

fuzz: build
	$(FUZZ) --backend cabi --cases $(FUZZ_CABI_CASES) \
	    --per-child 5000 --seed $(FUZZ_SEED) --jobs $(FUZZ_JOBS)
	$(FUZZ) --backend tf --cases $(FUZZ_CASES) \
	    --per-child 1000 --seed $(FUZZ_SEED) --jobs $(FUZZ_JOBS)

# The instrumented C ABI and replay driver of one sanitizer: every
# cc/kernels/*/*.cc (each ISA variant with its own flags, as in the normal
# build), without CUDA.
sanitize-build:
	$(MAKE) cabi BUILD=$(SAN_DIR) CXX="$(CXX) $(SAN_FLAGS)" CXXFLAGS=-O1 \
	    DWOP_CUDA=0
	$(CXX) $(SAN_FLAGS) -O1 $(KERNEL_COPTS) -I. $(SAN_REPLAY_SRC) \
	    $(patsubst %.cc,$(SAN_DIR)/%.o,$(wildcard cc/c_api/*.cc)) \
	    $(patsubst %.cc,$(SAN_DIR)/%.o,$(KERNEL_SRCS)) -lpthread \
	    -o $(SAN_DIR)/replay

sanitize: venv
	$(MAKE) sanitize-build SAN_DIR=$(ASAN_BUILD) SAN_FLAGS="$(ASAN_FLAGS)"
	$(MAKE) sanitize-build SAN_DIR=$(TSAN_BUILD) SAN_FLAGS="$(TSAN_FLAGS)"
	$(FUZZ) --export $(ASAN_BUILD)/cases.txt --cases $(SAN_CASES) \
	    --seed $(SAN_SEED) --include tests/fuzz_corpus.json
	@if ASAN_OPTIONS=abort_on_error=0 $(ASAN_BUILD)/replay --canary \
	    >/dev/null 2>&1; then \
	    echo "ASan did not catch the canary overflow"; exit 1; \
	else echo "ASan canary caught: the instrumentation is live"; fi
	$(ASAN_RUN) $(ASAN_BUILD)/replay $(ASAN_BUILD)/cases.txt
	$(TSAN_RUN) $(TSAN_BUILD)/replay $(ASAN_BUILD)/cases.txt
	$(ASAN_PY) $(FUZZ) --backend cabi --replay \
	    tests/fuzz_corpus.json
	for isa in avx512 avx2 generic; do \
	    DWOP_CPU_ISA=$$isa $(ASAN_PY) $(FUZZ) --backend cabi \
	    --cases 1000 --per-child 1000 --seed $(SAN_SEED) || exit 1; done
	$(ASAN_PY) $(PY) -m pytest tests/cabi_test.py

test-large: build
	DWOP_LARGE=1 $(PY) -m pytest tests/large_test.py

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
