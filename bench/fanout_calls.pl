#!/usr/bin/perl
# Fan-out script calls per request under the peer benchmark's traffic
# (bench/peers.pl: 1 KB chat bodies, 97 of them, from --keys API keys in
# turn, the keys sharing the bodies' templates), one nginx worker, window
# 1 h, shadow mode, at one connection (a light load: it measures the
# count, not the speed).
#
#   perl bench/fanout_calls.pl [--seconds 10] [--keys 1000]
#   DG_MODULE=/tmp/other.so perl bench/fanout_calls.pl   # another build
#
# Every accounted request sends one window script (EVALSHA) and one GET;
# the other EVALSHAs are fan-out calls (count, add, conv), so the calls
# per request are (EVALSHA - GET) / GET from Redis's INFO commandstats.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/lib";
use DG::Harness;
use DG::Bench;
use Getopt::Long;
use File::Temp qw(tempdir);

my %opt = (seconds => 10, keys => 1000);
GetOptions(\%opt, 'seconds=i', 'keys=i')
    or die "usage: $0 [--seconds S] [--keys K]\n";

die "wrk is missing: apt-get install wrk\n" unless `which wrk` =~ /\S/;
die "build the module first: make module\n" unless DG::Harness::have_module();

my $redis = DG::Harness::Redis->start;
my $ngx = DG::Harness::Nginx->start(redis => $redis, workers => 1,
    log_level => 'warn', http => DG::Bench::guard_http());

my $dir = tempdir(CLEANUP => 1);
my $script = DG::Bench::wrk_script($dir, keys => $opt{keys});
my $url = $ngx->url('/guard');
my $out = `wrk -t1 -c1 -d$opt{seconds}s -s $script $url 2>&1`;
my ($n) = $out =~ /(\d+) requests in/ or die "wrk: $out";

my $port = $redis->port;
my $st = `redis-cli -p $port INFO commandstats`;
my ($ev) = $st =~ /cmdstat_evalsha:calls=(\d+)/;
my ($get) = $st =~ /cmdstat_get:calls=(\d+)/;
die "no requests reached Redis\n" unless $get;
printf "%d requests, %d window GETs, %d fan-out calls: %.3f per request\n",
    $n, $get, $ev - $get, ($ev - $get) / $get;
