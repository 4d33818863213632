#!/usr/bin/perl
# Conversation provenance through nginx and Redis: a follow-up that
# carries the key's own earlier turn and the answer it got is verified;
# a history the key never sent is fabricated and shows as a signal (in
# the headers, the variables, the events stream and the stats); a
# preamble repeated in every request (few-shot examples) is a prefix;
# a verified conversation's first follow-up counts its key on the
# conversation HLL of the template it opened with.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use DG::Util qw(post hdr diag_res stats xrange http_conf guarded window_of
    signals_of logs_clean);
use JSON::PP;

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();

DG::Harness::watchdog(60);

my $SECRET = 't43-secret-Qm2z';
my $J = JSON::PP->new->utf8->canonical;

sub key_id { DG::Util::key_id($_[0], $SECRET) }

sub body {
    my (@turns) = @_;
    my $role = 'user';
    my @m;
    for my $t (@turns) {
        push @m, { role => $role, content => $t };
        $role = $role eq 'user' ? 'assistant' : 'user';
    }
    return $J->encode({ model => 'gpt-4o', messages => \@m });
}

sub answer_of {
    my ($res) = @_;
    my $j = eval { $J->decode($res->{content}) } or return '';
    return $j->{choices}[0]{message}{content} // '';
}

sub history_of { my $w = window_of($_[0]); $w ? $w->{history} : undef }

# the fabricated signal alone decides
my @FAB = ('distill_guard_min_requests 1;',
    'distill_guard_weight fabricated 10;',
    map { "distill_guard_weight $_ 0;" }
        qw(coverage template fanout cot single_turn regular volume));

my $redis = DG::Harness::Redis->start;
my $up = DG::Harness::Upstream->start;
my $ngx = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
    http => http_conf(secret => $SECRET, redis => '%%REDIS%% timeout=1s',
        prefix => 't43', window => '30s', locations => [
            '/fab/' => guarded(with => \@FAB),
            '/v1/'  => guarded(),
        ]));

subtest 'a real follow-up is verified' => sub {
    my $key = 'sk-t43-person-0001';
    my $q1 = 'What should I plant in a shady corner of my garden?';
    my $r1 = post($ngx, '/fab/x', $key, body($q1));
    is($r1->{status}, 200, 'opening: 200') or diag_res($r1);
    is(history_of($r1), 'none', 'opening: no history');
    my $a1 = answer_of($r1);
    ok(length $a1, 'the upstream answered');
    my $r2 = post($ngx, '/fab/x', $key, body($q1, $a1, 'and in full sun?'));
    is(history_of($r2), 'verified', 'follow-up: verified') or diag_res($r2);
    is($r2->{vars}{action}, 'pass', 'follow-up: pass');
    unlike(signals_of($r2), qr/fabricated/, 'no fabricated signal');
    # a trimmed history still ends in a turn this key sent
    my $a2 = answer_of($r2);
    my $r3 = post($ngx, '/fab/x', $key,
        body('and in full sun?', $a2, 'which of them are perennial?'));
    is(history_of($r3), 'verified', 'trimmed history: verified')
        or diag_res($r3);
};

subtest 'a made-up history is fabricated, and says so' => sub {
    my $key = 'sk-t43-campaign-0002';
    my $before = stats($ngx);
    my $res = post($ngx, '/fab/x', $key,
        body('Explain the causes of the French revolution.',
             'It had economic, social and political causes.',
             'go on, in more detail'));
    is(history_of($res), 'fabricated', 'fabricated') or diag_res($res);
    like(signals_of($res), qr/\bfabricated\b/, '$distill_guard_signals');
    like(hdr($res, 'x-distill-guard-signals') // '', qr/\bfabricated\b/,
        'X-Distill-Guard-Signals');
    my $after = stats($ngx);
    cmp_ok(($after->{signals}{fabricated} // 0)
        - ($before->{signals}{fabricated} // 0), '>=', 1,
        'stats signals.fabricated grew') or diag(explain $after);
    my ($ev) = grep { $_->{key_id} eq key_id($key) }
        xrange($redis, 't43:events');
    ok($ev, 'a state change in the events stream') or return;
    like($ev->{signals} // '', qr/\bfabricated\b/, 'the event names it');
    my $prom = $ngx->request(GET => '/dg-stats?format=prometheus');
    like($prom->{content} // '',
        qr/^distill_guard_signals_total\{signal="fabricated"\} [1-9]/m,
        'Prometheus counter per signal');
};

subtest 'a repeated preamble is a prefix, not fabricated' => sub {
    my $key = 'sk-t43-fewshot-0003';
    my @shots = ('Label the sentiment: "I love it"', 'positive',
        'Label the sentiment: "Terrible service"', 'negative');
    my @h;
    for my $text ('Label the sentiment: "Fine, I guess"',
        'Label the sentiment: "Best purchase ever"',
        'Label the sentiment: "It broke after a day"')
    {
        my $res = post($ngx, '/v1/x', $key, body(@shots, $text));
        push @h, history_of($res) // 'undef';
    }
    is_deeply(\@h, [qw(fabricated prefix prefix)],
        'the first one is not known yet; then a prefix');
};

subtest 'a verified conversation counts on its opening template' => sub {
    my $key = 'sk-t43-tool-0004';
    my $open = "<user_request>\nwrite a function that reverses a list\n"
        . "</user_request>\n\nFollow the repository's coding conventions "
        . 'and answer with a unified diff only.';
    my $r1 = post($ngx, '/v1/x', $key, body($open));
    is($r1->{status}, 200, 'opening: 200');
    my $r2 = post($ngx, '/v1/x', $key,
        body($open, answer_of($r1), 'now add a test for it'));
    is(history_of($r2), 'verified', 'verified') or diag_res($r2);
    my @c;
    for (1 .. 20) {
        @c = grep { length } split /\n/,
            $redis->cli('--scan', '--pattern', 't43:{[ht]:*}:c*');
        last if @c;
        select undef, undef, undef, 0.05;
    }
    ok(@c >= 1, 'conversation HLLs written: ' . join(' ', @c));
    for my $k (@c) {
        is($redis->cli('PFCOUNT', $k), 1, "$k counts the key");
        my $t = $redis->cli('PTTL', $k);
        ok($t > 0, "$k has a TTL");
    }
};

logs_clean($ngx, undef, errors => 1);

done_testing;
