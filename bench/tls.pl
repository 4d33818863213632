#!/usr/bin/perl
# The guarded location with Redis over plain TCP and over TLS, side by
# side: two redis-servers alike but for TLS (DG::TLS::Redis: port 0 and a
# tls-port, tls-auth-clients no), two nginx alike but for "tls=on tls_ca=
# tls_name=" on distill_guard_redis, each with one worker and a /guard
# location in shadow mode answered by empty_gif (as in bench/peers.pl).
#
#   perl bench/tls.pl [--rounds 3] [--seconds 8] [--low-seconds 5]
#                     [--keys 1000] [--connections 32] [--only tcp|tls]
#
# 2 vCPU: both nginx on CPU 1 (only one is driven at a time); wrk and both
# redis-servers on CPU 0.  Each round drives TCP then TLS (TLS then TCP in
# even rounds): wrk -c32 for --seconds (the loaded run), then wrk -c1 for
# --low-seconds (the round trip alone).  Medians over the rounds, the
# best round in brackets.  CPU per request: utime + stime of the nginx
# worker and of its redis-server (/proc/<pid>/stat) over the requests wrk
# completed.  The Redis round trip is the module's own histogram
# (/dg-stats?format=prometheus), the difference over each run: its mean
# (sum / count) and its p50 / p99 as the bucket bound they fall under
# (log2 buckets: good to a factor of 2).  A run with a redis_unavailable
# request, a Redis error or timeout, or a non-2xx answer stops the
# benchmark.  It asserts nothing else.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/lib";
use DG::Harness;
use DG::TLS;
use DG::Bench;
use Getopt::Long;
use File::Temp qw(tempdir);
use POSIX qw(strftime);

my %opt = (rounds => 3, seconds => 8, 'low-seconds' => 5, keys => 1000,
           connections => 32, warmup => 2);
GetOptions(\%opt, 'rounds=i', 'seconds=i', 'low-seconds=i', 'keys=i',
           'connections=i', 'warmup=i', 'only=s')
    or die "usage: $0 [--rounds N] [--seconds S] [--low-seconds S] "
         . "[--keys K] [--connections C] [--only tcp|tls]\n";
my @T = $opt{only} ? split(/,/, $opt{only}) : qw(tcp tls);

die "wrk is missing: apt-get install wrk\n" unless `which wrk` =~ /\S/;
die "build the module first: make module\n" unless DG::Harness::have_module();
if (my $why = DG::TLS::missing()) { die "$why\n" }

my $pki = DG::TLS::pki();
my %redis;
$redis{tcp} = DG::Harness::Redis->start if grep { $_ eq 'tcp' } @T;
$redis{tls} = DG::TLS::Redis->start(pki => $pki) if grep { $_ eq 'tls' } @T;
my %redis_opts = (
    tcp => '',
    tls => "tls=on tls_ca=$pki->{ca} tls_name=$DG::TLS::NAME",
);

my %ngx;
for my $t (@T) {
    my $http = DG::Bench::guard_http(
        redis => "%%REDIS%% timeout=200ms $redis_opts{$t}",
        extra => "\n        location = /dg-stats {\n"
               . "            distill_guard_stats;\n        }\n");
    $ngx{$t} = DG::Harness::Nginx->start(redis => $redis{$t}, http => $http,
        workers => 1, log_level => 'warn');
}

my %worker;
for my $t (@T) {
    ($worker{$t}) = $ngx{$t}->workers;
    DG::Bench::pin(1, $ngx{$t}->pid, $worker{$t});
    DG::Bench::pin(0, $redis{$t}->pid);
}

my $dir = tempdir(CLEANUP => 1);
my $script = DG::Bench::wrk_script($dir, keys => $opt{keys});

