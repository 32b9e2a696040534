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

LIB := dwop/_dwop_ops.so
CABI := $(BUILD)/libdwop_c.so

# --- Framework-free kernels: compiled without TensorFlow's include path, so a
# stray TensorFlow include fails to compile.
CXXFLAGS ?= -O3
KERNEL_CXXFLAGS := -std=c++17 -fPIC -fvisibility=hidden -Wall -Wextra \
                   -Werror=return-type -I. -MMD -MP $(CXXFLAGS)
KERNEL_SRCS := $(wildcard cc/kernels/*.cc)
KERNEL_OBJS := $(KERNEL_SRCS:%.cc=$(BUILD)/%.o)
CABI_OBJS := $(BUILD)/cc/c_api/dwop_c.o

# --- CUDA (section owned by the CUDA build).
DWOP_CUDA ?= 1
NVCC ?= $(shell command -v nvcc 2>/dev/null)
CUDA_OBJS :=
CUDA_LDFLAGS :=
CUDA_DEFINES :=

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

# The CPU kernel is compiled once per ISA level; cc/kernels/cpu.cc picks one
# at run time (DWOP_CPU_ISA can force a lower one). Only these objects get
# -m flags: the rest of the library stays portable.
$(BUILD)/cc/kernels/cpu_avx512.o: ISA_FLAGS := -mavx512f -mavx512bw -mavx512vl \
    -mavx512dq -mavx2 -mfma -mf16c
$(BUILD)/cc/kernels/cpu_avx2.o: ISA_FLAGS := -mavx2 -mfma -mf16c

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
	$(PY) python/bench.py

clean:
	rm -rf $(BUILD) $(LIB)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
