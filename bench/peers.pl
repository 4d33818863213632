#!/usr/bin/perl
# The module beside its peers, measured side by side in one run: plain
# nginx, limit_req, an OpenResty Lua sliding-window limiter (one EVALSHA
# per request) with and without decoding the body, and distill_guard in
# shadow mode.  Every location answers with empty_gif (a POST through
# error_page 405), so what is
# measured is the cost of each guard, not an upstream's.
#
#   perl bench/peers.pl [--rounds 3] [--seconds 8] [--keys 1000]
#                       [--connections 32] [--only plain,guard]
#
# 2 vCPU: the nginx worker on CPU 1; wrk and redis-server on CPU 0.  wrk
# POSTs 1 KB OpenAI chat bodies (97 different ones) from --keys API keys
# in turn.  Rounds are interleaved (every location once per round);
# medians over the rounds, the best round in brackets.  CPU per request
# is utime + stime from /proc of the nginx worker and of redis-server,
# over the requests wrk completed.  A benchmark: it asserts nothing.
#
# Needs Debian's libnginx-mod-http-lua, lua-nginx-redis and lua-cjson
# (make bench-peers installs them when missing).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/lib";
use DG::Harness;
use DG::Bench;
use Getopt::Long;
use File::Temp qw(tempdir);
use POSIX qw(strftime);

my %opt = (rounds => 3, seconds => 8, keys => 1000, connections => 32,
           warmup => 2);
GetOptions(\%opt, 'rounds=i', 'seconds=i', 'keys=i', 'connections=i',
           'warmup=i', 'only=s')
    or die "usage: $0 [--rounds N] [--seconds S] [--keys K] "
         . "[--connections C] [--only LIST]\n";

die "wrk is missing: apt-get install wrk\n" unless `which wrk` =~ /\S/;
die "build the module first: make module\n" unless DG::Harness::have_module();
for my $f ('/usr/lib/nginx/modules/ngx_http_lua_module.so',
           '/usr/share/lua/5.1/nginx/redis.lua')
{
    die "$f is missing: apt-get install libnginx-mod-http-lua "
      . "lua-nginx-redis lua-cjson\n" unless -e $f;
}

my @LOC = (
    [plain     => 'plain (body read and discarded)'],
    [limit_req => '`limit_req` by key'],
    [lua       => 'OpenResty Lua + one EVALSHA sliding window'],
    [lua_body  => 'Lua that also reads and decodes the body (`lua-cjson`)'],
    [guard     => '**distill_guard, shadow mode**'],
);
if ($opt{only}) {
    my %only = map { $_ => 1 } split /,/, $opt{only};
    @LOC = grep { $only{ $_->[0] } } @LOC;
}

# The Lua peer: an exact sliding-window log (ZSET of the key's requests,
# scored by time), one EVALSHA per request; the limit is set high so
# that, like the module in shadow mode, it refuses nothing and every
# request does the whole work.
my $SLIDING = <<'LUA';
local key, now, win = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - win)
local n = redis.call('ZCARD', key)
if n < tonumber(ARGV[3]) then
    redis.call('ZADD', key, now, ARGV[4])
    redis.call('PEXPIRE', key, win)
