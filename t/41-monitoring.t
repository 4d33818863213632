#!/usr/bin/perl
# distill_guard_stats: instance-wide counters (two workers: the totals are
# the requests sent), the redis block, the Prometheus text, counters kept
# across a reload.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use DG::Util qw(chat templated blast http_conf guarded logs_clean);
use Time::HiRes qw(sleep time);

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();

DG::Harness::watchdog(60);

# Polls /dg-stats until redis.workers_ready is $want, at most $tries
# times; returns the last value seen.
sub workers_ready {
    my ($ngx, $want, $tries) = @_;
    my $ready;
    for (1 .. $tries) {
        $ready = ($ngx->get_json('/dg-stats') || {})->{redis}{workers_ready};
        last if ($ready // 0) == $want;
        sleep 0.1;
    }
    return $ready;
}

my $redis = DG::Harness::Redis->start;
my $up = DG::Harness::Upstream->start;
my $ngx = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
    workers => 2, access_log_format => '$pid $status $request_uri',
    http => http_conf(secret => 't41-secret',
        redis => '%%REDIS%% timeout=2s', prefix => 't41',
        window => '60s', reuseport => 1, locations => [
            '/v1/'    => guarded(vars => 0),
            '/small/' => guarded(vars => 0,
                with => ['distill_guard_body_max 1k;']),
            '/hot/'   => guarded(vars => 0, with => \@DG::Util::HOT),
            '/tag/'   => guarded(vars => 0, with => \@DG::Util::TAG),
            '/off/'   => ['proxy_pass http://%%UPSTREAM%%;'],
        ]));

my @FIELDS = qw(requests passed tagged throttled refused skipped truncated);
my @REDIS = qw(errors timeouts unavailable reconnects latency_p50_us
    latency_p99_us workers_ready workers_connecting workers_down);

my $st0;
subtest 'fresh instance: the JSON document' => sub {
    my $res = $ngx->request(GET => '/dg-stats');
    is($res->{status}, 200, 'status 200');
    like($res->{headers}{'content-type'} // '', qr{^application/json},
        'application/json');
    $st0 = DG::Harness::json_decode($res->{content});
    ok(ref $st0 eq 'HASH', 'a JSON object') or return diag($res->{content});
    for my $f (@FIELDS) {
        ok(exists $st0->{$f}, "has $f");
        is($st0->{$f}, 0, "$f is 0");
    }
    # would_refuse (shadow mode) is checked in t/40-throttle.t
    is($st0->{would_refuse}, 0, 'would_refuse is 0') if exists $st0->{would_refuse};
    ok(ref $st0->{redis} eq 'HASH', 'has redis {}') or return;
    ok(exists $st0->{redis}{$_}, "redis.$_") for @REDIS;
    # the workers connect at start
    is(workers_ready($ngx, 2, 20), 2, 'redis.workers_ready 2 (two workers)');
    is($ngx->request(POST => '/dg-stats', { content => 'x' })->{status},
        405, 'POST: 405');
};

my %sent = (pass => 0, tag => 0, throttle => 0, skip => 0, truncated => 0);
my %sig;    # signals named in X-Distill-Guard-Signals, over every answer
my $total = 0;

sub count_signals {
    my ($r) = @_;
    $sig{$_}++ for grep { length }
        split /,/, $r->{headers}{'x-distill-guard-signals'} // '';
}

