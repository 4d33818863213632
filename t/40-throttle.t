#!/usr/bin/perl
# Detection outcomes: a key whose score reaches the throttle threshold is
# held to distill_guard_throttle_rate (429, Retry-After, RateLimit-Policy,
# RateLimit), is written to <prefix>:flagged and <prefix>:events; other
# keys are unaffected; tag, shadow mode, distill_guard_rate, bypass,
# distill_guard_headers off, distill_guard_reject_status, the penalty.
#
# The score is forced rather than left to the tuned defaults: with
# distill_guard_min_requests 1 and distill_guard_weight template 10, one
# templated prompt alone saturates the score; prompts too short to have
# a template score 0 there (coverage is weighted 0).
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use DG::Util qw(chat post hdr diag_res stats xrange http_conf guarded
    logs_clean);
use Time::HiRes qw(sleep time);

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();

DG::Harness::watchdog(100);

my $SECRET = 't40-secret-Hv5n';

sub key_id { DG::Util::key_id($_[0], $SECRET) }

my @TOPICS = @DG::Util::TOPICS[0 .. 11];

sub templated { DG::Util::templated($_[0], @TOPICS) }

# short, one segment: no template fingerprint; short(0) is post()'s
# default body
my @SHORT = ($DG::Util::DEFAULT_PROMPT, 'hello there',
    'thanks a lot', 'how are you', 'tell me a joke', 'good morning');
sub short { chat($SHORT[$_[0] % @SHORT]) }

# Sends templated prompts from $key to $path until the first refusal
# (at most $max); returns (the refused response or undef, all responses).
sub until_refused {
    my ($ngx, $path, $key, $max, %h) = @_;
    my @all;
    for my $i (1 .. $max) {
        my $res = post($ngx, $path, $key, templated($i), %h);
        push @all, $res;
        return ($res, @all) if $res->{status} != 200;
    }
    return (undef, @all);
}

# a hot location, with @before ahead of its directives
sub hot { guarded(before => [@_], with => \@DG::Util::HOT) }

my $ALLOWED = 'sk-t40-allowed-0009';
my $ALLOWED_ID = key_id($ALLOWED);

my $redis = DG::Harness::Redis->start;
my $up = DG::Harness::Upstream->start;
my $ngx = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
    http => http_conf(secret => $SECRET, redis => '%%REDIS%% timeout=1s',
        prefix => 't40', window => '30s', head => <<"EOF",
map \$distill_guard_key_id \$dg_allow {
    default 0;
    $ALLOWED_ID 1;
}
EOF
    locations => [
        '/hot/'        => hot(),
        '/shadow/'     => hot('distill_guard_mode shadow;'),
        '/quiet/'      => hot('distill_guard_headers off;'),
        '/s403/'       => hot('distill_guard_reject_status 403;'),
        '/bypass-hdr/' => hot('distill_guard_bypass $http_x_internal;'),
        '/bypass-key/' => hot('distill_guard_bypass $dg_allow;'),
        # template alone, weight 0.6: tagged, never throttled
        '/tag/'  => guarded(with => \@DG::Util::TAG),
        '/rate/' => guarded(with => ['distill_guard_rate 2r/s burst=1;']),
    ]));

my $K1 = 'sk-t40-campaign-0001';
my $K1_ID = key_id($K1);

