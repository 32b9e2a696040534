# dwop's developer entry points. The README's two commands are `make bench`
# (the main job) and `make test`; both create .venv and build what they need.
#
#   make build    .venv with the pinned requirements, the op library
#                 (dwop/_dwop_ops.so) and the C ABI (build/libdwop_c.so)
#   make test     build, then the whole test suite
#   make bench    build, then the benchmark (python/bench.py)
#   make lib PY=/path/to/python BUILD=dir   the op library against another
#                 interpreter's TensorFlow (what `pip install .` runs)
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

# --- Framework-free kernels: compiled without TensorFlow's include path, so a
# stray TensorFlow include fails to compile.
CXXFLAGS ?= -O3
KERNEL_CXXFLAGS := -std=c++17 -fPIC -fvisibility=hidden -Wall -Wextra \
                   -Werror=return-type -I. -MMD -MP $(CXXFLAGS)
# Each room (common, cpu, cuda) of cc/kernels; .cu.cc files go to nvcc.
KERNEL_SRCS := $(filter-out %.cu.cc,$(wildcard cc/kernels/*/*.cc))
KERNEL_OBJS := $(KERNEL_SRCS:%.cc=$(BUILD)/%.o)
CABI_OBJS := $(BUILD)/cc/c_api/dwop_c.o

# --- CUDA (section owned by the CUDA build).
# cc/kernels/cuda/*.cu.cc are compiled by nvcc (no TensorFlow include path) for
# sm_80 and sm_90 plus compute_90 PTX, and linked with the static CUDA runtime
# into both libraries. The runtime's directory comes from CUDA_HOME when set,
# else from what nvcc itself reports (`nvcc --dryrun`: robust to wrappers).
# The emulator (cuda/emulator.cc) and planner are plain C++, always built.
DWOP_CUDA ?= 1
NVCC ?= $(shell command -v nvcc 2>/dev/null)
CUDA_OBJS :=
CUDA_LDFLAGS :=
CUDA_DEFINES :=
CUDA_GENCODE ?= -gencode arch=compute_80,code=sm_80 \
                -gencode arch=compute_90,code=[sm_90,compute_90]
NVCC_FLAGS ?= -O3
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
# --threads 0: the gencode targets compile in parallel.
CUDA_CXXFLAGS := -std=c++17 -I. -MMD -MP $(CUDA_GENCODE) --threads 0 \
                 -Xcompiler -fPIC,-fvisibility=hidden,-Wall $(NVCC_FLAGS)

$(BUILD)/cc/kernels/%.cu.o: cc/kernels/%.cu.cc
	@mkdir -p $(dir $@)
	$(NVCC) $(CUDA_CXXFLAGS) -x cu -c $< -o $@

# The glue compiled with or without CUDA_DEFINES is rebuilt when DWOP_CUDA or
# the presence of nvcc changes (build/cuda.config records the last choice).
CUDA_CONFIG := cuda=$(if $(CUDA_OBJS),$(NVCC) $(CUDA_LIBDIR),off)
$(shell mkdir -p $(BUILD) && [ "$$(cat $(BUILD)/cuda.config 2>/dev/null)" = \
    '$(CUDA_CONFIG)' ] || echo '$(CUDA_CONFIG)' > $(BUILD)/cuda.config)
$(BUILD)/cc/tf/kernels.o $(BUILD)/cc/c_api/dwop_c.o: $(BUILD)/cuda.config

# The emulator is a test tool: keep its compile time down.
$(BUILD)/cc/kernels/cuda/emulator.o: KERNEL_CXXFLAGS += -O1

# --- TensorFlow glue. Flags come from the interpreter's tf.sysconfig, cached
# in $(BUILD)/tf/ (TensorFlow's headers are treated as system headers).
TF_SRCS := cc/tf/ops.cc cc/tf/kernels.cc
TF_OBJS := $(TF_SRCS:%.cc=$(BUILD)/%.o)
TF_CFG := $(BUILD)/tf/config
TF_CXXFLAGS = -fPIC -O2 -Wall -I. -MMD -MP $(shell cat $(TF_CFG).cflags) \
              -DDWOP_TF_VERSION='"$(shell cat $(TF_CFG).version)"' \
              $(CUDA_DEFINES)

.PHONY: build lib cabi test bench clean venv

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

# CPU kernels are compiled once per ISA level: every cc/kernels/cpu/*_avx512.cc
# and *_avx2.cc gets that level's flags (cpu/cpu.cc picks a level at run time;
# DWOP_CPU_ISA can force a lower one). Only these objects get -m flags: the
# rest of the library stays portable.
$(BUILD)/cc/kernels/cpu/%_avx512.o: ISA_FLAGS := -mavx512f -mavx512bw -mavx512vl \
    -mavx512dq -mavx2 -mfma -mf16c
$(BUILD)/cc/kernels/cpu/%_avx2.o: ISA_FLAGS := -mavx2 -mfma -mf16c

$(BUILD)/cc/kernels/%.o: cc/kernels/%.cc
	@mkdir -p $(dir $@)
	$(CXX) $(KERNEL_CXXFLAGS) $(ISA_FLAGS) -c $< -o $@

$(BUILD)/cc/c_api/%.o: cc/c_api/%.cc
	@mkdir -p $(dir $@)
	$(CXX) $(KERNEL_CXXFLAGS) $(CUDA_DEFINES) -c $< -o $@

$(BUILD)/cc/tf/%.o: cc/tf/%.cc $(TF_CFG)
	@mkdir -p $(dir $@)
	$(CXX) $(TF_CXXFLAGS) -c $< -o $@

$(LIB): $(TF_OBJS) $(KERNEL_OBJS) $(CUDA_OBJS) $(TF_CFG)
	$(CXX) -shared -o $@ $(TF_OBJS) $(KERNEL_OBJS) $(CUDA_OBJS) \
	    $(shell cat $(TF_CFG).lflags) $(CUDA_LDFLAGS) -Wl,--no-undefined

$(CABI): $(CABI_OBJS) $(KERNEL_OBJS) $(CUDA_OBJS)
	$(CXX) -shared -o $@ $^ $(CUDA_LDFLAGS) -lpthread -Wl,--no-undefined

# --- Running.
test: build
	$(PY) -m pytest tests

bench: build
	$(PY) python/bench.py $(BENCH_ARGS)

# End-to-end Keras training step, stock vs dwop.enable() (python/bench_e2e.py):
# MobileNetV2, EfficientNetB0, ConvNeXtTiny, RepLKNet-style; BENCH_E2E_ARGS
# e.g. --quick, --models replknet, --out dir.
.PHONY: bench-e2e
bench-e2e: build
	$(PY) python/bench_e2e.py $(BENCH_E2E_ARGS)

clean:
	rm -rf $(BUILD) $(LIB)

# --- Hardening: fuzzing, sanitizers, tensors of more than 2^31 elements.
#   make fuzz       python/fuzz.py: FUZZ_CABI_CASES calls through the C ABI,
#                   then FUZZ_CASES through TensorFlow, in child processes
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

.PHONY: fuzz sanitize sanitize-build test-large

fuzz: build
	$(PY) python/fuzz.py --backend cabi --cases $(FUZZ_CABI_CASES) \
	    --per-child 5000 --seed $(FUZZ_SEED) --jobs $(FUZZ_JOBS)
	$(PY) python/fuzz.py --backend tf --cases $(FUZZ_CASES) \
	    --per-child 1000 --seed $(FUZZ_SEED) --jobs $(FUZZ_JOBS)

# The instrumented C ABI and replay driver of one sanitizer: every
# cc/kernels/*/*.cc (each ISA variant with its own flags, as in the normal
# build), without CUDA.
sanitize-build:
	$(MAKE) cabi BUILD=$(SAN_DIR) CXX="$(CXX) $(SAN_FLAGS)" CXXFLAGS=-O1 \
	    DWOP_CUDA=0
	$(CXX) $(SAN_FLAGS) -O1 -std=c++17 -Wall -I. $(SAN_REPLAY_SRC) \
	    $(SAN_DIR)/cc/c_api/dwop_c.o \
	    $(patsubst %.cc,$(SAN_DIR)/%.o,$(KERNEL_SRCS)) -lpthread \
	    -o $(SAN_DIR)/replay

sanitize: venv
	$(MAKE) sanitize-build SAN_DIR=$(ASAN_BUILD) SAN_FLAGS="$(ASAN_FLAGS)"
	$(MAKE) sanitize-build SAN_DIR=$(TSAN_BUILD) SAN_FLAGS="$(TSAN_FLAGS)"
	$(PY) python/fuzz.py --export $(ASAN_BUILD)/cases.txt --cases $(SAN_CASES) \
	    --seed $(SAN_SEED) --include tests/fuzz_corpus.json
	@if ASAN_OPTIONS=abort_on_error=0 $(ASAN_BUILD)/replay --canary \
	    >/dev/null 2>&1; then \
	    echo "ASan did not catch the canary overflow"; exit 1; \
	else echo "ASan canary caught: the instrumentation is live"; fi
	$(ASAN_RUN) $(ASAN_BUILD)/replay $(ASAN_BUILD)/cases.txt
	$(TSAN_RUN) $(TSAN_BUILD)/replay $(ASAN_BUILD)/cases.txt
	$(ASAN_PY) $(PY) python/fuzz.py --backend cabi --replay \
	    tests/fuzz_corpus.json
	for isa in avx512 avx2 generic; do \
	    DWOP_CPU_ISA=$$isa $(ASAN_PY) $(PY) python/fuzz.py --backend cabi \
	    --cases 1000 --per-child 1000 --seed $(SAN_SEED) || exit 1; done
	$(ASAN_PY) $(PY) -m pytest tests/cabi_test.py

test-large: build
	DWOP_LARGE=1 $(PY) -m pytest tests/large_test.py

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
