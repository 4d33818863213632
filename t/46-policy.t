#!/usr/bin/perl
# The policy's outcomes through nginx: a fail-closed refusal is the
# action "unavailable" and the per-action counters add up to the
# requests seen; shadow mode refuses nothing, not even fail closed, and
# says why it would have refused; a key going back to pass writes its
# event.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use DG::Util qw(chat post hdr diag_res stats xrange http_conf guarded
    signals_of logs_clean);
use Time::HiRes qw(sleep time);

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();

DG::Harness::watchdog(60);

my $SECRET = 't44-secret-Xr8c';

sub key_id { DG::Util::key_id($_[0], $SECRET) }

sub templated { DG::Util::templated($_[0], @DG::Util::TOPICS) }

sub add_up {
    my ($s) = @_;
    my $sum = 0;
    $sum += $s->{$_} // 0 for qw(passed tagged throttled skipped unavailable);
    return $sum;
}

my $redis = DG::Harness::Redis->start;
my $up = DG::Harness::Upstream->start;
my $ngx = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
    http => http_conf(secret => $SECRET,
        redis => '%%REDIS%% timeout=200ms connect_timeout=200ms',
        prefix => 't44', window => '2s', locations => [
            '/closed/' => guarded(with => ['distill_guard_fail closed;']),
            '/closed-shadow/' => guarded(before =>
                ['distill_guard_mode shadow;'],
                with => ['distill_guard_fail closed;']),
            '/shadow-rate/' => guarded(before =>
                ['distill_guard_mode shadow;'],
                with => ['distill_guard_rate 1r/m;']),
            '/hot/' => guarded(with => [@DG::Util::HOT,
                'distill_guard_penalty 1s;']),
        ]));

subtest 'shadow mode says why it would refuse' => sub {
    my $key = 'sk-t44-shadow-0001';
    my @r = map { post($ngx, '/shadow-rate/x', $key) } 1 .. 3;
    is_deeply([map { $_->{status} } @r], [200, 200, 200], 'nothing refused');
    is($r[2]{vars}{action}, 'tag', 'the would-be refusal is tagged')
        or diag_res($r[2]);
    like(signals_of($r[2]), qr/\brate_limit\b/, 'signals name the rate');
};

subtest 'a key back to pass writes its event' => sub {
    my $key = 'sk-t44-back-0002';
    my $res;
    for my $i (1 .. 3) {
        $res = post($ngx, '/hot/x', $key, templated($i));
    }
    my @ev = grep { $_->{key_id} eq key_id($key) }
        xrange($redis, 't44:events');
    is($ev[0]{to} // '', 'throttle', 'throttled first') or return;
    # the window (2 s) and the penalty (1 s) pass; the state hash lives on
    sleep 2.3;
    $res = post($ngx, '/hot/x', $key, chat('hello there'));
    is($res->{status}, 200, 'a plain prompt passes') or diag_res($res);
    is($res->{vars}{action}, 'pass', 'action pass') or diag_res($res);
    @ev = grep { $_->{key_id} eq key_id($key) }
        xrange($redis, 't44:events');
    is($ev[-1]{from} // '', 'throttle', 'last event from throttle');
    is($ev[-1]{to} // '', 'pass', 'last event to pass');
};

subtest 'fail closed: action unavailable; counters add up' => sub {
    my $key = 'sk-t44-closed-0003';
    my $res = post($ngx, '/closed/x', $key);
    is($res->{status}, 200, 'closed: 200 while Redis answers');
    my $before = stats($ngx);
    $redis->pause;
    $res = post($ngx, '/closed/x', $key);
    is($res->{status}, 503, 'closed: 503 with Redis frozen')
        or diag_res($res);
    is(hdr($res, 'x-distill-guard-action'), 'unavailable',
        'X-Distill-Guard-Action: unavailable');
    like(hdr($res, 'x-distill-guard-signals') // '',
        qr/\bredis_unavailable\b/, 'signals: redis_unavailable');
    my $sh = post($ngx, '/closed-shadow/x', $key);
    is($sh->{status}, 200, 'closed + shadow: nothing refused')
        or diag_res($sh);
    $redis->resume;
    my $after = stats($ngx);
    is(($after->{unavailable} // 0) - ($before->{unavailable} // 0), 1,
        'stats unavailable grew by one');
    is(($after->{would_refuse} // 0) - ($before->{would_refuse} // 0), 1,
        'stats would_refuse grew by one (the shadow one)');
    is(($after->{refused} // 0) - ($before->{refused} // 0), 1,
        'stats refused grew by one');
    is(add_up($after), $after->{requests},
        'passed + tagged + throttled + skipped + unavailable = requests')
        or diag(explain $after);
};

logs_clean($ngx);

done_testing;
