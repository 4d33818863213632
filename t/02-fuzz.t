#!/usr/bin/perl
# Each libFuzzer target (fuzz/) for FUZZ_SECONDS (default 60) from its
# committed seeds, fuzz/corpus/<target>/, with ASan and UBSan.  A crash
# fails the target's line; the input that caused it is left in
# build/fuzz/artifacts/<target>/ and named in the output.  Skipped when
# clang is missing (.ci/deps.sh installs it).
use strict;
use warnings;
use Test::More;
use FindBin;

my $root    = "$FindBin::Bin/..";
my $build   = $ENV{BUILD} || "$root/build";
my $seconds = $ENV{FUZZ_SECONDS} // 60;

plan skip_all => 'clang is missing: no libFuzzer (apt-get install clang)'
    unless `sh -c 'command -v clang'` =~ /\S/;

my $out = `make -s -C $root fuzz BUILD=$build 2>&1`;
is($? >> 8, 0, 'make fuzz: the targets build') or diag($out);

for my $src (sort glob("$root/fuzz/fuzz_*.c")) {
    (my $name = $src) =~ s{.*/|\.c$}{}g;
    my $bin = "$build/fuzz/$name";
    ok(-d "$root/fuzz/corpus/$name", "$name: has a seed corpus");
    my $report = `sh $root/fuzz/run.sh $bin $seconds 2>&1`;
    my $ok = $? == 0;
    chomp(my $last = (split /\n/, $report)[-1] // '');
    ok($ok, "$name: $seconds s without a crash") or diag($report);
    note($last);
}

done_testing();
