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
use File::Temp;

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

# The window script's one argument: the request packed as dg_window_pack
# does (doc/redis-keys.md, "The script's arguments and reply")
sub pack_args {
    my @v = @_;
    my @size = (4, 2, 2, 2, 1, 5, 6, 4, 4, 4, 1, 2, 2, 2, 2);
    return join '', map {
        my ($x, $n) = ($v[$_] // 0, $size[$_]);
        join '', map { chr(int($x / 256 ** $_) % 256) } 0 .. $n - 1;
    } 0 .. $#size;
}

# window calls as the module sends them (both keys), in RESP through
# redis-cli --pipe: the argument is binary
sub window_calls {
    my $in = File::Temp->new;
    binmode $in;
    for my $a (@_) {
        print $in '*' . @$a . "\r\n",
            map { '$' . length($_) . "\r\n$_\r\n" } @$a;
    }
    close $in;
    system("redis-cli -p ${\ $redis->port} --pipe < $in > /dev/null") == 0
        or die "redis-cli --pipe failed\n";
}

sub window_call {
    my ($id, @v) = @_;
    return ['EVALSHA', $wsha, 2, "dg:{$id}:w", "dg:{$id}:s",
            pack_args($W, @v[0 .. 4], 0, 0, 0, 0, 0, $v[0], 1 + $v[2] % 65535,
                      0, 0)];
}

# one window call with random topic, template, flags and bytes
sub random_call {
    my ($id) = @_;
    return window_call($id, int(rand 4096), rand32() % 4096,
        rand32() % 4096, 1 + 2 * int(rand 2), int(rand 20000));
}

sub campaign_call {
    my ($id, $i) = @_;
    return window_call($id, $i % 3, 0xc0ffee % 4096, 0xbadf00d % 4096, 1,
                       1500);
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
window_calls(map { random_call('k0') } 1 .. $opt{requests});
my $one = usage('*{k0}*');
push @rows, ["window state, 1 key, $opt{requests} random requests",
             "$one B (MEMORY USAGE)"];

# the state has a fixed size: one request costs what 1,000 do
window_calls(random_call('k1'));
push @rows, ['window state, 1 key, 1 request', usage('*{k1}*') . ' B'];

# 2. used_memory per key, over many keys (dict entry, expire entry too)
$redis->cli('FLUSHALL');
my $before = info_field('memory', 'used_memory');
window_calls(map { random_call("m$_") } 1 .. $opt{keys});
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
window_calls(map { random_call('cpu') } 1 .. 200);
$redis->cli('CONFIG', 'RESETSTAT');
window_calls(map { random_call('cpu') } 1 .. $opt{calls});
push @rows, ['window EVALSHA, full ring, random values',
             usec_per_call('evalsha') . ' us/call'];

window_calls(map { campaign_call('camp', $_) } 1 .. 200);
$redis->cli('CONFIG', 'RESETSTAT');
window_calls(map { campaign_call('camp', $_) } 1 .. $opt{calls});
push @rows, ['window EVALSHA, full ring, one template, 3 topics',
             usec_per_call('evalsha') . ' us/call'];

$redis->cli('CONFIG', 'RESETSTAT');
window_calls(map { random_call("few$_") } 1 .. $opt{calls});
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
