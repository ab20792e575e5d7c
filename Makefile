# postwarden build. Sources are found by wildcard: a new file in a module folder,
# tests/unit/test_*.c or tests/fuzz/fuzz_*.c is built without editing this file.
#
#   make            release build: build/rel/postwarden
#   make run        install missing packages, build, serve in the foreground
#   make check      install missing packages, build, run every test
#   make asan       sanitizer build used by the tests: build/asan/postwarden

CC      ?= cc
PKGS     = openssl libunbound libevent libevent_openssl libevent_pthreads sqlite3 jansson librnp ldns libcurl libpq libidn2 zlib
# One package at a time: --cflags follows each .pc file's Requires.private, and a fresh
# machine lacks some of those (libcurl's), which would empty the whole list (libpq's
# headers are outside the default include path).
PKG_CFLAGS := $(sort $(foreach p,$(PKGS),$(shell pkg-config --cflags $(p) 2>/dev/null)))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
# make install puts the files under $(DESTDIR)$(PREFIX); serve looks for the settings page
# in $(PREFIX)/share/postwarden/www, so PREFIX is built in (PW_PREFIX in config.h).
PREFIX  ?= /usr/local
DESTDIR ?=
CPPFLAGS = -D_GNU_SOURCE -Isrc -Isrc/lib -Isrc/core -DPW_PREFIX='"$(PREFIX)"'
BASE_CFLAGS = -std=c11 -g $(WARN) $(PKG_CFLAGS)

VARIANT ?= rel
ifeq ($(VARIANT),asan)
VCFLAGS  = -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
VLDFLAGS = -fsanitize=address,undefined
else
VCFLAGS  = -O2
VLDFLAGS =
endif

# GEN_SRCS are made by rules below (from files kept in git), never kept in git themselves
GEN_SRCS    = build/gen/acct_openapi_doc.c
SRC_MODULES = $(wildcard src/lib/*.c src/core/*.c src/relay/*.c src/keys/*.c src/keydir/*.c src/keysearch/*.c src/ctmon/*.c src/migrate/*.c src/account/*.c) $(filter-out src/cli/main.c,$(wildcard src/cli/*.c)) $(GEN_SRCS)
B           = build/$(VARIANT)
MOD_OBJS    = $(SRC_MODULES:%.c=$(B)/%.o)
MAIN_OBJ    = $(B)/src/cli/main.o
UNIT_SRCS   = $(wildcard tests/unit/test_*.c)
UNIT_BINS   = $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRCS   = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS   = $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_MODS   = $(SRC_MODULES:%.c=build/fuzz/%.o)
FUZZ_SECONDS ?= 5
PYTHON      = /usr/bin/python3
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all asan run check deps deps-test unit fuzz integration clean bench install

all: $(B)/postwarden

$(B)/postwarden: $(MOD_OBJS) $(MAIN_OBJ)
	$(CC) $(VLDFLAGS) -o $@ $^ $(PKG_LIBS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(BASE_CFLAGS) $(VCFLAGS) -MMD -MP -c -o $@ $<

$(B)/tests/%: tests/unit/%.c $(MOD_OBJS) tests/unit/unit.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests/unit $(BASE_CFLAGS) $(VCFLAGS) $(VLDFLAGS) -o $@ $< $(MOD_OBJS) $(PKG_LIBS)

# libFuzzer targets: clang, every module compiled with coverage instrumentation.
build/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(BASE_CFLAGS) -O1 -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c -o $@ $<

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_MODS)
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(BASE_CFLAGS) -O1 -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_MODS) $(PKG_LIBS)

asan:
	$(MAKE) VARIANT=asan all

# The objects that use PW_PREFIX are rebuilt when PREFIX changes.
$(B)/src/core/config.o $(B)/src/account/acct_http.o build/fuzz/src/core/config.o \
build/fuzz/src/account/acct_http.o: $(B)/prefix
.PHONY: FORCE
$(B)/prefix: FORCE
	@mkdir -p $(B)
	@echo '$(PREFIX)' | cmp -s - $@ || echo '$(PREFIX)' > $@

# The release binary, the man pages, the settings page and the Roundcube plugin.
SHARE = $(DESTDIR)$(PREFIX)/share/postwarden
install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(PREFIX)/share/man/man5 $(SHARE)
	install -m 0755 $(B)/postwarden $(DESTDIR)$(PREFIX)/sbin/postwarden
	install -m 0644 docs/postwarden.8 $(DESTDIR)$(PREFIX)/share/man/man8/postwarden.8
	install -m 0644 docs/postwarden.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/postwarden.conf.5
	@set -e; for top in www:www contrib/roundcube/postwarden:roundcube; do \
		src=$${top%%:*}; dst=$(SHARE)/$${top#*:}; rm -rf "$$dst"; \
		(cd $$src && find . -type f) | while read -r f; do \
			install -D -m 0644 "$$src/$$f" "$$dst/$$f"; done; \
	done

# The OpenAPI description is built into serve (GET /v1/openapi.json on the account listener).
build/gen/acct_openapi_doc.c: docs/openapi.json scripts/embed.sh
	@mkdir -p $(dir $@)
	scripts/embed.sh docs/openapi.json acct_openapi_doc $@ > $@.tmp && mv $@.tmp $@

deps:
	@scripts/install-deps.sh

deps-test:
	@scripts/install-deps.sh --test
	@scripts/check-tools.sh

run: deps
	$(MAKE) all
	@mkdir -p var
	@[ -f postwarden.conf ] || cp etc/postwarden.conf.example postwarden.conf
	$(B)/postwarden -c postwarden.conf serve

unit:
	$(MAKE) VARIANT=asan unit-bins
	@set -e; for t in $(UNIT_SRCS:tests/unit/%.c=build/asan/tests/%); do \
		echo "== $$t"; $$t; done

.PHONY: unit-bins
unit-bins: $(UNIT_BINS)

.PHONY: fuzz-bins
fuzz-bins: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do \
		name=$$(basename $$f); corpus=tests/fuzz/corpus/$${name#fuzz_}; \
		mkdir -p build/fuzz/corpus/$$name; \
		echo "== $$name ($(FUZZ_SECONDS)s)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=0 \
			build/fuzz/corpus/$$name $$( [ -d $$corpus ] && echo $$corpus ) 2>&1 | tail -n 3; \
	done

integration:
	$(MAKE) VARIANT=asan all
	$(MAKE) VARIANT=rel all
	POSTWARDEN=$(CURDIR)/build/asan/postwarden $(PYTHON) -m pytest -q -x tests/integration
	@# the relay, key directory and key search tests (marked engines) again on PostgreSQL
	PW_TEST_DB=postgresql POSTWARDEN=$(CURDIR)/build/asan/postwarden \
		$(PYTHON) -m pytest -q -x -m engines tests/integration

check: deps-test
	$(MAKE) -j$(JOBS) all
	$(MAKE) -j$(JOBS) VARIANT=asan all unit-bins
	$(MAKE) unit
	$(MAKE) -j$(JOBS) fuzz-bins
	$(MAKE) fuzz
	$(MAKE) integration

bench:
	@scripts/install-deps.sh --bench
	$(MAKE) VARIANT=rel all
	$(PYTHON) bench/relay_bench.py
	$(PYTHON) bench/keydir_bench.py
	$(PYTHON) bench/keysearch_bench.py
	$(PYTHON) bench/migrate_bench.py

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
