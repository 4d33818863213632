#!/usr/bin/perl
# The Redis CPU of the window calls alone, without nginx or wrk: one
# redis-server on CPU 0, build/redis_cpu on CPU 1 sending the module's
# own commands (the script, then a GET, for 1,000 keys in turn) in
# batches of 16, as the transport pipelines one event-loop turn.  With
# --script FILE the client sends that script instead of the built one
# (a variant to compare, in interleaved rounds); with --native also the
# requests as the module's worker sends a warm key's (APPEND to the
# pending log and MGET): once with every 17th request the script, which
# folds the log (the module before its commits), once with the client
# folding the log and sending the commit every DG_LOG_COMMIT records, as
# the module does now.
# Prints the median Redis CPU per request (utime + stime from /proc) of
# each; a benchmark, it asserts nothing.
#
#   perl bench/redis_cpu.pl [--rounds 5] [--requests 300000]
#                           [--script variant.lua ...] [--native]
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/lib";
use DG::Harness;
use DG::Bench;
use Getopt::Long;
use File::Temp qw(tempdir);

my %opt = (rounds => 5, requests => 300_000, keys => 1000, batch => 16);
my @scripts;
GetOptions(\%opt, 'rounds=i', 'requests=i', 'keys=i', 'batch=i',
           'script=s' => \@scripts, 'native')
    or die "usage: $0 [--rounds N] [--requests N] [--script FILE ...]\n";

my $ROOT = DG::Harness::root();
my $BUILD = $ENV{DG_BUILD} || "$ROOT/build";
my $dir = tempdir(CLEANUP => 1);

# one client per script: the built one, and each variant embedded as the
# window script in its own binary
my $nclients = 0;
sub client {
    my ($lua) = @_;
    my $out = "$dir/redis_cpu_" . $nclients++;
    my @objs = grep { !/dg_scripts\.o$/ } glob("$BUILD/engine/*.o");
    my $gen = "$out.scripts.c";
    system('sh', "$ROOT/src/embed.sh", $gen, "dg_window_lua=$lua",
           "dg_fanout_lua=$ROOT/src/dg_fanout.lua") == 0
        or die "embed.sh failed\n";
    system('cc', '-O2', "-I$ROOT/src", "$ROOT/bench/redis_cpu.c", $gen,
           @objs, '-o', $out, qw(-lhiredis -ljansson -lcrypto -lm)) == 0
        or die "cannot build the client (make lib first)\n";
    return $out;
}

# [label, client, its extra argument]
my @clients = map { [$_, client($_), ''] } "$ROOT/src/dg_window.lua",
    @scripts;
push @clients, map { (["$_->[0], the gateway's own path (the script "
    . 'folds)', $_->[1], 'native'], ["$_->[0], the gateway's own path "
    . '(commits)', $_->[1], 'commit']) } @clients if $opt{native};

my $redis = DG::Harness::Redis->start;
DG::Bench::pin(0, $redis->pid);

my %us;
for my $round (1 .. $opt{rounds}) {
    for my $c (@clients) {
        my $cmd = join ' ', 'taskset -c 1', $c->[1], $redis->port,
            $redis->pid, @opt{qw(keys requests batch)}, $c->[2];
        my $us = `$cmd`;
        die "$c->[1] failed\n" if $? || $us !~ /^[\d.]+$/;
        chomp $us;
        push @{ $us{ $c->[0] } }, $us;
        printf STDERR "round %d %-40s %6.2f us/req\n", $round, $c->[0], $us;
    }
}

printf "%s, %d rounds of %d requests, %d keys, batches of %d\n\n",
    DG::Bench::machine(), $opt{rounds}, $opt{requests}, $opt{keys},
    $opt{batch};
print "| script | Redis CPU µs per request (median, best) |\n|---|---:|\n";
for my $c (@clients) {
    my @v = sort { $a <=> $b } @{ $us{ $c->[0] } };
    printf "| %s | %.2f (%.2f) |\n", $c->[0] =~ s{^\Q$ROOT\E/}{}r,
        DG::Bench::median(@v), $v[0];
}