subtest 'counters for the whole instance (2 workers)' => sub {
    # distinct per connection: no template shared across keys
    my @big = map { chat("long prompt number $_ " . ('about rivers and lakes '
        x 80) . "and that is all for number $_") } 0 .. 11;
    # per connection: 3 plain, 1 without a key, 1 truncated body
    my @res = blast($ngx->port, 12, 5, sub {
        my ($c, $i) = @_;
        return $i == 3 ? ['/v1/x', undef, chat("no key $c")]
             : $i == 4 ? ['/small/x', "sk-t41-big-$c", $big[$c]]
             : ['/v1/x', "sk-t41-plain-$c", chat("What is question $i?")];
    });
    is(scalar @res, 60, '60 answers');
    is(scalar(grep { $_->{status} == 200 } @res), 60, 'all 200');
    my %pids = map { (split / /)[0] => 1 } $ngx->access_log_lines;
    cmp_ok(scalar keys %pids, '>=', 2, 'both workers served');
    for my $r (@res) {
        my $a = $r->{headers}{'x-distill-guard-action'} // 'skip';
        $sent{$a}++;
        count_signals($r);
    }
    $sent{truncated} += 12;
    $total += 60;

    # tagged and throttled requests, sequentially
    for my $i (1 .. 4) {
        my $r = $ngx->request(POST => '/tag/x', { headers => {
            Authorization => 'Bearer sk-t41-tag' }, content => templated($i) });
        $sent{ $r->{headers}{'x-distill-guard-action'} // 'skip' }++;
        count_signals($r);
        $total++;
    }
    for my $i (1 .. 8) {
        my $r = $ngx->request(POST => '/hot/x', { headers => {
            Authorization => 'Bearer sk-t41-hot' }, content => templated($i) });
        $sent{ $r->{headers}{'x-distill-guard-action'} // 'skip' }++;
        count_signals($r);
        $total++;
    }
    # not guarded: not counted
    $ngx->request(POST => '/off/x', { content => 'x' }) for 1 .. 3;
    note(join ', ', map { "$_=$sent{$_}" } sort keys %sent);
    cmp_ok($sent{throttle}, '>', 0, 'some requests were refused');
    cmp_ok($sent{tag}, '>=', 4, 'the four /tag/ requests were tagged');
    is($sent{skip}, 12, 'twelve without a key');

    my $st = $ngx->get_json('/dg-stats') || {};
    is($st->{requests}, $total, "requests = $total sent");
    is($st->{passed}, $sent{pass}, "passed = $sent{pass}");
    is($st->{tagged}, $sent{tag}, "tagged = $sent{tag}");
    is($st->{refused}, $sent{throttle}, "refused = $sent{throttle}");
    is($st->{throttled}, $sent{throttle}, "throttled = $sent{throttle}");
    is($st->{skipped}, $sent{skip}, "skipped = $sent{skip}");
    is($st->{truncated}, $sent{truncated}, "truncated = $sent{truncated}");
    is($st->{passed} + $st->{tagged} + $st->{refused} + $st->{skipped},
        $st->{requests}, 'passed + tagged + refused + skipped = requests');
    my $r = $st->{redis} || {};
    is($r->{errors}, 0, 'redis.errors 0');
    is($r->{timeouts}, 0, 'redis.timeouts 0');
    is($r->{unavailable}, 0, 'redis.unavailable 0');
    is($r->{reconnects}, 0, 'redis.reconnects 0');
    cmp_ok($r->{latency_p50_us} // 0, '>', 0, 'latency_p50_us > 0');
    cmp_ok($r->{latency_p99_us} // 0, '>=', $r->{latency_p50_us} // 0,
        'latency_p99_us >= p50');
    cmp_ok($r->{latency_p99_us} // 0, '<', 2_000_000, 'p99 < timeout');
    is($r->{workers_ready}, 2, 'workers_ready 2');
    is($r->{workers_down}, 0, 'workers_down 0');
    is($r->{workers_connecting}, 0, 'workers_connecting 0');

    # one round trip per accounted request
    is($r->{latency_count}, $total - $sent{skip},
        'redis.latency_count = accounted requests');
    cmp_ok($r->{latency_sum_us} // 0, '>=', $r->{latency_count} // 1,
        'redis.latency_sum_us >= 1 us per request');

    # per signal: the sum of what the answers named
    note('signals: ' . join ', ', map { "$_=$sig{$_}" } sort keys %sig);
    cmp_ok($sig{template} // 0, '>', 0, 'some answers named "template"');
    ok(ref $st->{signals} eq 'HASH', 'has signals {}') or return;
    for my $s (qw(coverage template fanout single_turn cot regular volume
                  redis_unavailable)) {
        is($st->{signals}{$s}, $sig{$s} // 0,
            "signals.$s = " . ($sig{$s} // 0) . ' named in the answers');
    }
};

subtest 'Prometheus text' => sub {
    my $st = $ngx->get_json('/dg-stats') || {};
    my $res = $ngx->request(GET => '/dg-stats?format=prometheus');
    is($res->{status}, 200, 'status 200');
    like($res->{headers}{'content-type'} // '', qr{^text/plain},
        'text/plain');
    my $t = $res->{content} // '';
    like($t, qr/^# TYPE distill_guard_requests_total counter$/m,
        '# TYPE distill_guard_requests_total counter');
    my %want = (pass => $st->{passed}, tag => $st->{tagged},
        throttle => $st->{refused}, skip => $st->{skipped});
    for my $a (sort keys %want) {
        like($t, qr/^distill_guard_requests_total\{action="$a"\} \Q$want{$a}\E$/m,
            "distill_guard_requests_total{action=\"$a\"} $want{$a}");
    }
    my @bad = grep { !/^# (?:HELP|TYPE) \S+ .+$/
        && !/^[a-z_]+(?:\{[a-z_]+="[^"]*"(?:,[a-z_]+="[^"]*")*\})? -?[\d.]+(?:e[+-]?\d+)?$/ }
        split /\n/, $t;
    is_deeply(\@bad, [], 'every line is a comment or a sample');
    my %typed = map { $_ => 1 } $t =~ /^# TYPE (\S+) /mg;
    # a histogram's samples are its name with _bucket, _sum, _count
    my @untyped = grep { !$typed{$_} } map { my $m = $_;
        $m =~ s/_(?:bucket|sum|count)$// unless $typed{$m}; $m }
        $t =~ /^([a-z_]+)[{ ]/mg;
    is_deeply(\@untyped, [], 'every metric has a # TYPE line');
    like($t, qr/^distill_guard_redis_workers\{state="ready"\} 2$/m,
        'redis workers ready 2');
    my %helped = map { $_ => 1 } $t =~ /^# HELP (\S+) /mg;
    my @unhelped = grep { !$helped{$_} } keys %typed;
    is_deeply(\@unhelped, [], 'every metric has a # HELP line');

    for my $s (sort keys %{ $st->{signals} || {} }) {
        like($t, qr/^distill_guard_signals_total\{signal="$s"\} $st->{signals}{$s}$/m,
            "distill_guard_signals_total{signal=\"$s\"} $st->{signals}{$s}");
    }

    # the latency histogram, in seconds, cumulative
    like($t, qr/^# TYPE distill_guard_redis_latency_seconds histogram$/m,
        'latency: TYPE histogram');
    my @b = $t =~ /^distill_guard_redis_latency_seconds_bucket\{le="([^"]+)"\} (\d+)$/mg;
    my (@le, @n);
    while (my ($le, $n) = splice @b, 0, 2) { push @le, $le; push @n, $n }
    is($le[0], '0.000016', 'first bucket: le="0.000016" (16 us)');
    is($le[-1], '+Inf', 'last bucket: le="+Inf"');
    my @down = grep { $n[$_] < $n[$_ - 1] } 1 .. $#n;
    is_deeply(\@down, [], 'bucket counts never decrease');
    my @unsorted = grep { $le[$_] ne '+Inf' && $le[$_] <= $le[$_ - 1] }
        1 .. $#le;
    is_deeply(\@unsorted, [], 'bounds increase');
    my ($count) = $t =~ /^distill_guard_redis_latency_seconds_count (\d+)$/m;
    my ($sum) = $t =~ /^distill_guard_redis_latency_seconds_sum ([\d.]+)$/m;
    is($count, $st->{redis}{latency_count}, '_count = redis.latency_count');
    is($n[-1], $count, '+Inf bucket = _count');
    is($sum, sprintf('%d.%06d', int($st->{redis}{latency_sum_us} / 1e6),
        $st->{redis}{latency_sum_us} % 1e6), '_sum = latency_sum_us in s');
    cmp_ok($sum, '>', 0, '_sum > 0');
    unlike($t, qr/_us\b/, 'no metric in microseconds');

    # the reference checker (Debian package prometheus, .ci/deps.sh)
    my ($promtool) = grep { -x } map { "$_/promtool" }
        split /:/, "$ENV{PATH}:/usr/bin";
    ok($promtool, 'promtool installed') or return;
    my $f = DG::Harness::tempdir_for('prom') . '/metrics.txt';
    DG::Harness::spit($f, $t);
    my $out = `$promtool check metrics < $f 2>&1`;
    is($?, 0, 'promtool check metrics: exit 0') or diag($out);
    is($out, '', 'promtool check metrics: no lint problem') or diag($out);
};

subtest 'counters survive a reload' => sub {
    my $before = $ngx->get_json('/dg-stats') || {};
    $ngx->reload;
    my $after = $ngx->get_json('/dg-stats') || {};
    is($after->{requests}, $before->{requests}, 'requests kept');
    is($after->{refused}, $before->{refused}, 'refused kept');
    is(workers_ready($ngx, 2, 30), 2,
        'the new workers are ready (the old ones not counted)');
    my $r = $ngx->request(POST => '/v1/x', { headers => {
        Authorization => 'Bearer sk-t41-after-reload' }, content => chat('hi') });
    is($r->{status}, 200, 'serves after the reload');
    is(($ngx->get_json('/dg-stats') || {})->{requests}, $before->{requests} + 1,
        'and counts on');
};

logs_clean($ngx);

done_testing();
