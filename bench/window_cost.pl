#!/usr/bin/perl
# What a change of the window script costs Redis: usec_per_call of the
# script at another revision (--base) against the working tree's, in
# interleaved rounds on one redis-server, and the memory of one key.
#
#   perl bench/window_cost.pl [--base REV] [--rounds 5] [--calls 5000]
#
# Requests are those of a conversation-holding key: random topics and
# templates, and after the first a claimed history that half the time
# continues a request sent before (verified) and else is new
# (fabricated); a script that does not know the provenance arguments
# ignores them.  Prints numbers and asserts nothing.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use DG::Harness;
use Getopt::Long;
use List::Util qw(sum);

my %opt = (base => 'HEAD', rounds => 5, calls => 5000);
GetOptions(\%opt, 'base=s', 'rounds=i', 'calls=i')
    or die "usage: $0 [--base REV] [--rounds N] [--calls N]\n";

my $ROOT = DG::Harness::root();
my $W = 60_000;
my $base_src = `git -C '$ROOT' show '$opt{base}:src/dg_window.lua'`;
die "cannot read src/dg_window.lua at $opt{base}\n" if $? || !$base_src;

my $redis = DG::Harness::Redis->start;
my %sha = (base => $redis->cli('SCRIPT', 'LOAD', $base_src),
    tree => $redis->cli('SCRIPT', 'LOAD',
        DG::Harness::slurp("$ROOT/src/dg_window.lua")));
/^[0-9a-f]{40}\z/ or die "SCRIPT LOAD failed: $_\n" for values %sha;

sub rand32 { 1 + int(rand 4294967295) }

my %sent;
sub call {
    my ($sha, $id) = @_;
    my $s = rand32();
    my $prior = 0;
    if (@{ $sent{$id} || [] }) {
        $prior = rand() < 0.5 ? $sent{$id}[ int rand @{ $sent{$id} } ]
            : rand32();
    }
    push @{ $sent{$id} }, $s;
    shift @{ $sent{$id} } if @{ $sent{$id} } > 100;
    return join ' ', 'EVALSHA', $sha, 2, "dg:{$id}:w", "dg:{$id}:s", $W,
        int(rand 4096), rand32(), rand32(), $prior ? 2 : 3,
        int(rand 20000), "''", 0, 0, 0, 0, int(rand 4096), $s, $prior,
        $prior ? rand32() : 0;
}

sub usec_per_call {
    my ($v) = $redis->cli('INFO', 'commandstats')
        =~ /^cmdstat_evalsha:.*usec_per_call=([\d.]+)/m;
    return $v;
}

srand(1);
my %us;
for my $which (qw(base tree)) {
    $redis->cli_pipe(map { call($sha{$which}, "warm-$which") } 1 .. 200);
}
for my $r (1 .. $opt{rounds}) {
    for my $which ($r % 2 ? qw(base tree) : qw(tree base)) {
        $redis->cli('CONFIG', 'RESETSTAT');
        $redis->cli_pipe(map { call($sha{$which}, "warm-$which") }
            1 .. $opt{calls});
        push @{ $us{$which} }, usec_per_call();
    }
}

my %mem;
for my $which (qw(base tree)) {
    $redis->cli_pipe(map { call($sha{$which}, "mem-$which") } 1 .. 1000);
    $mem{$which} = sum(map { $redis->cli('MEMORY', 'USAGE', $_) }
        grep { length } split /\n/, $redis->cli('KEYS', "*{mem-$which}*"));
}

sub median { my @v = sort { $a <=> $b } @_; $v[$#v / 2] }

printf "redis-server %s; window script at %s (base) and in the working "
    . "tree; %d rounds of %d calls on a full ring\n\n",
    ($redis->cli('INFO', 'server') =~ /redis_version:(\S+)/)[0],
    $opt{base}, $opt{rounds}, $opt{calls};
printf "%-6s  us/call median  (rounds)                      bytes/key\n", '';
for my $which (qw(base tree)) {
    printf "%-6s  %14.2f  (%s)  %d\n", $which, median(@{ $us{$which} }),
        join(' ', @{ $us{$which} }), $mem{$which};
}
printf "\nratio tree/base: %.2f\n", median(@{ $us{tree} })
    / median(@{ $us{base} });

$redis->stop;
