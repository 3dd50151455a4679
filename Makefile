# binmalloc - build, test, install.
#
#   make / make all      cargo build --release (also regenerates include/binmalloc.h)
#   make test            everything below, in order, with a summary at the end:
#                          test-rust      cargo test --release
#                          check-header   include/binmalloc.h is current and clean
#                          check-library  libbinmalloc.so needs only libc and exports only the C ABI
#                          test-c         the C tests, preloaded / linked / static
#                          test-misuse    misuse is reported and aborts
#                          test-real      python, perl, git, gcc, bash, sort, tar under binmalloc
#                          test-loom      the lock algorithm under loom, every interleaving
#                          test-miri      the heap core's Rust tests under Miri
#                          test-course    the coursework library (course/, c_tests/course/)
#                          test-faults    out-of-memory handling by fault injection
#                          test-memory-return  freed memory leaves the resident set
#                          test-heapmap   the heap dump and its picture
#                          test-valgrind  memcheck finds no error of binmalloc's making
#                          test-suites    CPython's and numpy's own test suites, glibc vs binmalloc
#                          test-fuzz      fuzzed operation sequences (C harness, libFuzzer, cargo fuzz)
#                          check-install  make install + pkg-config into a scratch prefix
#   make stress          the multi-threaded C tests with STRESS_SCALE=10 (and longer runs of
#                        loom, fault, fuzz and suite stages)
#   make demo            a real program under binmalloc, with the statistics
#   make bench           scripts/bench.sh
#   make install         PREFIX=/usr/local, DESTDIR respected
#   make clean

CARGO    ?= cargo
CC       := $(if $(filter default,$(origin CC)),gcc,$(CC))
PREFIX   ?= /usr/local
DESTDIR  ?=
LIBDIR_INSTALL ?= $(PREFIX)/lib
INCDIR_INSTALL ?= $(PREFIX)/include

RELEASE  := target/release
LIB_SO   := $(RELEASE)/libbinmalloc.so
LIB_A    := $(RELEASE)/libbinmalloc.a
HEADER   := include/binmalloc.h
GENERATED_HEADER := target/binmalloc.h.generated
ABS_RELEASE := $(abspath $(RELEASE))

VERSION := $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)

BUILD    := build/tests
C_TESTS  := test_abi test_stress_mt test_fork test_thread_churn test_big test_rlimit
TEST_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -fno-builtin -pthread
# -fno-builtin: the tests call malloc/calloc/free for their effect; gcc must not
# fold calloc's zeroing, drop malloc/free pairs or constant-fold failures.

PRELOAD_BINS := $(addprefix $(BUILD)/preload/,$(C_TESTS))
LINKED_BINS  := $(addprefix $(BUILD)/linked/,$(C_TESTS) test_header test_heaps)
STATIC_BINS  := $(BUILD)/static/test_abi

.PHONY: all build test test-rust check-header check-library c-tests test-c test-misuse test-real \
        test-loom test-miri test-course test-faults test-memory-return test-heapmap test-valgrind test-suites test-fuzz \
        check-install stress demo bench install uninstall clean

all: build

build:
	$(CARGO) build --release

$(LIB_SO) $(LIB_A) $(GENERATED_HEADER): build

# ------------------------------------------------------------------ tests ---

test:
	@scripts/test_all.sh

test-rust:
	$(CARGO) test --release

check-header: build
	@scripts/test_header.sh

check-library: build
	@scripts/test_library.sh

c-tests: build $(PRELOAD_BINS) $(LINKED_BINS) $(STATIC_BINS)

$(BUILD)/preload/%: c_tests/%.c c_tests/common.h $(HEADER)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) $< -o $@ -ldl

$(BUILD)/linked/%: c_tests/%.c c_tests/common.h $(LIB_SO) $(HEADER)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -Iinclude $< -o $@ -L$(RELEASE) -Wl,--no-as-needed -lbinmalloc \
		-Wl,-rpath,$(ABS_RELEASE) -ldl

# statically linked: malloc comes from libbinmalloc.a inside the executable;
# -rdynamic exports binmalloc_* so that dlsym finds them
$(BUILD)/static/%: c_tests/%.c c_tests/common.h $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -DBM_STATIC_LINK $< -o $@ -rdynamic $(LIB_A) -ldl -lm

test-c: c-tests
	@scripts/test_c.sh

test-misuse: build
	@scripts/test_misuse.sh

test-real: build
	@scripts/test_real_programs.sh

# suites kept beside these: the lock under loom, the heap core under Miri, the
# coursework library, fault injection, memory returned to the OS, the heap picture
test-loom:
	@scripts/test_loom.sh

test-miri:
	@scripts/test_miri.sh

test-course:
	@scripts/test_course.sh

test-faults: build
	@scripts/test_faults.sh

