# hcpipe: a plain Makefile.
#
#   make                      build build/hcpipe
#   make deps                 install the Debian packages the build and the tests need
#   make test                 unit + integration tests (tests/run-all.sh prints "N passed, N failed")
#   make SANITIZER=address,undefined test   the same under ASan+UBSan (objects in build/<sanitizer>/)
#   make run                  build and serve the sample data on 127.0.0.1:8080
#   make bench                the benchmark (not part of the tests; BENCH_ONLY=data|events)
#   make lint                 clang-format check and banned-call grep
#
# Every .c under server/, routes/ and aws/ is part of the binary; every tests/unit/test_*.c is
# its own cmocka program linked against all of those objects but server/main.o.

# Builds use every core unless -j says otherwise.
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 1)

VERSION   := 0.1.0
comma     := ,
CC        ?= cc
SANITIZER ?=
PKGS      := libmicrohttpd gnutls jansson libcurl sqlite3 openssl uuid expat

ifeq ($(SANITIZER),)
BUILD     := build
SANFLAGS  :=
else
BUILD     := build/$(subst $(comma),-,$(SANITIZER))
SANFLAGS  := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
WARNINGS  := -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes -Wshadow \
             -Wpointer-arith -Wcast-qual -Wwrite-strings -Wundef -fno-common \
             -fstack-protector-strong
OPT       ?= -O2 -g
CPPFLAGS  += -D_GNU_SOURCE -DHCPIPE_VERSION='"$(VERSION)"' -I. -I$(BUILD)/gen
CFLAGS    += -std=c11 $(OPT) $(WARNINGS) $(SANFLAGS) $(shell pkg-config --cflags $(PKGS))
LDLIBS    += $(shell pkg-config --libs $(PKGS)) -lpthread -lm
LDFLAGS   += $(SANFLAGS)

SRCS      := $(wildcard server/*.c routes/*.c aws/*.c)
OBJS      := $(SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/embedded.o
LIBOBJS   := $(filter-out $(BUILD)/server/main.o,$(OBJS))
EMBEDDED  := $(sort $(wildcard sql/local/*.sql sql/athena/*.sql) \
             $(filter-out server/web/vendor,$(wildcard server/web/* server/web/vendor/*))) \
             $(BUILD)/gen/openapi.json
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test unit integration run bench lint fuzz fuzz-build clean
all: $(BUILD)/hcpipe
ifneq ($(SANITIZER),)
	@mkdir -p build && ln -sf $(notdir $(BUILD))/hcpipe build/hcpipe-$(subst $(comma),-,$(SANITIZER))
endif

$(BUILD)/hcpipe: $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

# Files served or executed from inside the binary (SQL texts, the OpenAPI document, the
# dashboard) are compiled in, so build/hcpipe is self-contained.
$(BUILD)/gen/openapi.json: openapi/openapi.yaml
	@mkdir -p $(dir $@)
	python3 -c 'import sys,json,yaml; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2],"w"), indent=1)' $< $@

$(BUILD)/gen/embedded.c: tests/embed.sh $(EMBEDDED)
	@mkdir -p $(dir $@)
	sh tests/embed.sh $(EMBEDDED) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/embedded.o: $(BUILD)/gen/embedded.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-missing-prototypes $(LDFLAGS) -o $@ $< $(LIBOBJS) \
		$(LDLIBS) -lcmocka

# tests/unit/test_fault.c: the fault-injection build (server/fault.h). The files with seams are
# compiled again with -DHCPIPE_FAULT_INJECTION, and hcpipe's allocations go through the fault
# wrappers at link time; every other program keeps the normal objects.
FAULT_SRCS := server/fault.c server/jobstore.c server/result.c
FAULT_OBJS := $(filter-out $(FAULT_SRCS:%.c=$(BUILD)/%.o),$(LIBOBJS)) $(FAULT_SRCS:%.c=$(BUILD)/fault/%.o)
FAULT_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup

$(BUILD)/fault/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $< (fault injection)"
	@$(CC) $(CPPFLAGS) -DHCPIPE_FAULT_INJECTION $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/test_fault: tests/unit/test_fault.c $(FAULT_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DHCPIPE_FAULT_INJECTION $(CFLAGS) -Wno-missing-prototypes $(LDFLAGS) \
		$(FAULT_WRAP) -o $@ $< $(FAULT_OBJS) $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)

test: $(BUILD)/hcpipe $(UNIT_BINS)
	HCPIPE_BIN=$(abspath $(BUILD)/hcpipe) HCPIPE_BUILD=$(abspath $(BUILD)) \
		SANITIZER=$(SANITIZER) bash tests/run-all.sh

deps:
	sh tests/deps.sh

run: $(BUILD)/hcpipe
	mkdir -p var/buckets/sample
	cp tests/data/sample_data.ndjson var/buckets/sample/facilities.ndjson
	$(BUILD)/hcpipe serve --listen 127.0.0.1:8080 --data-dir var --seed s3://sample/facilities.ndjson \
		--insecure-dev-events

# BENCH_ONLY=data (queries: tests/bench/run.sh) or BENCH_ONLY=events (POST /events intake:
# tests/bench/events.sh) runs one part; both by default.
BENCH_ONLY ?=
bench: $(BUILD)/hcpipe
	@case "$(BENCH_ONLY)" in "" | data | events) ;; *) echo "BENCH_ONLY: data or events" >&2; exit 2 ;; esac
	@if [ "$(BENCH_ONLY)" != events ]; then sh tests/bench/run.sh $(abspath $(BUILD)/hcpipe); fi
	@if [ "$(BENCH_ONLY)" != data ]; then sh tests/bench/events.sh $(abspath $(BUILD)/hcpipe); fi

# Fuzzing: every tests/fuzz/fuzz_*.c is a libFuzzer target linked against all library objects,
# built with clang under ASan+UBSan in build/fuzz/. Each runs FUZZ_SECONDS on a copy of its
# committed seed corpus tests/fuzz/corpus/<name>/ (new inputs go to build/fuzz/corpus/<name>/).
FUZZ_SECONDS ?= 300
FUZZ_CC      ?= clang
FUZZ_FLAGS   := -std=c11 -O1 -g -D_GNU_SOURCE -DHCPIPE_VERSION='"$(VERSION)"' -I. -Ibuild/fuzz/gen \
                $(shell pkg-config --cflags $(PKGS)) -fsanitize=address,undefined
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_LIBOBJS := $(filter-out build/fuzz/server/main.o,$(SRCS:%.c=build/fuzz/%.o)) build/fuzz/gen/embedded.o

build/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	@$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/gen/embedded.o: $(BUILD)/gen/embedded.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -c -o $@ $<

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIBOBJS)
	@echo "  FUZZLD  $@"
	@$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	bash tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

lint:
	clang-format --dry-run --Werror $(SRCS) $(wildcard server/*.h routes/*.h aws/*.h)
	! grep -nE '\b(sprintf|strcpy|strcat|strtok|atoi|gmtime|localtime)\s*\(' $(SRCS)

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(FAULT_SRCS:%.c=$(BUILD)/fault/%.d)
.SECONDARY:
