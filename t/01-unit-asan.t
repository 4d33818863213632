#!/usr/bin/perl
# The engine unit tests again, built with AddressSanitizer and UBSan
# (`make unit-asan`, build/asan/): a memory error, a leak or undefined
# behaviour aborts the binary and fails its line here, with the report.
use strict;
use warnings;
use Test::More;
use FindBin;

my $root  = "$FindBin::Bin/..";
my $build = $ENV{BUILD} || "$root/build";

my $out = `make -s -C $root unit-asan BUILD=$build 2>&1`;
my $rc  = $? >> 8;

my @bins = glob("$build/asan/unit/test_*");
ok(@bins > 0, 'sanitizer unit test binaries were built') or diag($out);

local $ENV{ASAN_OPTIONS} = 'detect_leaks=1:abort_on_error=1';
local $ENV{UBSAN_OPTIONS} = 'print_stacktrace=1:halt_on_error=1';
for my $bin (@bins) {
    (my $name = $bin) =~ s{.*/}{};
    my $report = `$bin 2>&1`;
    my $ok = ($? == 0 && $report !~ /runtime error|AddressSanitizer/);
    my ($n) = $report =~ /PASSED\s*\]\s*(\d+)\s*test/;
    ok($ok, sprintf('%s (ASan, UBSan): %s cmocka tests', $name, $n // '?'))
        or diag($report);
}
ok($rc == 0, 'make unit-asan exit status') or diag($out);

done_testing();
