# distill-guard: build, test and demo.
#
#   make          the nginx dynamic module: build/ngx_distill_guard_module.so,
#                 and the operator's CLI: build/distill-guard-ctl
#   make test     install what is missing, build, run every test
#   make demo     install what is missing, build, run the demo
#   make lib      the engine as a static library (no nginx)
#   make unit     engine unit tests only (cmocka)
#   make unit-asan  the same, built with AddressSanitizer and UBSan
#   make bench    engine micro-benchmark (prints numbers, asserts nothing)
#   make bench-peers  the module beside plain nginx, limit_req and an
#                 OpenResty Lua limiter (installs the Lua packages)
#   make bench-scale  memory, CPU and latency from 1 to 1 M active keys
#   make bench-cluster  one Redis beside a 3-master Redis Cluster, and the
#                 failover timeline of a master killed under load
#   make bench-tls    the module with Redis over plain TCP and over TLS
#   make fuzz     libFuzzer targets (clang)
#   make fuzz-run each target for FUZZ_SECONDS (60) on fuzz/corpus/<target>
#   make eval     detection evaluation on ../shared/data/prompts (CORPUS=)
#   make eval-features  template and topic measurements on the corpora

NGX_SRC   ?= /usr/share/nginx/src
BUILD     ?= $(CURDIR)/build
CORPUS    ?= $(CURDIR)/../shared/data/prompts
CC        ?= cc

WARN       = -Wall -Wextra -Werror
# CPPFLAGS, CFLAGS and LDFLAGS from the environment come last: the
# package's hardening flags (dpkg-buildflags) for distill-guard-ctl
CFLAGS_DG  = -O2 -g -fPIC $(WARN) -Isrc -I$(BUILD)/gen $(CPPFLAGS) $(CFLAGS)
LIBS_DG    = -lhiredis -ljansson -lcrypto -lm

ENGINE_SRCS = $(wildcard src/dg_*.c)
ENGINE_OBJS = $(patsubst src/%.c,$(BUILD)/engine/%.o,$(ENGINE_SRCS)) \
              $(BUILD)/engine/dg_scripts.o
LUA         = src/dg_window.lua src/dg_fanout.lua
UNIT_SRCS   = $(wildcard t/unit/test_*.c)
UNIT_BINS   = $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
MODULE_SRCS = ngx_distill_guard_module.c ngx_distill_guard_module.h \
              ngx_distill_guard_conf.c \
              ngx_distill_guard_redis.c ngx_distill_guard_redis.h \
              ngx_distill_guard_xchg.c ngx_distill_guard_window.c \
              ngx_distill_guard_stats.c \
              ngx_distill_guard_limit.c

.PHONY: all module module-nothreads lib ctl unit unit-asan test demo deps \
        bench bench-peers bench-scale bench-redis-cpu bench-cluster bench-tls \
        test-tools \
        fuzz fuzz-run eval eval-features deb clean

all: module ctl

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

# The same module from an nginx configured without --with-threads (still
# --with-compat, so Debian's nginx loads it): large bodies are then
# examined in the event loop.  Not part of `make test`:
#   make module-nothreads && DG_MODULE=build/nothreads/ngx_distill_guard_module.so prove t/
module-nothreads: config $(LUA) src/embed.sh $(MODULE_SRCS) $(ENGINE_SRCS)
	@mkdir -p $(BUILD)/nothreads
	cd $(NGX_SRC) && bash -c '. ./conf_flags && flags=() && \
	    for f in "$${NGX_CONF_FLAGS[@]}"; do \
	        [ "$$f" = --with-threads ] || flags+=("$$f"); done && \
	    ./configure \
	    --with-cc-opt="-fPIC -O2 -g $(WARN) -Wno-unused-parameter" \
	    --with-ld-opt="-fPIC" "$${flags[@]}" \
	    --add-dynamic-module=$(CURDIR) --builddir=$(BUILD)/nothreads/ngx' \
	    > $(BUILD)/nothreads/configure.log 2>&1 || \
	    { tail -30 $(BUILD)/nothreads/configure.log; exit 1; }
	! grep -q "define NGX_THREADS" $(BUILD)/nothreads/ngx/ngx_auto_config.h
	$(MAKE) -s -f $(BUILD)/nothreads/ngx/Makefile -C $(NGX_SRC) modules
	cp $(BUILD)/nothreads/ngx/ngx_distill_guard_module.so \
	    $(BUILD)/nothreads/ngx_distill_guard_module.so

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

ctl: $(BUILD)/distill-guard-ctl

$(BUILD)/distill-guard-ctl: ctl/distill_guard_ctl.c $(BUILD)/libdg.a
	$(CC) $(CFLAGS_DG) $(LDFLAGS) $< -o $@ $(BUILD)/libdg.a \
	    $(LIBS_DG)

$(BUILD)/libdg.a: $(ENGINE_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/unit/%: t/unit/%.c $(wildcard t/unit/*.h) $(BUILD)/libdg.a
	@mkdir -p $(BUILD)/unit
	$(CC) $(CFLAGS_DG) -It/unit $< -o $@ $(BUILD)/libdg.a -lcmocka \
	    $(LIBS_DG)

# the test tool of t/10-window-script.t: the scripts' replies decoded by
# the engine
$(BUILD)/unit/window_client: t/unit/window_client.c $(BUILD)/libdg.a
	@mkdir -p $(BUILD)/unit
	$(CC) $(CFLAGS_DG) $< -o $@ $(BUILD)/libdg.a $(LIBS_DG)

test-tools: $(BUILD)/unit/window_client

unit: $(UNIT_BINS)
	@bash t/run-unit.sh $(UNIT_BINS)

# The engine and its unit tests again, with AddressSanitizer and UBSan, in
# a build directory of their own; any report aborts the test binary.
SAN        = -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
             -fno-omit-frame-pointer
SAN_BUILD  = $(BUILD)/asan
SAN_OBJS   = $(patsubst src/%.c,$(SAN_BUILD)/engine/%.o,$(ENGINE_SRCS)) \
             $(SAN_BUILD)/engine/dg_scripts.o
SAN_BINS   = $(patsubst t/unit/%.c,$(SAN_BUILD)/unit/%,$(UNIT_SRCS))

$(SAN_BUILD)/engine/%.o: src/%.c $(wildcard src/*.h)
	@mkdir -p $(SAN_BUILD)/engine
	$(CC) $(CFLAGS_DG) $(SAN) -c $< -o $@

$(SAN_BUILD)/engine/dg_scripts.o: $(BUILD)/gen/dg_scripts.c
	@mkdir -p $(SAN_BUILD)/engine
	$(CC) $(CFLAGS_DG) $(SAN) -c $< -o $@

$(SAN_BUILD)/libdg.a: $(SAN_OBJS)
	rm -f $@
	ar rcs $@ $^

$(SAN_BUILD)/unit/%: t/unit/%.c $(wildcard t/unit/*.h) $(SAN_BUILD)/libdg.a
	@mkdir -p $(SAN_BUILD)/unit
	$(CC) $(CFLAGS_DG) $(SAN) -It/unit $< -o $@ $(SAN_BUILD)/libdg.a \
	    -lcmocka $(LIBS_DG)

unit-asan: $(SAN_BINS)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    bash t/run-unit.sh $(SAN_BINS)

deps:
	@sh .ci/deps.sh

# the package too: t/60-deb.t installs it, uses it and removes it
test: deps
	$(MAKE) module lib ctl deb test-tools
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

# the window calls' Redis CPU without nginx: see bench/redis.md
bench-redis-cpu: deps
	$(MAKE) lib
	perl bench/redis_cpu.pl $(BENCH_ARGS)

# one Redis, a Redis Cluster, a master killed: see bench/cluster.md
bench-cluster: deps
	$(MAKE) module
	perl bench/cluster.pl $(BENCH_ARGS)

# Redis over plain TCP beside Redis over TLS: see bench/tls.md
bench-tls: deps
	$(MAKE) module
	perl bench/tls.pl $(BENCH_ARGS)

$(BUILD)/eval_features: tools/eval_features.c $(BUILD)/libdg.a
	$(CC) $(CFLAGS_DG) $< -o $@ $(BUILD)/libdg.a $(LIBS_DG)

# template fingerprints and topics measured on the corpora
eval-features: $(BUILD)/eval_features
	$(BUILD)/eval_features $(CORPUS)

# the detection evaluation: labeled scenarios through nginx + Redis
eval: module
	perl tools/replay.pl --check --corpus $(CORPUS)

FUZZ_SRCS    = $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS    = $(patsubst fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
FUZZ_SECONDS ?= 60

fuzz: $(FUZZ_BINS)

$(BUILD)/fuzz/%: fuzz/%.c $(ENGINE_SRCS) $(wildcard src/*.h) \
        $(BUILD)/gen/dg_scripts.c
	@mkdir -p $(BUILD)/fuzz
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=all -Isrc $< $(ENGINE_SRCS) \
	    $(BUILD)/gen/dg_scripts.c -o $@ $(LIBS_DG)

# each target for FUZZ_SECONDS from its committed seeds; a crash stops the
# run and leaves the input in build/fuzz/artifacts/<target>/
fuzz-run: fuzz
	@for b in $(FUZZ_BINS); do \
	    sh fuzz/run.sh $$b $(FUZZ_SECONDS) || exit 1; \
	done

# The Debian package, built from a copy of the committed tree and the
# working tree's changes (not build/), so that nothing lands outside
# build/: build/deb/libnginx-mod-http-distill-guard_<version>_<arch>.deb,
# and lintian's report in build/deb/lintian.txt.
DEB_DIR = $(BUILD)/deb

deb:
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	git ls-files -z --cached --others --exclude-standard \
	    | xargs -0 -I{} cp --parents {} $(DEB_DIR)/src/ 2>/dev/null; true
	cd $(DEB_DIR)/src && dpkg-buildpackage -b -us -uc \
	    > $(DEB_DIR)/build.log 2>&1 || { tail -40 $(DEB_DIR)/build.log; \
	    exit 1; }
	-lintian --info $(DEB_DIR)/*.changes > $(DEB_DIR)/lintian.txt 2>&1
	@ls $(DEB_DIR)/*.deb
	@echo "lintian ($(DEB_DIR)/lintian.txt):"; cat $(DEB_DIR)/lintian.txt

clean:
	rm -rf $(BUILD)