test-memory-return: build
	@scripts/test_memory_return.sh

test-heapmap: build
	@scripts/test_heapmap.sh

test-valgrind: build
	@scripts/test_valgrind.sh

test-suites: build
	@scripts/test_suites.sh

test-fuzz: build
	@scripts/test_fuzz.sh

# Install into a scratch prefix (twice: with DESTDIR, and as a real prefix that
# pkg-config then describes), build a program with `pkg-config binmalloc`, run it.
check-install: build
	@set -e; tmp=$$(mktemp -d /tmp/binmalloc-install.XXXXXX); trap 'rm -rf "$$tmp"' EXIT; \
	$(MAKE) --no-print-directory -s install DESTDIR=$$tmp/stage PREFIX=/opt/binmalloc >/dev/null; \
	for f in lib/libbinmalloc.so lib/libbinmalloc.a include/binmalloc.h lib/pkgconfig/binmalloc.pc; do \
		test -f $$tmp/stage/opt/binmalloc/$$f || { echo "check-install: DESTDIR install lacks $$f"; exit 1; }; \
	done; \
	grep -q '^prefix=/opt/binmalloc$$' $$tmp/stage/opt/binmalloc/lib/pkgconfig/binmalloc.pc || \
		{ echo "check-install: binmalloc.pc does not name the prefix"; exit 1; }; \
	$(MAKE) --no-print-directory -s install PREFIX=$$tmp/prefix >/dev/null; \
	export PKG_CONFIG_PATH=$$tmp/prefix/lib/pkgconfig; \
	pkg-config --exists binmalloc || { echo "check-install: pkg-config cannot find binmalloc"; exit 1; }; \
	test "$$(pkg-config --modversion binmalloc)" = "$(VERSION)" || { echo "check-install: wrong version"; exit 1; }; \
	$(CC) -O2 -Wall -Werror c_tests/test_install.c -o $$tmp/hello $$(pkg-config --cflags --libs binmalloc) \
		-Wl,-rpath,$$tmp/prefix/lib; \
	ldd $$tmp/hello | grep -q "$$tmp/prefix/lib/libbinmalloc.so" || { echo "check-install: not linked to the installed library"; exit 1; }; \
	$$tmp/hello; \
	$(CC) -O2 -Wall -Werror c_tests/test_install.c -o $$tmp/hello-static $$(pkg-config --cflags binmalloc) \
		$$tmp/prefix/lib/libbinmalloc.a -lpthread -ldl -lm; \
	! ldd $$tmp/hello-static | grep -q libbinmalloc || { echo "check-install: static program loads libbinmalloc.so"; exit 1; }; \
	$$tmp/hello-static; \
	echo "check-install: 2 passed, 0 failed"

stress: c-tests
	@scripts/test_c.sh --stress
	@STRESS=1 scripts/test_loom.sh
	@STRESS=1 scripts/test_faults.sh
	@STRESS=1 scripts/test_fuzz.sh
	@STRESS=1 scripts/test_suites.sh

demo: build
	@scripts/demo.sh

bench: build
	@scripts/bench.sh

# ---------------------------------------------------------------- install ---

# Installs what `make` built (building it first only if it is missing, so that
# `sudo make install` does not run cargo as root).
install:
	@test -f $(LIB_SO) -a -f $(LIB_A) -a -f $(HEADER) || $(MAKE) --no-print-directory build
	install -d $(DESTDIR)$(LIBDIR_INSTALL) $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig $(DESTDIR)$(INCDIR_INSTALL)
	install -m 0755 $(LIB_SO) $(DESTDIR)$(LIBDIR_INSTALL)/libbinmalloc.so
	install -m 0644 $(LIB_A) $(DESTDIR)$(LIBDIR_INSTALL)/libbinmalloc.a
	install -m 0644 $(HEADER) $(DESTDIR)$(INCDIR_INSTALL)/binmalloc.h
	printf '%s\n' \
		'prefix=$(PREFIX)' \
		'libdir=$(LIBDIR_INSTALL)' \
		'includedir=$(INCDIR_INSTALL)' \
		'' \
		'Name: binmalloc' \
		'Description: malloc replacement: size-headered blocks on segregated bins' \
		'Version: $(VERSION)' \
		'Libs: -L$${libdir} -lbinmalloc' \
		'Libs.private: -lpthread -ldl -lm' \
		'Cflags: -I$${includedir}' \
		> $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig/binmalloc.pc
	chmod 0644 $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig/binmalloc.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR_INSTALL)/libbinmalloc.so $(DESTDIR)$(LIBDIR_INSTALL)/libbinmalloc.a \
		$(DESTDIR)$(INCDIR_INSTALL)/binmalloc.h $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig/binmalloc.pc

clean:
	$(CARGO) clean
	rm -rf build
