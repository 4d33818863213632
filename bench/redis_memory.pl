#!/usr/bin/perl
# Redis memory and CPU of the distill-guard scripts, on a redis-server of
# its own (t/lib/DG/Harness.pm):
#
#   - MEMORY USAGE summed over one API key's Redis keys after N requests
#     (default 1,000) inside its window, every request with a random
#     topic and template, and used_memory per key over many keys;
#   - the fan-out HyperLogLogs per fingerprint for growing numbers of
#     distinct keys (reported apart: they are shared by keys);
#   - usec_per_call of EVALSHA (INFO commandstats) for the window script
#     on a full ring, and for the fan-out script.
#
#   perl bench/redis_memory.pl [--requests 1000] [--keys 200] [--calls 5000]
#
# Prints numbers and asserts nothing; bench/redis.md has a run.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use DG::Harness;
use Getopt::Long;

my %opt = (requests => 1000, keys => 200, calls => 5000);
GetOptions(\%opt, 'requests=i', 'keys=i', 'calls=i')
    or die "usage: $0 [--requests N] [--keys N] [--calls N]\n";

my $ROOT = DG::Harness::root();
my $W = 60_000;
my $redis = DG::Harness::Redis->start;

my $wsha = $redis->cli('SCRIPT', 'LOAD',
                       DG::Harness::slurp("$ROOT/src/dg_window.lua"));
my $fsha = $redis->cli('SCRIPT', 'LOAD',
                       DG::Harness::slurp("$ROOT/src/dg_fanout.lua"));
die "SCRIPT LOAD failed: $wsha $fsha\n"
    unless "$wsha$fsha" =~ /^[0-9a-f]{80}\z/;

sub rand32 { 1 + int(rand 4294967295) }

# one window call with random topic, template, flags and bytes
sub random_call {
    my ($id) = @_;
    return join ' ', 'EVALSHA', $wsha, 1, "dg:{$id}:w", $W,
        int(rand 4096), rand32(), rand32(), int(rand 4), int(rand 20000);
}

sub campaign_call {
    my ($id, $i) = @_;
    return join ' ', 'EVALSHA', $wsha, 1, "dg:{$id}:w", $W,
        $i % 3, 0xc0ffee, 0xbadf00d, 1, 1500;
}

sub usage {
    my ($pattern) = @_;
    my $sum = 0;
    $sum += $redis->cli('MEMORY', 'USAGE', $_)
        for split /\n/, $redis->cli('KEYS', $pattern);
    return $sum;
}

sub info_field {
    my ($section, $name) = @_;
    my ($v) = $redis->cli('INFO', $section) =~ /^\Q$name\E:(\S+)/m;
    return $v;
}

sub usec_per_call {
    my ($cmd) = @_;
    my ($v) = $redis->cli('INFO', 'commandstats')
        =~ /^cmdstat_\Q$cmd\E:.*usec_per_call=([\d.]+)/m;
    return $v // 'n/a';
}

srand(1);
my @rows;

# 1. one key after N requests; all its Redis keys
$redis->cli_pipe(map { random_call('k0') } 1 .. $opt{requests});
my $one = usage('*{k0}*');
push @rows, ["window state, 1 key, $opt{requests} random requests",
             "$one B (MEMORY USAGE)"];

# the state has a fixed size: one request costs what 1,000 do
$redis->cli_pipe(random_call('k1'));
push @rows, ['window state, 1 key, 1 request', usage('*{k1}*') . ' B'];

# 2. used_memory per key, over many keys (dict entry, expire entry too)
$redis->cli('FLUSHALL');
my $before = info_field('memory', 'used_memory');
$redis->cli_pipe(map { random_call("m$_") } 1 .. $opt{keys});
my $after = info_field('memory', 'used_memory');
push @rows, ["used_memory per key, $opt{keys} keys",
             sprintf('%.0f B', ($after - $before) / $opt{keys})];

# 3. fan-out HyperLogLogs, per fingerprint and bucket
for my $n (1, 10, 100, 1000, 10000) {
    my $tag = "h:$n";
    $redis->cli_pipe(map {
        "EVALSHA $fsha 2 dg:{$tag}:1 dg:{$tag}:2 key$_ $W" } 1 .. $n);
    my $cur = $redis->cli('MEMORY', 'USAGE', "dg:{$tag}:1");
    push @rows, ["fan-out HLL, $n distinct keys", "$cur B per bucket, "
                 . usage("dg:{$tag}:*") . ' B live (2 buckets)'];
}

# 4. CPU: the window script on full rings, the fan-out script
$redis->cli('FLUSHALL');
$redis->cli_pipe(map { random_call('cpu') } 1 .. 200);
$redis->cli('CONFIG', 'RESETSTAT');
$redis->cli_pipe(map { random_call('cpu') } 1 .. $opt{calls});
push @rows, ['window EVALSHA, full ring, random values',
             usec_per_call('evalsha') . ' us/call'];

$redis->cli_pipe(map { campaign_call('camp', $_) } 1 .. 200);
$redis->cli('CONFIG', 'RESETSTAT');
$redis->cli_pipe(map { campaign_call('camp', $_) } 1 .. $opt{calls});
push @rows, ['window EVALSHA, full ring, one template, 3 topics',
             usec_per_call('evalsha') . ' us/call'];

$redis->cli('CONFIG', 'RESETSTAT');
$redis->cli_pipe(map { random_call("few$_") } 1 .. $opt{calls});
push @rows, ['window EVALSHA, new key each call',
             usec_per_call('evalsha') . ' us/call'];

$redis->cli('CONFIG', 'RESETSTAT');
$redis->cli_pipe(map {
    "EVALSHA $fsha 2 dg:{h:cpu}:1 dg:{h:cpu}:2 key" . ($_ % 50) . " $W"
} 1 .. $opt{calls});
push @rows, ['fan-out EVALSHA, 50 keys on a template',
             usec_per_call('evalsha') . ' us/call'];

$redis->cli('CONFIG', 'RESETSTAT');
$redis->cli_pipe(map {
    "EVALSHA $fsha 2 dg:{h:10000}:1 dg:{h:10000}:2 new$_ $W"
} 1 .. $opt{calls});
push @rows, ['fan-out EVALSHA, dense HLL, a new key each call',
             usec_per_call('evalsha') . ' us/call'];

my $ver = info_field('server', 'redis_version');
my $w = 0;
$w = length $_->[0] > $w ? length $_->[0] : $w for @rows;
printf "redis-server %s, window %d ms\n\n", $ver, $W;
printf "%-*s  %s\n", $w, @$_ for ['what', 'measured'], ['-' x $w, '-' x 8],
    @rows;

$redis->stop;