subtest 'a templated campaign key is throttled' => sub {
    my $before = stats($ngx);
    my ($r429, @all) = until_refused($ngx, '/hot/x', $K1, 10);
    note('statuses: ' . join ' ', map { $_->{status} } @all);
    note('actions: ' . join ' ', map { $_->{vars}{action}
        // hdr($_, 'x-distill-guard-action') // '?' } @all);
    ok($r429, 'refused after ' . scalar(@all) . ' requests (at most 10)')
        or return diag_res($all[-1]);
    is($r429->{status}, 429, 'status 429');
    my $ra = hdr($r429, 'retry-after') // '';
    like($ra, qr/^\d+$/, "Retry-After in seconds ($ra)");
    cmp_ok($ra || 0, '>=', 1, 'Retry-After >= 1');
    cmp_ok($ra || 0, '<=', 60, 'Retry-After <= 60 (6r/m: one each 10 s)');
    is(hdr($r429, 'ratelimit-policy'), '"throttle";q=6;w=60',
        'RateLimit-Policy: "throttle";q=6;w=60');
    my $rl = hdr($r429, 'ratelimit') // '';
    like($rl, qr/^"throttle";r=0;t=\d+$/, "RateLimit: $rl");
    my ($t) = $rl =~ /t=(\d+)/;
    is($t, $ra, 'RateLimit t = Retry-After') if defined $t;
    is(hdr($r429, 'x-distill-guard-action'), 'throttle',
        'X-Distill-Guard-Action: throttle on the 429');
    my $score = hdr($r429, 'x-distill-guard-score') // '';
    like($score, qr/^[01]\.\d{3}$/, "X-Distill-Guard-Score $score");
    cmp_ok($score || 0, '>=', 0.8, 'score >= the throttle threshold');
    like(hdr($r429, 'x-distill-guard-signals') // '', qr/template/,
        'X-Distill-Guard-Signals names template');

    # more requests right away: refused too
    my @next = map { post($ngx, '/hot/x', $K1, templated(20 + $_))->{status} }
        1 .. 3;
    is_deeply(\@next, [429, 429, 429], 'the next quick requests: 429');
    # a prompt without a template: the key is still held
    is(post($ngx, '/hot/x', $K1, short(1))->{status}, 429,
        'a harmless prompt from the throttled key: 429');

    my $sent = grep { ($_->{headers}{authorization} // '') =~ /\Q$K1\E/ }
        $up->requests;
    my $passed = grep { $_->{status} == 200 } @all;
    is($sent, $passed, "the upstream got only the $passed passed requests");

    my $after = stats($ngx);
    cmp_ok(($after->{throttled} // 0) - ($before->{throttled} // 0), '>=', 5,
        'stats throttled grew by the refusals');
    cmp_ok(($after->{refused} // 0) - ($before->{refused} // 0), '>=', 5,
        'stats refused grew');

    sleep 0.3;      # the state writes are not waited for
    my $z = $redis->cli('ZSCORE', 't40:flagged', $K1_ID);
    like($z, qr/^[\d.]+$/, "t40:flagged has the key id (score $z)");
    cmp_ok($z || 0, '>=', 0.8, 'with its score');
    my @ev = grep { ($_->{key_id} // '') eq $K1_ID }
        xrange($redis, 't40:events');
    my ($ev) = grep { ($_->{to} // '') eq 'throttle' } @ev;
    ok($ev, 't40:events has an entry to throttle for the key')
        or diag(explain \@ev);
    if ($ev) {
        for my $f (qw(key_id from to score signals)) {
            ok(exists $ev->{$f}, "event field $f");
        }
        like($ev->{from}, qr/^(?:pass|tag)$/, "from $ev->{from}");
        cmp_ok($ev->{score}, '>=', 0.8, "score $ev->{score}");
        like($ev->{signals}, qr/template/, "signals $ev->{signals}");
    }
    like($ngx->error_log, qr/distill_guard: key $K1_ID \S+ -> throttle/,
        'the change is logged with the key id');
    unlike($ngx->error_log, qr/\Q$K1\E/, 'the raw key is not logged');
};

subtest 'another key is unaffected' => sub {
    my $key = 'sk-t40-human-0002';
    my @st;
    for my $i (0 .. 7) {
        my $res = post($ngx, '/hot/x', $key, short($i));
        push @st, $res->{status};
        if ($i == 7) {
            is($res->{vars}{action}, 'pass', 'action pass') or diag_res($res);
            is(hdr($res, 'x-distill-guard-action'), 'pass',
                'X-Distill-Guard-Action: pass');
            like(hdr($res, 'x-distill-guard-score') // '', qr/^0\.\d{3}$/,
                'X-Distill-Guard-Score present');
            ok(defined hdr($res, 'x-distill-guard-signals'),
                'X-Distill-Guard-Signals present');
        }
    }
    is_deeply(\@st, [(200) x 8], 'all 200');
    is($redis->cli('ZSCORE', 't40:flagged', key_id($key)), '',
        'not in t40:flagged');
};

subtest 'tag: score between the thresholds' => sub {
    my $key = 'sk-t40-tagged-0003';
    my $before = stats($ngx);
    my $res;
    for my $i (1 .. 3) {
        $res = post($ngx, '/tag/x', $key, templated($i));
        is($res->{status}, 200, "request $i: 200");
        is($res->{vars}{action}, 'tag', "request $i: action tag")
            or diag_res($res);
    }
    is(hdr($res, 'x-distill-guard-action'), 'tag', 'X-Distill-Guard-Action: tag');
    is($res->{vars}{score}, '0.600', 'score 0.600 (template weight 0.6)');
    my $after = stats($ngx);
    is(($after->{tagged} // 0) - ($before->{tagged} // 0), 3,
        'stats tagged grew by 3');
    sleep 0.3;
    my $z = $redis->cli('ZSCORE', 't40:flagged', key_id($key));
    is($z + 0, 0.6, 't40:flagged has it at 0.6') if length $z;
    ok(length $z, 'tagged keys are flagged too');
    my ($ev) = grep { ($_->{key_id} // '') eq key_id($key) }
        xrange($redis, 't40:events');
    ok($ev, 'an event for it') or return;
    is($ev->{from}, 'pass', 'from pass');
    is($ev->{to}, 'tag', 'to tag');
};

subtest 'shadow mode refuses nothing' => sub {
    my $key = 'sk-t40-shadow-0004';
    my $before = stats($ngx);
    my (@st, @act);
    for my $i (1 .. 8) {
        my $res = post($ngx, '/shadow/x', $key, templated($i));
        push @st, $res->{status};
        push @act, $res->{vars}{action} // 'undef';
    }
    is_deeply(\@st, [(200) x 8], 'all 200') or diag("actions: @act");
    ok((grep { $_ eq 'tag' } @act), 'would-be refusals are tagged')
        or diag("actions: @act");
    ok(!(grep { $_ eq 'throttle' } @act), 'no action throttle')
        or diag("actions: @act");
    my $after = stats($ngx);
    is(($after->{refused} // 0) - ($before->{refused} // 0), 0,
        'stats refused unchanged');
    ok(exists $after->{would_refuse}, 'stats has would_refuse')
        or diag(explain $after);
    cmp_ok(($after->{would_refuse} // 0) - ($before->{would_refuse} // 0),
        '>=', 1, 'stats would_refuse grew');
    like($ngx->error_log, qr/distill_guard: key ${\ key_id($key)} .*\(shadow\)/,
        'the change is logged, marked shadow');
};

subtest 'distill_guard_headers off' => sub {
    my $key = 'sk-t40-quiet-0005';
    my ($r429, @all) = until_refused($ngx, '/quiet/x', $key, 10);
    ok($r429, 'refused') or return;
    is($r429->{status}, 429, 'refused with 429');
    ok(defined hdr($r429, 'retry-after'), 'Retry-After still sent');
    ok(defined hdr($r429, 'ratelimit'), 'RateLimit still sent');
    my @x = grep { /^x-distill-guard-/ } map { keys %{ $_->{headers} } }
        @all;
    is_deeply(\@x, [], 'no X-Distill-Guard-* header on any answer');
};

subtest 'distill_guard_reject_status 403' => sub {
    my ($r, @all) = until_refused($ngx, '/s403/x', 'sk-t40-s403-0006', 10);
    ok($r, 'refused') or return;
    is($r->{status}, 403, 'status 403');
    like(hdr($r, 'retry-after') // '', qr/^\d+$/, 'with Retry-After');
    is(hdr($r, 'ratelimit-policy'), '"throttle";q=6;w=60',
        'and RateLimit-Policy');
};

subtest 'distill_guard_rate 2r/s burst=1' => sub {
    my $key = 'sk-t40-rate-0007';
    my @res = map { post($ngx, '/rate/x', $key, short($_)) } 1 .. 8;
    my @st = map { $_->{status} } @res;
    note("statuses: @st");
    is($st[0], 200, 'the first request passes');
    my ($r) = grep { $_->{status} == 429 } @res;
    ok($r, 'rapid requests get 429') or return;
    cmp_ok(scalar(grep { $_ == 200 } @st), '<=', 5,
        'at most burst + rate (+ margin) passed');
    like(hdr($r, 'ratelimit-policy') // '', qr/^"rate";q=[23];w=1$/,
        'RateLimit-Policy "rate";q=..;w=1: '
        . (hdr($r, 'ratelimit-policy') // 'undef'));
    like(hdr($r, 'ratelimit') // '', qr/^"rate";r=0;t=\d+$/,
        'RateLimit "rate";r=0;t=..: ' . (hdr($r, 'ratelimit') // 'undef'));
    like(hdr($r, 'retry-after') // '', qr/^[12]$/, 'Retry-After 1 (or 2)');
    is(hdr($r, 'x-distill-guard-action'), 'throttle',
        'X-Distill-Guard-Action: throttle');
    is(post($ngx, '/rate/x', 'sk-t40-rate-other-0008')->{status}, 200,
        'another key: 200 (the limit is per key)');
    sleep 1.6;
    is(post($ngx, '/rate/x', $key)->{status}, 200, 'after 1.6 s: 200 again');
    is($redis->cli('ZSCORE', 't40:flagged', key_id($key)), '',
        'a plain rate limit does not flag the key');
};

subtest 'distill_guard_bypass on a header' => sub {
    # K1 is throttled (first subtest)
    my $res = post($ngx, '/bypass-hdr/x', $K1, templated(50),
        'X-Internal' => 'yes');
    is($res->{status}, 200, 'X-Internal: yes: 200 for a throttled key');
    is($res->{vars}{action}, 'skip', 'action skip') or diag_res($res);
    $res = post($ngx, '/bypass-hdr/x', $K1, templated(51),
        'X-Internal' => '0');
    is($res->{status}, 429, 'X-Internal: 0: not bypassed (429)');
    $res = post($ngx, '/bypass-hdr/x', $K1, templated(52));
    is($res->{status}, 429, 'no X-Internal: 429');
    my $before = stats($ngx);
    post($ngx, '/bypass-hdr/x', 'sk-t40-any-0010', short(1),
        'X-Internal' => 1);
    my $after = stats($ngx);
    is(($after->{skipped} // 0) - ($before->{skipped} // 0), 1,
        'stats skipped grew by 1');
};

subtest 'distill_guard_bypass with a map on $distill_guard_key_id' => sub {
    my $before = stats($ngx);
    my $res = post($ngx, '/bypass-key/x', $ALLOWED, templated(60));
    is($res->{status}, 200, 'the allow-listed key: 200');
    is($res->{vars}{action}, 'skip', 'action skip (map on the key id)')
        or diag_res($res);
    is($res->{vars}{key_id}, $ALLOWED_ID, '$distill_guard_key_id is its id');
    is((stats($ngx)->{skipped} // 0) - ($before->{skipped} // 0), 1,
        'stats skipped grew by 1');
    my ($r, @all) = until_refused($ngx, '/hot/x', $ALLOWED, 10);
    ok($r, 'the allow-listed key is throttled where no bypass is set')
        or return;
    $res = post($ngx, '/bypass-key/x', $ALLOWED, templated(61));
    is($res->{status}, 200, 'where the map bypasses it: still 200')
        or diag_res($res);
    $res = post($ngx, '/bypass-key/x', $K1, templated(62));
    is($res->{status}, 429, 'a key not in the map: 429 (K1 is throttled)');
};

# The penalty: window 2 s, penalty 4 s, one request a minute.
my $pen = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
    http => http_conf(secret => $SECRET, redis => '%%REDIS%% timeout=1s',
        prefix => 't40p', window => '2s', stats => 0, locations => [
            '/hot/' => hot('distill_guard_penalty 4s;',
                'distill_guard_throttle_rate 1r/m;'),
        ]));

subtest 'distill_guard_penalty outlasts the window, then ends' => sub {
    my $key = 'sk-t40-penalty-0011';
    my ($r, @all) = until_refused($pen, '/hot/x', $key, 5);
    my $t_last = time;          # the last templated request
    ok($r, 'throttled') or return;
    is(hdr($r, 'ratelimit-policy'), '"throttle";q=1;w=60',
        'RateLimit-Policy "throttle";q=1;w=60');
    sleep 2.5;
    my $res = post($pen, '/hot/x', $key, short(2));
    if (time - $t_last < 3.8) {
        is($res->{status}, 429,
            'window over, penalty not: a harmless prompt gets 429')
            or diag_res($res);
    }
    my $wait = $t_last + 4.8 - time;
    sleep $wait if $wait > 0;
    $res = post($pen, '/hot/x', $key, short(3));
    is($res->{status}, 200, 'penalty over: 200') or diag_res($res);
    isnt($res->{vars}{action}, 'throttle', 'not throttled')
        or diag_res($res);
};

# A second node on the same Redis that knew the key before its penalty
# (its worker takes the gateway's own path for it, with no throttle):
# the period the penalty's first request took holds there too
my $node2 = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
    http => http_conf(secret => $SECRET, redis => '%%REDIS%% timeout=1s',
        prefix => 't40', window => '30s', locations => ['/hot/' => hot()]));

subtest 'a penalty set by another node: the period holds at once' => sub {
    my $key = 'sk-t40-node2-0012';
    for my $i (0, 1) {
        my $res = post($node2, '/hot/x', $key, short($i));
        is($res->{status}, 200, "node 2 knows the key: request $i passes")
            or diag_res($res);
    }
    # the request that starts the penalty takes its first period: the
    # next one on node 1 is refused
    my ($r) = until_refused($ngx, '/hot/x', $key, 5);
    ok($r && hdr($r, 'x-distill-guard-action') eq 'throttle',
       'node 1 penalises it');
    sleep 0.2;                  # the state writes are not waited for
    my $res = post($node2, '/hot/x', $key, short(2));
    is($res->{status}, 429, 'node 2: 429, the period is taken')
        or diag_res($res);
    like(hdr($res, 'retry-after') // '', qr/^\d+$/, 'with Retry-After');
    $res = post($node2, '/hot/x', $key, short(3));
    is($res->{status}, 429, 'and the next') or diag_res($res);
};

logs_clean($_->[1], $_->[0], errors => 1)
    for [main => $ngx], [penalty => $pen], [node2 => $node2];

done_testing();