my (%loaded, %low);
for my $t (@T) {
    my %procs = (procs => { nginx => $worker{$t}, redis => $redis{$t}->pid },
        script => $script, cpu => 0, url => $ngx{$t}->url(''));
    $loaded{$t} = DG::Bench::Wrk->new(%procs,
        connections => $opt{connections});
    $low{$t} = DG::Bench::Wrk->new(%procs, connections => 1);
}
my $loadavg = $loaded{ $T[0] }{loadavg};

# The module's counters and its Redis latency histogram, from the
# Prometheus exposition.
sub scrape {
    my ($t) = @_;
    my $res = $ngx{$t}->request(GET => '/dg-stats?format=prometheus');
    die "$t: /dg-stats: $res->{status}\n" unless $res->{status} == 200;
    my %m = (buckets => []);
    for (split /\n/, $res->{content}) {
        if (/^distill_guard_redis_latency_seconds_bucket\{le="([^"]+)"\} (\d+)/) {
            push @{ $m{buckets} }, [$1 eq '+Inf' ? 'inf' : int($1 * 1e6 + 0.5), $2];
        } elsif (/^distill_guard_redis_latency_seconds_(sum|count) (\S+)/) {
            $m{$1} = $2;
        } elsif (/^distill_guard_redis_errors_total\{kind="(\w+)"\} (\d+)/) {
            $m{"redis_$1"} = $2;
        } elsif (/^distill_guard_requests_total\{action="unavailable"\} (\d+)/) {
            $m{unavailable} = $1;
        }
    }
    my $json = $ngx{$t}->get_json('/dg-stats') || {};
    for my $c (qw(handshakes reused)) {
        $m{"tls_$c"} = $json->{"redis_tls_$c"}
            // $json->{redis}{"redis_tls_$c"} // $json->{redis}{"tls_$c"};
    }
    return \%m;
}

# The round trip over one run from two scrapes: mean, p50 and p99 (µs)
sub latency {
    my ($a, $b) = @_;
    my $n = $b->{count} - $a->{count};
    return { mean => 0, p50 => 0, p99 => 0, n => 0 } unless $n > 0;
    my %r = (n => $n, mean => 1e6 * ($b->{sum} - $a->{sum}) / $n);
    for my $q (50, 99) {
        for my $i (0 .. $#{ $b->{buckets} }) {
            my $cum = $b->{buckets}[$i][1] - $a->{buckets}[$i][1];
            if ($cum >= $q / 100 * $n) {
                $r{"p$q"} = $b->{buckets}[$i][0];
                last;
            }
        }
    }
    return \%r;
}

