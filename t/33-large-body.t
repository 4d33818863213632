#!/usr/bin/perl
# Large bodies (distill_guard_body_max 16m) are judged with Redis's reply:
# examining megabytes takes tens of milliseconds, and the Redis timer of
# such a request must still give it the whole timeout= (50 ms here).  In
# a temp file (the default client_body_buffer_size) and in memory.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use DG::Util qw(window_of requests_of signals_of diag_res stats http_conf
    guarded logs_clean);
use Time::HiRes qw(time);

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();

DG::Harness::watchdog(120);

my $SECRET = 't33-secret-Lb9q';

my $up = DG::Harness::Upstream->start;
my $redis = DG::Harness::Redis->start;
my $ngx = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
    http => http_conf(secret => $SECRET, redis => '%%REDIS%% timeout=50ms',
        prefix => 't33', window => '60s',
        head => "client_max_body_size 20m;\n", locations => [
            '/file/' => guarded(with => ['distill_guard_body_max 16m;']),
            '/mem/'  => guarded(with => ['distill_guard_body_max 16m;',
                'client_body_buffer_size 16m;']),
        ]));

# A chat body of $size bytes: one user turn of words, the last one.
sub chat_body {
    my ($size, $n) = @_;
    my $prefix = '{"model":"gpt-4o","messages":[{"role":"system","content":'
        . '"You are helpful."},{"role":"user","content":"request ' . $n
        . ': ';
    my $suffix = '"}]}';
    my $words = 'please review this paragraph about tidal energy and wind '
        x (1 + int($size / 50));
    return $prefix . substr($words, 0, $size - length($prefix)
        - length($suffix)) . $suffix;
}

my $before = stats($ngx);
my $count = 0;
for my $where (qw(file mem)) {
    subtest "12 MB chat bodies ($where), judged with Redis's reply" => sub {
        my $key = "sk-t33-$where-0001";
        for my $i (1 .. 2) {
            my $body = chat_body(12 * 1024 * 1024, $i);
            my $t0 = time;
            my $res = $ngx->request(POST => "/$where/v1/chat/completions", {
                headers => { Authorization => "Bearer $key",
                    'Content-Type' => 'application/json' },
                content => $body });
            $res->{elapsed} = time - $t0;
            $res->{vars} = DG::Harness::vars($res) || {};
            $count++;
            is($res->{status}, 200, "$i: 200");
            is($res->{vars}{echo}{sha256}, DG::Harness::sha256($body),
                "$i: the upstream got the body byte for byte");
            unlike(signals_of($res), qr/redis_unavailable/,
                "$i: not redis_unavailable") or diag_res($res);
            is(requests_of($res), $i, "$i: counted by Redis ($i)")
                or diag_res($res);
            my $f = $res->{vars}{features} || {};
            cmp_ok($f->{bytes} // 0, '>', 12_000_000,
                "$i: the whole user turn was examined");
            ok(!$f->{truncated}, "$i: not truncated");
            note(sprintf '%s %d: %.3f s', $where, $i, $res->{elapsed});
        }
    };
}

my $after = stats($ngx);
is(($after->{redis}{timeouts} // 0) - ($before->{redis}{timeouts} // 0), 0,
    'stats redis.timeouts did not rise');
is(($after->{redis}{unavailable} // 0)
    - ($before->{redis}{unavailable} // 0), 0,
    'stats redis.unavailable did not rise');
logs_clean($ngx, undef, errors => 1);

done_testing();
