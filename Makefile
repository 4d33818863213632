# distill-guard: build, test and demo.
#
#   make          the nginx dynamic module: build/ngx_distill_guard_module.so
#   make test     install what is missing, build, run every test
#   make demo     install what is missing, build, run the demo
#   make lib      the engine as a static library (no nginx)
#   make unit     engine unit tests only (cmocka)
#   make bench    engine micro-benchmark (prints numbers, asserts nothing)
#   make bench-peers  the module beside plain nginx, limit_req and an
#                 OpenResty Lua limiter (installs the Lua packages)
#   make bench-scale  memory, CPU and latency from 1 to 1 M active keys
#   make fuzz     libFuzzer targets (clang)
#   make eval     detection evaluation on ../shared/data/prompts (CORPUS=)
#   make eval-features  template and topic measurements on the corpora

NGX_SRC   ?= /usr/share/nginx/src
BUILD     ?= $(CURDIR)/build
CORPUS    ?= $(CURDIR)/../shared/data/prompts
CC        ?= cc

WARN       = -Wall -Wextra -Werror
CFLAGS_DG  = -O2 -g -fPIC $(WARN) -Isrc -I$(BUILD)/gen
LIBS_DG    = -ljansson -lcrypto -lm

ENGINE_SRCS = $(wildcard src/dg_*.c)
ENGINE_OBJS = $(patsubst src/%.c,$(BUILD)/engine/%.o,$(ENGINE_SRCS)) \
              $(BUILD)/engine/dg_scripts.o
LUA         = src/dg_window.lua src/dg_fanout.lua
UNIT_SRCS   = $(wildcard t/unit/test_*.c)
UNIT_BINS   = $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
MODULE_SRCS = ngx_distill_guard_module.c ngx_distill_guard_module.h \
              ngx_distill_guard_conf.c \
              ngx_distill_guard_redis.c ngx_distill_guard_stats.c \
              ngx_distill_guard_limit.c

.PHONY: all module lib unit test demo deps bench bench-peers bench-scale \
        test-tools fuzz eval eval-features clean

all: module

module: $(BUILD)/ngx_distill_guard_module.so

# nginx's configure runs ./config, which embeds the Lua scripts: rerun it
# when they or the build script change.  Debian's flags (--with-compat)
# make the module binary compatible with the packaged nginx.
$(BUILD)/ngx/Makefile: config $(LUA) src/embed.sh
	@test -f $(NGX_SRC)/conf_flags || { \
	    echo "nginx-dev is missing: run 'make deps'"; exit 1; }
	@mkdir -p $(BUILD)
	cd $(NGX_SRC) && bash -c '. ./conf_flags && ./configure \
	    --with-cc-opt="-fPIC -O2 -g $(WARN) -Wno-unused-parameter" \
	    --with-ld-opt="-fPIC" "$${NGX_CONF_FLAGS[@]}" \
	    --add-dynamic-module=$(CURDIR) --builddir=$(BUILD)/ngx' \
	    > $(BUILD)/configure.log 2>&1 || \
	    { tail -30 $(BUILD)/configure.log; exit 1; }

$(BUILD)/ngx_distill_guard_module.so: $(BUILD)/ngx/Makefile $(MODULE_SRCS) \
        $(ENGINE_SRCS) $(wildcard src/*.h)
	$(MAKE) -s -f $(BUILD)/ngx/Makefile -C $(NGX_SRC) modules
	@# a new file, renamed over the old: a running nginx keeps its mapping
	cp $(BUILD)/ngx/ngx_distill_guard_module.so $@.tmp && mv -f $@.tmp $@

$(BUILD)/gen/dg_scripts.c: $(LUA) src/embed.sh
	@mkdir -p $(BUILD)/gen
	sh src/embed.sh $@ dg_window_lua=src/dg_window.lua \
	    dg_fanout_lua=src/dg_fanout.lua

$(BUILD)/engine/%.o: src/%.c $(wildcard src/*.h)
	@mkdir -p $(BUILD)/engine
	$(CC) $(CFLAGS_DG) -c $< -o $@

$(BUILD)/engine/dg_scripts.o: $(BUILD)/gen/dg_scripts.c
	@mkdir -p $(BUILD)/engine
	$(CC) $(CFLAGS_DG) -c $< -o $@

lib: $(BUILD)/libdg.a

$(BUILD)/libdg.a: $(ENGINE_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/unit/%: t/unit/%.c t/unit/dg_test.h $(BUILD)/libdg.a
	@mkdir -p $(BUILD)/unit
	$(CC) $(CFLAGS_DG) -It/unit $< -o $@ $(BUILD)/libdg.a -lcmocka \
	    $(LIBS_DG)

# the test tool of t/10-window-script.t: the scripts' replies decoded by
# the engine
$(BUILD)/unit/window_client: t/unit/window_client.c $(BUILD)/libdg.a
	@mkdir -p $(BUILD)/unit
	$(CC) $(CFLAGS_DG) $< -o $@ $(BUILD)/libdg.a -lhiredis $(LIBS_DG)

test-tools: $(BUILD)/unit/window_client

unit: $(UNIT_BINS)
	@bash t/run-unit.sh $(UNIT_BINS)

deps:
	@sh .ci/deps.sh

test: deps
	$(MAKE) module lib
	@bash t/run-all.sh

demo: deps
	$(MAKE) module
	@perl tools/demo.pl

$(BUILD)/bench_features: bench/bench_features.c $(BUILD)/libdg.a
	$(CC) $(CFLAGS_DG) $< -o $@ $(BUILD)/libdg.a $(LIBS_DG)

bench: $(BUILD)/bench_features
	$(BUILD)/bench_features $(CORPUS)

# side by side in one run: see bench/peers.md
bench-peers: deps
	@sh bench/deps.sh
	$(MAKE) module
	perl bench/peers.pl $(BENCH_ARGS)

# 1 to 1 M active keys: see bench/scale.md
bench-scale: deps
	$(MAKE) module
	perl bench/scale.pl $(BENCH_ARGS)

$(BUILD)/eval_features: tools/eval_features.c $(BUILD)/libdg.a
	$(CC) $(CFLAGS_DG) $< -o $@ $(BUILD)/libdg.a $(LIBS_DG)

# template fingerprints and topics measured on the corpora
eval-features: $(BUILD)/eval_features
	$(BUILD)/eval_features $(CORPUS)

# the detection evaluation: labeled scenarios through nginx + Redis
eval: module
	perl tools/replay.pl --check --corpus $(CORPUS)

FUZZ_SRCS = $(wildcard fuzz/fuzz_*.c)
fuzz: $(BUILD)/gen/dg_scripts.c
	@mkdir -p $(BUILD)/fuzz
	for f in $(FUZZ_SRCS); do \
	    clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
	        $$f $(ENGINE_SRCS) $(BUILD)/gen/dg_scripts.c \
	        -o $(BUILD)/fuzz/$$(basename $$f .c) $(LIBS_DG) || exit 1; \
	done

clean:
	rm -rf $(BUILD)
