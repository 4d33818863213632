#!/usr/bin/perl
# The node-local fallback while Redis is away (stopped, or frozen): a key
# that was throttled stays throttled, distill_guard_rate stays in force,
# for the whole node (two workers); other keys pass with
# redis_unavailable; fail closed does not turn a throttle into a 503.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use DG::Util qw(chat templated post hdr signals_of diag_res http_conf
    guarded logs_clean);
use Time::HiRes qw(sleep time);

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();

DG::Harness::watchdog(60);

my $redis = DG::Harness::Redis->start;
my $up = DG::Harness::Upstream->start;
my $ngx = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
    workers => 2, access_log_format => '$pid $status $request_uri',
    http => http_conf(secret => 't42-secret',
        redis => '%%REDIS%% timeout=200ms connect_timeout=200ms',
        prefix => 't42', window => '30s', reuseport => 1, locations => [
            '/hot/' => guarded(with => \@DG::Util::HOT),
            '/hot-closed/' => guarded(with => ['distill_guard_fail closed;',
                @DG::Util::HOT]),
            '/rate/' => guarded(with => ['distill_guard_rate 2r/s burst=0;']),
            # requests wait timeout= (200 ms) for a frozen Redis: a
            # slower rate
            '/rate-m/' => guarded(
                with => ['distill_guard_rate 6r/m burst=0;']),
        ]));

my $HOT = 'sk-t42-campaign-0001';
my $OK  = 'sk-t42-human-0002';

subtest 'with Redis: the campaign key is throttled' => sub {
    my @st;
    for my $i (1 .. 10) {
        my $res = post($ngx, '/hot/x', $HOT, templated($i));
        push @st, $res->{status};
        last if @st >= 3 && $st[-1] == 429 && $st[-2] == 429;
    }
    note("statuses: @st");
    ok((grep { $_ == 429 } @st), 'refused with 429');
    is(post($ngx, '/hot/x', $OK)->{status}, 200, 'another key: 200');
    # a few more, so that each worker has seen the key refused
    my @more = map { post($ngx, '/hot/x', $HOT, templated(20 + $_))->{status} }
        1 .. 4;
    is_deeply(\@more, [429, 429, 429, 429], 'stays refused');
};

sub while_away {
    my ($how, $hot, $rate_path, $rate_w) = @_;
    my $mark = $ngx->mark;

    my (@st, @slow);
    for my $i (1 .. 8) {
        my $res = post($ngx, '/hot/x', $hot, chat("harmless $i"));
        push @st, $res->{status};
        push @slow, $res->{elapsed} if $res->{elapsed} >= 1;
        if ($i == 1) {
            diag_res($res) unless $res->{status} == 429;
            is(hdr($res, 'ratelimit-policy'), '"throttle";q=6;w=60',
                "$how: RateLimit-Policy throttle on the 429");
            like(hdr($res, 'retry-after') // '', qr/^\d+$/,
                "$how: Retry-After");
            like(signals_of($res), qr/redis_unavailable/,
                "$how: X-Distill-Guard-Signals has redis_unavailable")
                or diag_res($res);
        }
    }
    is_deeply(\@st, [(429) x 8], "$how: the throttled key stays throttled "
        . '(8 requests over both workers)') or diag("statuses: @st");
    is_deeply(\@slow, [], "$how: each answered in < 1 s");

    my $res = post($ngx, '/hot-closed/x', $hot, chat('closed'));
    is($res->{status}, 429, "$how: fail closed: still 429 (not 503) for "
        . 'the throttled key') or diag_res($res);

    $res = post($ngx, '/hot/x', $OK, chat("fine $how"));
    is($res->{status}, 200, "$how: another key: 200 (fail open)");
    like(signals_of($res), qr/redis_unavailable/,
        "$how: with redis_unavailable") or diag_res($res);
    is($res->{vars}{action}, 'pass', "$how: action pass");
    $res = post($ngx, '/hot-closed/x', $OK, chat('closed ok'));
    is($res->{status}, 503, "$how: another key, fail closed: 503");

    # distill_guard_rate on this node
    my $rk = "sk-t42-rate-$how";
    my @r = map { post($ngx, $rate_path, $rk, chat("rate $_")) } 1 .. 6;
    my @rs = map { $_->{status} } @r;
    note("$how: rate statuses: @rs");
    is($rs[0], 200, "$how: rate: the first passes");
    cmp_ok(scalar(grep { $_ == 429 } @rs), '>=', 4,
        "$how: rate: rapid requests get 429 (at most 2 of 6 pass)");
    my ($r429) = grep { $_->{status} == 429 } @r;
    like(hdr($r429, 'ratelimit-policy') // '', qr/^"rate";q=\d+;w=$rate_w$/,
        "$how: rate: RateLimit-Policy \"rate\"") if $r429;
    is(post($ngx, $rate_path, "sk-t42-rate-other-$how")->{status}, 200,
        "$how: rate: another key passes");

    logs_clean($ngx, $how);
}

subtest 'Redis stopped' => sub {
    $redis->stop;
    while_away('stopped', $HOT, '/rate/x', 1);
};

subtest 'Redis back: a frozen Redis (SIGSTOP)' => sub {
    $redis->restart;
    my $res;
    for (1 .. 80) {
        $res = post($ngx, '/hot/x', $OK, chat('back?'));
        last if $res->{vars}{features} && $res->{vars}{features}{window}
            && signals_of($res) !~ /redis_unavailable/;
        sleep 0.1;
    }
    ok($res->{vars}{features}{window}, 'counted again after the restart')
        or diag_res($res);
    # another key, never refused by the fallback before: throttle it,
    # then freeze Redis
    my $hot2 = 'sk-t42-campaign-0003';
    my @st;
    for my $i (1 .. 10) {
        push @st, post($ngx, '/hot/x', $hot2, templated(40 + $i))->{status};
        last if @st >= 3 && $st[-1] == 429 && $st[-2] == 429;
    }
    note("statuses: @st");
    ok((grep { $_ == 429 } @st), 'throttled');
    $redis->pause;
    while_away('frozen', $hot2, '/rate-m/x', 60);
    $redis->resume;
};

my %pids = map { (split / /)[0] => 1 } $ngx->access_log_lines;
cmp_ok(scalar keys %pids, '>=', 2, 'both workers served');

done_testing();
