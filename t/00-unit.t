#!/usr/bin/perl
# Runs every engine unit test binary (cmocka, built by `make lib` + the
# rule below) and reports one result per binary, with cmocka's own report
# shown when a binary fails.
use strict;
use warnings;
use Test::More;
use FindBin;

my $root  = "$FindBin::Bin/..";
my $build = $ENV{BUILD} || "$root/build";

my $out = `make -s -C $root unit BUILD=$build 2>&1`;
my $rc  = $? >> 8;

my @bins = glob("$build/unit/test_*");
ok(@bins > 0, 'unit test binaries were built') or diag($out);

for my $bin (@bins) {
    (my $name = $bin) =~ s{.*/}{};
    my $report = `$bin 2>&1`;
    my $ok = ($? == 0);
    my ($n) = $report =~ /PASSED\s*\]\s*(\d+)\s*test/;
    ok($ok, sprintf('%s: %s cmocka tests', $name, $n // '?'))
        or diag($report);
}
ok($rc == 0, 'make unit exit status') or diag($out);

done_testing();