sub run {
    my ($t, $wrk, $seconds) = @_;
    my $s0 = scrape($t);
    my $r = $wrk->run('/guard', $seconds);
    my $s1 = scrape($t);
    die "$t: $r->{non2xx} non-2xx answers, $r->{errors} errors\n"
        if $r->{non2xx} || $r->{errors};
    for my $c (qw(unavailable redis_error redis_timeout redis_unavailable)) {
        my $d = ($s1->{$c} // 0) - ($s0->{$c} // 0);
        die "$t: $c grew by $d during the run: Redis was not reached\n"
            if $d;
    }
    $r->{lat} = latency($s0, $s1);
    ($r->{avg}) = $r->{out} =~ /^\s+Latency\s+(\S+)/m;
    return $r;
}

# the warm-up opens the connections and loads the scripts
for my $t (@T) {
    run($t, $loaded{$t}, $opt{warmup});
}

my (%res, %res_low);
for my $round (1 .. $opt{rounds}) {
    for my $t ($round % 2 ? @T : reverse @T) {
        my $r = run($t, $loaded{$t}, $opt{seconds});
        push @{ $res{$t} }, $r;
        printf STDERR "round %d %s c%-3d %8.0f req/s  nginx %5.1f us/req  "
            . "redis %5.1f us/req  rtt mean %5.0f p50 <=%s p99 <=%s us\n",
            $round, $t, $opt{connections}, $r->{rps}, $r->{cpu}{nginx},
            $r->{cpu}{redis}, $r->{lat}{mean}, $r->{lat}{p50},
            $r->{lat}{p99};
        $r = run($t, $low{$t}, $opt{'low-seconds'});
        push @{ $res_low{$t} }, $r;
        printf STDERR "round %d %s c1   %8.0f req/s  nginx %5.1f us/req  "
            . "redis %5.1f us/req  rtt mean %5.0f p50 <=%s p99 <=%s us  "
            . "wrk avg %s p50 %s p99 %s\n", $round, $t, $r->{rps},
            $r->{cpu}{nginx}, $r->{cpu}{redis}, $r->{lat}{mean},
            $r->{lat}{p50}, $r->{lat}{p99}, $r->{avg}, $r->{p50}, $r->{p99};
    }
}

my %final = map { $_ => scrape($_) } @T;

my %NAME = (tcp => 'plain TCP', tls => 'TLS');
sub med { DG::Bench::median(@_) }
sub us  { my $v = shift; $v eq 'inf' ? '> 1 s' : sprintf '%.0f', $v }

printf "%s, %s, %d interleaved rounds, %d keys; loaded: wrk -c%d for %d s,"
    . " low load: wrk -c1 for %d s\n\n", strftime('%Y-%m-%d %H:%M UTC',
    gmtime), DG::Bench::machine(), $opt{rounds}, $opt{keys},
    $opt{connections}, $opt{seconds}, $opt{'low-seconds'};

printf "### Loaded (wrk -c%d)\n\n", $opt{connections};
print "| Redis transport | req/s | nginx CPU µs/req | Redis CPU µs/req "
    . "| Redis round trip µs: mean | p50 | p99 |\n";
print "|---|---:|---:|---:|---:|---:|---:|\n";
for my $t (@T) {
    my $r = $res{$t};
    printf "| %s | %s | %s | %s | %.0f | ≤ %s | ≤ %s |\n", $NAME{$t},
        DG::Bench::commify(med(map { $_->{rps} } @$r)),
        DG::Bench::cell([map { $_->{cpu}{nginx} } @$r]),
        DG::Bench::cell([map { $_->{cpu}{redis} } @$r]),
        med(map { $_->{lat}{mean} } @$r),
        us(med(map { $_->{lat}{p50} eq 'inf' ? 9e9 : $_->{lat}{p50} } @$r)),
        us(med(map { $_->{lat}{p99} eq 'inf' ? 9e9 : $_->{lat}{p99} } @$r));
}

print "\n### Low load (wrk -c1)\n\n";
print "| Redis transport | req/s | request latency (wrk) p50 | p99 "
    . "| Redis round trip µs: mean | nginx CPU µs/req | Redis CPU µs/req |\n";
print "|---|---:|---:|---:|---:|---:|---:|\n";
for my $t (@T) {
    my $r = $res_low{$t};
    my $ms = sub {      # wrk's "123.45us" / "1.23ms": the median in µs
        my @v = map { /^([\d.]+)(us|ms|s)$/
            ? $1 * { us => 1, ms => 1e3, s => 1e6 }->{$2} : () } @_;
        return sprintf '%.0f µs', med(@v);
    };
    printf "| %s | %s | %s | %s | %.0f | %s | %s |\n", $NAME{$t},
        DG::Bench::commify(med(map { $_->{rps} } @$r)),
        $ms->(map { $_->{p50} } @$r), $ms->(map { $_->{p99} } @$r),
        med(map { $_->{lat}{mean} } @$r),
        DG::Bench::cell([map { $_->{cpu}{nginx} } @$r]),
        DG::Bench::cell([map { $_->{cpu}{redis} } @$r]);
}

printf "\nTLS handshakes over the whole benchmark: %s (%s resumed)\n",
    $final{tls}{tls_handshakes} // 'not reported',
    $final{tls}{tls_reused} // 'not reported' if $final{tls};
printf "\nload average before the run: %s\n", $loadavg;
