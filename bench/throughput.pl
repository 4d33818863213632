#!/usr/bin/perl
# Throughput of a guarded location against the same location unguarded,
# measured side by side in one run (alternating rounds, medians), and how
# well the Redis commands of concurrent requests are pipelined.
#
#   perl bench/throughput.pl [--rounds 3] [--seconds 8] [--connections 32]
#
# One nginx (1 worker), one redis-server, wrk from Debian.  The upstream
# is a second server of the same nginx answering at once, so the numbers
# are the module's own cost, not an LLM's.  A benchmark: it asserts
# nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use DG::Harness;
use Getopt::Long;
use File::Temp qw(tempdir);
use List::Util qw(sum);

my %opt = (rounds => 3, seconds => 8, connections => 32, threads => 1);
GetOptions(\%opt, 'rounds=i', 'seconds=i', 'connections=i', 'threads=i')
    or die "usage: $0 [--rounds N] [--seconds S] [--connections C]\n";

die "wrk is missing: apt-get install wrk\n" unless `which wrk` =~ /\S/;
die "build the module first: make module\n" unless DG::Harness::have_module();

my $redis = DG::Harness::Redis->start;
my $ngx = DG::Harness::Nginx->start(redis => $redis, http => <<'CONF');
    distill_guard_secret bench-secret;
    distill_guard_redis %%REDIS%% timeout=200ms;
    distill_guard_window 1h;
    access_log off;

    server {
        listen 127.0.0.1:%%PORT2%%;
        location / {
            return 200 '{"choices":[{"message":{"content":"ok"}}]}';
        }
    }

    server {
        listen 127.0.0.1:%%PORT%%;
        location /plain/ {
            proxy_pass http://127.0.0.1:%%PORT2%%;
        }
        location /guarded/ {
            distill_guard on;
            # scored and tagged as usual, nothing refused: every request
            # does the whole work and reaches the upstream
            distill_guard_mode shadow;
            proxy_pass http://127.0.0.1:%%PORT2%%;
        }
    }
CONF

# wrk: a 1 KB OpenAI chat body, 64 keys in turn (each thread its own)
my $dir = tempdir(CLEANUP => 1);
my $words = join ' ', map { "word$_ about topic " . ($_ % 13) } 1 .. 45;
DG::Harness::spit("$dir/chat.lua", <<LUA);
local n = 0
request = function()
    n = n + 1
    local body = '{"model":"m","messages":[{"role":"user","content":"'
        .. 'Question ' .. n .. ': $words"}]}'
    return wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer sk-bench-" .. (n % 64)
    }, body)
end
LUA

sub wrk_rps {
    my ($path) = @_;
    my $cmd = "wrk -t$opt{threads} -c$opt{connections} -d$opt{seconds}s "
            . "-s $dir/chat.lua " . $ngx->url($path);
    my $out = `$cmd 2>&1`;
    my ($rps) = $out =~ /Requests\/sec:\s*([\d.]+)/;
    my ($lat) = $out =~ /Latency\s+([\d.]+\w+)/;
    my ($non2xx) = $out =~ /Non-2xx or 3xx responses:\s*(\d+)/;
    die "wrk failed:\n$out" unless defined $rps;
    return ($rps, $lat, $non2xx // 0);
}

sub redis_stats {
    my %s = map { /^(\w+):(\S+)/ ? ($1, $2) : () }
        split /\r?\n/, $redis->cli('INFO', 'all');
    my ($evalsha) = ($s{cmdstat_evalsha} // '') =~ /calls=(\d+)/;
    return ($evalsha // 0, $s{total_reads_processed} // 0,
            $s{total_commands_processed} // 0);
}

sub median {
    my @v = sort { $a <=> $b } @_;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

wrk_rps('/guarded/x');        # warm up: keys, scripts, connections

my (@plain, @guarded, @lat_p, @lat_g);
my ($e0, $r0, $c0) = redis_stats();
my $guarded_secs = 0;

for my $round (1 .. $opt{rounds}) {
    my ($rps, $lat) = wrk_rps('/plain/x');
    push @plain, $rps;
    push @lat_p, $lat;
    my ($grps, $glat, $non2xx) = wrk_rps('/guarded/x');
    push @guarded, $grps;
    push @lat_g, $glat;
    printf "round %d: plain %.0f req/s (latency %s), guarded %.0f req/s "
         . "(latency %s, non-2xx %d)\n", $round, $rps, $lat, $grps, $glat,
         $non2xx;
}

my ($e1, $r1, $c1) = redis_stats();
printf "\nmedian over %d rounds of %d s, %d connections, 1 worker:\n",
    $opt{rounds}, $opt{seconds}, $opt{connections};
printf "  plain    %8.0f req/s\n", median(@plain);
printf "  guarded  %8.0f req/s  (%.0f %% of plain)\n", median(@guarded),
    100 * median(@guarded) / median(@plain);
printf "  redis: %d EVALSHA (window and fan-out) in %d read events: %.1f "
     . "per read\n", $e1 - $e0, $r1 - $r0,
     ($r1 - $r0) ? ($e1 - $e0) / ($r1 - $r0) : 0;
print "  (a read event takes all that one write of the worker sent: the\n"
    . "   commands of concurrent requests leave pipelined)\n";
