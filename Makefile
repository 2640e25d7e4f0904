# SPDX-License-Identifier: MIT
# ragd - one GNU Makefile. Targets:
#   make            build ./ragd (optimised)
#   make run        install dependencies if missing, build, serve the repo's docs/ on 127.0.0.1:8088
#   make test       install dependencies if missing, build with ASan+UBSan, run unit + integration tests
#   make asan       build the sanitizer binary and unit tests only (build/asan/)
#   make bench      benchmarks (bench/), never part of the tests
#   make fuzz       the libFuzzer targets (tests/fuzz/, clang), FUZZ_SECONDS (60) seconds each
#   make install    PREFIX=/usr/local DESTDIR= ; make clean
.DEFAULT_GOAL := all
SHELL := /bin/bash

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= cc
CXX     ?= g++
PKGS    := jansson sqlite3 libcurl hiredis inih libcrypto poppler-glib libpq \
           cairo tesseract lept libzip libxml-2.0

# Loaded on first use with dlopen (src/optlib.c), not linked: compiled against, never on the link
# line, so a ragd process that reads no PDF does not pay for mapping them (bench/NOTES.md, s7 A).
OPTLIB_PKGS := poppler-glib cairo tesseract lept

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(filter-out $(OPTLIB_PKGS),$(PKGS)) 2>/dev/null)

# The soname of each library src/optlib.c opens, read from the development symlink in the libdir
# pkg-config names (pkg-config package, file name). Evaluated lazily, when optlib.o is compiled:
# `make test` installs the dependencies first. A soname that cannot be found stops the build.
optlib_soname = $(shell objdump -p "$$(pkg-config --variable=libdir $(1) 2>/dev/null)/$(2).so" \
    2>/dev/null | awk '$$1 == "SONAME" {print $$2}')
optlib_define = -D$(1)='"$(or $(call optlib_soname,$(2),$(3)),$(error cannot determine the \
    soname of $(3).so (pkg-config $(2); objdump -p): install the dependencies (make deps)))"'
OPTLIB_SONAMES = $(call optlib_define,RAGD_SONAME_POPPLER_GLIB,poppler-glib,libpoppler-glib) \
    $(call optlib_define,RAGD_SONAME_GOBJECT,gobject-2.0,libgobject-2.0) \
    $(call optlib_define,RAGD_SONAME_GLIB,glib-2.0,libglib-2.0) \
    $(call optlib_define,RAGD_SONAME_CAIRO,cairo,libcairo) \
    $(call optlib_define,RAGD_SONAME_TESSERACT,tesseract,libtesseract)