end
return n
LUA
(my $sliding_lua = $SLIDING) =~ s/([\\'])/\\$1/g;
$sliding_lua =~ s/\n/\\n/g;

my $redis = DG::Harness::Redis->start;

my $http = <<'CONF';
    distill_guard_secret bench-secret;
    distill_guard_redis %%REDIS%% timeout=200ms;
    distill_guard_window 1h;
    access_log off;
    client_body_buffer_size 16k;
    client_max_body_size 1m;

    limit_req_zone $http_authorization zone=perkey:32m rate=1000000r/s;

    lua_package_path '/usr/share/lua/5.1/?.lua;;';
    init_by_lua_block {
        cjson = require 'cjson.safe'
        redis = require 'nginx.redis'
        SLIDING = '@@SLIDING@@'
        SLIDING_SHA = nil
        peer_seq = 0
        function peer_limit(extra)
            local auth = ngx.var.http_authorization or ''
            local key = auth:gsub('^Bearer ', '')
            local r = redis:new()
            r:set_timeouts(200, 200, 200)
            local ok, err = r:connect('127.0.0.1', @@REDIS_PORT@@)
            if not ok then
                ngx.log(ngx.ERR, 'redis: ', err)
                return
            end
            peer_seq = peer_seq + 1
            local now = ngx.now() * 1000
            local member = ngx.worker.pid() .. ':' .. peer_seq .. extra
            if not SLIDING_SHA then
                SLIDING_SHA = r:script('load', SLIDING)
            end
            local n, e = r:evalsha(SLIDING_SHA, 1, 'peer:{' .. key .. '}',
                                   now, 3600000, 1000000000, member)
            if not n and e and e:find('NOSCRIPT') then
                SLIDING_SHA = r:script('load', SLIDING)
                n, e = r:evalsha(SLIDING_SHA, 1, 'peer:{' .. key .. '}',
                                 now, 3600000, 1000000000, member)
            end
            r:set_keepalive(10000, 64)
            if not n then
                ngx.log(ngx.ERR, 'redis: ', e)
            end
        end
    }

    server {
        listen 127.0.0.1:%%PORT%%;

        # empty_gif answers GET and HEAD only: a POST gets 405, which
        # discards the body and is turned into the GIF
        error_page 405 =200 /gif;

        location = /gif {
            empty_gif;
        }

        location /plain {
            empty_gif;
        }

        location /limit_req {
            limit_req zone=perkey burst=1000000 nodelay;
            empty_gif;
        }

        location /lua {
            access_by_lua_block {
                peer_limit('')
            }
            empty_gif;
        }

        location /lua_body {
            access_by_lua_block {
                ngx.req.read_body()
                local body = ngx.req.get_body_data() or ''
                local j = cjson.decode(body)
                local text = ''
                if type(j) == 'table' and type(j.messages) == 'table' then
                    for i = #j.messages, 1, -1 do
                        local m = j.messages[i]
                        if type(m) == 'table' and m.role == 'user'
                           and type(m.content) == 'string'
                        then
                            text = m.content
                            break
                        end
                    end
                end
                peer_limit(':' .. #text)
            }
            empty_gif;
        }

        location /guard {
            distill_guard on;
            distill_guard_mode shadow;
            empty_gif;
        }
    }
CONF
$http =~ s/\@\@SLIDING\@\@/$sliding_lua/;
$http =~ s/\@\@REDIS_PORT\@\@/$redis->port/e;

my $ngx = DG::Harness::Nginx->start(redis => $redis, http => $http,
    workers => 1, log_level => 'warn',
    main => "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
          . "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n");

my ($worker) = $ngx->workers;
DG::Bench::pin(1, $ngx->pid, $worker);
DG::Bench::pin(0, $redis->pid);

my $dir = tempdir(CLEANUP => 1);
my $script = DG::Bench::wrk_script($dir, keys => $opt{keys});

my $w = DG::Bench::Wrk->new(script => $script, cpu => 0,
    connections => $opt{connections}, url => $ngx->url(''),
    procs => { nginx => $worker, redis => $redis->pid });

# each location once, to load the scripts and open the connections
$w->run("/$_->[0]", $opt{warmup}) for @LOC;

# Redis's reads (total_reads_processed), for requests per read
sub redis_io {
    my %i = map { /^(\w+):(\d+)/ ? ($1 => $2) : () }
        split /\r?\n/, $redis->cli('INFO', 'stats');
    return [$i{total_reads_processed} // 0];
}

# Redis's commands (INFO commandstats): calls and microseconds by name
sub redis_cmds {
    my %c;
    for (split /\r?\n/, $redis->cli('INFO', 'commandstats')) {
        $c{$1} = [$2, $3] if /^cmdstat_(\w+):calls=(\d+),usec=(\d+)/;
    }
    return \%c;
}

my (%res, %cmds);
for my $round (1 .. $opt{rounds}) {
    for my $loc (@LOC) {
        my $before = redis_io();
        my $cb = redis_cmds();
        my $r = $w->run("/$loc->[0]", $opt{seconds});
        my $ca = redis_cmds();
        my $after = redis_io();
        for my $c (keys %$ca) {
            my $b = $cb->{$c} // [0, 0];
            $cmds{ $loc->[0] }{$c}[$_] += $ca->{$c}[$_] - $b->[$_] for 0, 1;
        }
        $cmds{ $loc->[0] }{''}[0] += $r->{requests};
        # requests per read() of Redis: how well requests are pipelined
        $r->{per_read} = $after->[0] > $before->[0]
            ? $r->{requests} / ($after->[0] - $before->[0]) : 0;
        die "/$loc->[0]: $r->{non2xx} non-2xx answers, $r->{errors} errors\n"
            if $r->{non2xx} || $r->{errors};
        push @{ $res{ $loc->[0] } }, $r;
        printf STDERR "round %d %-10s %8.0f req/s  nginx %5.1f us/req  "
            . "redis %5.1f us/req  latency p50 %s p99 %s  requests per "
            . "redis read %.1f\n", $round,
            $loc->[0], $r->{rps}, $r->{cpu}{nginx}, $r->{cpu}{redis},
            $r->{p50}, $r->{p99}, $r->{per_read};
    }
}

printf "%s, %s, %d x %d s interleaved rounds, %d keys, %d connections\n\n",
    strftime('%Y-%m-%d %H:%M UTC', gmtime), DG::Bench::machine(),
    $opt{rounds}, $opt{seconds}, $opt{keys}, $opt{connections};
print "| location | req/s | nginx CPU µs/req | Redis CPU µs/req |\n";
print "|---|---:|---:|---:|\n";
for my $loc (@LOC) {
    my $r = $res{ $loc->[0] };
    my $uses_redis = $loc->[0] =~ /^(lua|lua_body|guard)$/;
    printf "| %s | %s | %s | %s |\n", $loc->[1],
        DG::Bench::commify(DG::Bench::median(map { $_->{rps} } @$r)),
        DG::Bench::cell([map { $_->{cpu}{nginx} } @$r]),
        $uses_redis ? DG::Bench::cell([map { $_->{cpu}{redis} } @$r]) : '–';
}
printf "\nload average before the run: %s\n", $w->{loadavg};

# what Redis ran per request of each location that uses it, over all
# rounds: calls inside scripts count too; usec is Redis's own time per
# command (wall clock, without the I/O and the event loop)
print "\nRedis commands per request (INFO commandstats, all rounds)\n\n";
print "| location | command | calls/req | µs/call |\n|---|---|---:|---:|\n";
for my $loc (@LOC) {
    my $c = $cmds{ $loc->[0] } or next;
    my $n = $c->{''}[0] or next;
    for my $name (sort { $c->{$b}[1] <=> $c->{$a}[1] } grep { $_ ne '' }
                  keys %$c)
    {
        my ($calls, $usec) = @{ $c->{$name} };
        next if $calls < $n / 1000;
        printf "| %s | %s | %.2f | %.2f |\n", $loc->[0], $name,
            $calls / $n, $usec / $calls;
    }
}