# FAISS: Debian's libfaiss-dev ships the C API headers but not their implementation. Use a system
# libfaiss_c when one exists; otherwise compile our own shim (src/store_faiss_capi.cpp).
FAISS_C_LIB := $(firstword $(wildcard /usr/lib/*/libfaiss_c.so /usr/lib/libfaiss_c.so /usr/local/lib/libfaiss_c.so))
ifeq ($(FAISS_C_LIB),)
  CXX_SRCS  := src/store_faiss_capi.cpp
  FAISS_LIBS := -Wl,-Bstatic -lfaiss -Wl,-Bdynamic -fopenmp -lopenblas -llapack
else
  CXX_SRCS  :=
  FAISS_LIBS := -lfaiss_c -lfaiss -fopenmp -lopenblas -llapack
endif
# ragd's own FAISS index classes (SIMD kernels; src/store_faiss_simd.cpp), with either C API.
CXX_SRCS += src/store_faiss_simd.cpp
# Growing an index's storage without a second resident copy (src/store_faiss_grow.cpp).
CXX_SRCS += src/store_faiss_grow.cpp
# ragd's own walk of FAISS's HNSW graph (prefetch, visited marks by generation).
CXX_SRCS += src/store_hnsw_walk.cpp

WARN      := -Wall -Wextra -Wformat=2 -Werror
CFLAGS_COMMON   := -std=c11 -D_GNU_SOURCE -Iinclude $(WARN) -MMD -MP -pthread -fopenmp $(PKG_CFLAGS)
CXXFLAGS_COMMON := -std=c++17 -Iinclude $(WARN) -MMD -MP -pthread -fopenmp
LDLIBS_ALL := $(PKG_LIBS) $(FAISS_LIBS) -lm -pthread

OPT_FLAGS  := -O2 -g
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

C_SRCS   := $(sort $(wildcard src/*.c))
LIB_C    := $(filter-out src/main.c,$(C_SRCS))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))

REL := $(BUILD)/release
ASN := $(BUILD)/asan

rel_objs = $(patsubst src/%.c,$(REL)/%.o,$(1))
asn_objs = $(patsubst src/%.c,$(ASN)/%.o,$(1))

# The sonames go to src/optlib.c only (recursive variable: expanded when the recipe runs).
OPTLIB_DEFS :=
$(REL)/optlib.o $(ASN)/optlib.o $(BUILD)/fuzz/optlib.o: OPTLIB_DEFS = $(OPTLIB_SONAMES)

REL_LIB_OBJS := $(call rel_objs,$(LIB_C)) $(patsubst src/%.cpp,$(REL)/%.o,$(CXX_SRCS))
ASN_LIB_OBJS := $(call asn_objs,$(LIB_C)) $(patsubst src/%.cpp,$(ASN)/%.o,$(CXX_SRCS))
UNIT_BINS := $(patsubst tests/unit/%.c,$(ASN)/tests/%,$(UNIT_SRCS))

.PHONY: all deps run test test-run asan bench install uninstall clean fuzz fuzz-build

all: ragd

deps:
	@bash scripts/install-deps.sh

# ---- release build -------------------------------------------------------------------------
$(REL)/%.o: src/%.c | $(REL)
	$(CC) $(CFLAGS_COMMON) $(OPTLIB_DEFS) $(OPT_FLAGS) -c $< -o $@
$(REL)/%.o: src/%.cpp | $(REL)
	$(CXX) $(CXXFLAGS_COMMON) $(OPT_FLAGS) -c $< -o $@
$(REL)/libragd.a: $(REL_LIB_OBJS)
	rm -f $@ && ar rcs $@ $^
$(REL)/ragd: $(REL)/main.o $(REL)/libragd.a
	$(CXX) $(OPT_FLAGS) -fopenmp -o $@ $^ $(LDLIBS_ALL)
ragd: $(REL)/ragd
	cp $< $@

# ---- sanitizer build -----------------------------------------------------------------------
$(ASN)/%.o: src/%.c | $(ASN)
	$(CC) $(CFLAGS_COMMON) $(OPTLIB_DEFS) $(ASAN_FLAGS) -c $< -o $@
$(ASN)/%.o: src/%.cpp | $(ASN)
	$(CXX) $(CXXFLAGS_COMMON) $(ASAN_FLAGS) -c $< -o $@
$(ASN)/libragd.a: $(ASN_LIB_OBJS)
	rm -f $@ && ar rcs $@ $^
$(ASN)/ragd: $(ASN)/main.o $(ASN)/libragd.a
	$(CXX) $(ASAN_FLAGS) -fopenmp -o $@ $^ $(LDLIBS_ALL)
$(ASN)/tests/%.o: tests/unit/%.c | $(ASN)/tests
	$(CC) $(CFLAGS_COMMON) $(ASAN_FLAGS) $(shell pkg-config --cflags cmocka 2>/dev/null) -c $< -o $@
$(ASN)/tests/%: $(ASN)/tests/%.o $(ASN)/libragd.a
	$(CXX) $(ASAN_FLAGS) -fopenmp -o $@ $^ $(shell pkg-config --libs cmocka 2>/dev/null) $(LDLIBS_ALL)

asan: $(ASN)/ragd $(UNIT_BINS)

$(REL) $(ASN) $(ASN)/tests:
	@mkdir -p $@

# ---- fuzzing: clang + libFuzzer, ASan + UBSan (tests/fuzz/) -----------------------------------
FUZZ_CC      ?= clang
FUZZ_CXX     ?= clang++
FUZZ_SECONDS ?= 60
FZ := $(BUILD)/fuzz
FUZZ_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,$(FZ)/fuzz_%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FZ_LIB_OBJS := $(patsubst src/%.c,$(FZ)/%.o,$(LIB_C)) $(patsubst src/%.cpp,$(FZ)/%.o,$(CXX_SRCS))

$(FZ)/%.o: src/%.c | $(FZ)
	$(FUZZ_CC) $(CFLAGS_COMMON) $(OPTLIB_DEFS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FZ)/%.o: src/%.cpp | $(FZ)
	$(FUZZ_CXX) $(CXXFLAGS_COMMON) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FZ)/libragd.a: $(FZ_LIB_OBJS)
	rm -f $@ && ar rcs $@ $^
$(FZ)/fuzz_%: tests/fuzz/fuzz_%.c $(FZ)/libragd.a
	$(FUZZ_CXX) -x c $(CFLAGS_COMMON) $(FUZZ_FLAGS) -fsanitize=fuzzer $< -x none $(FZ)/libragd.a \
	    -o $@ $(LDLIBS_ALL)

fuzz-build: $(FUZZ_TARGETS)

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@bash tests/fuzz/run.sh $(FZ) long $(FUZZ_SECONDS)

$(FZ):
	@mkdir -p $@

# ---- the README's commands -----------------------------------------------------------------
run: deps
	@$(MAKE) --no-print-directory ragd
	./ragd serve

test: deps
	@$(MAKE) --no-print-directory asan fuzz-build
	@bash tests/run.sh $(ASN)

bench: deps
	@$(MAKE) --no-print-directory ragd
	@bash bench/run.sh

install: ragd
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/ragd
	install -m 0755 ragd $(DESTDIR)$(PREFIX)/bin/ragd
	install -m 0644 config.example.ini README.md $(DESTDIR)$(PREFIX)/share/doc/ragd/
	install -m 0644 contrib/ragd.service contrib/ragd.logrotate $(DESTDIR)$(PREFIX)/share/doc/ragd/
	install -m 0755 contrib/ragd-backup.sh $(DESTDIR)$(PREFIX)/share/doc/ragd/
	install -d $(DESTDIR)$(PREFIX)/share/ragd
	install -m 0644 share/ragd/system_prompt.txt $(DESTDIR)$(PREFIX)/share/ragd/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/ragd
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/ragd $(DESTDIR)$(PREFIX)/share/ragd

clean:
	rm -rf $(BUILD) ragd

-include $(wildcard $(REL)/*.d $(ASN)/*.d $(ASN)/tests/*.d $(FZ)/*.d)
