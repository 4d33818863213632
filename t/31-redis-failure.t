#!/usr/bin/perl
# Redis going wrong: down when nginx starts, killed in the middle of the
# traffic and restarted, frozen with SIGSTOP, its script cache flushed
# (NOSCRIPT), a client that leaves while its request waits for Redis;
# distill_guard_fail open and closed.  Requests must never wait longer
# than timeout= (plus a margin), and must not wait at all while the
# worker has no connection.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use DG::Util qw(chat templated post window_of requests_of signals_of
    diag_res stats http_conf guarded logs_clean);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();

DG::Harness::watchdog(150);

my $SECRET = 't31-secret-Zp2r';

sub unavailable {
    my ($res) = @_;
    return signals_of($res) =~ /(?:^|,)redis_unavailable(?:,|$)/ ? 1 : 0;
}

# Polls until a request of $key is counted by Redis again; returns that
# response or undef after $timeout seconds.
sub wait_counted {
    my ($ngx, $path, $key, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        my $res = post($ngx, $path, $key);
        return $res if $res->{status} == 200 && window_of($res)
            && !unavailable($res);
        sleep 0.1;
    }
    return undef;
}

sub active_connections {
    my ($ngx) = @_;
    my $res = $ngx->request(GET => '/basic-status');
    return $res->{content} =~ /Active connections:\s*(\d+)/ ? $1 : -1;
}

# Polls stub_status until $want connections are active (the polling one
# included); returns the last count seen.
sub active_wait {
    my ($ngx, $want, $timeout) = @_;
    my $deadline = time + $timeout;
    my $n;
    while (1) {
        $n = active_connections($ngx);
        return $n if $n == $want || time >= $deadline;
        sleep 0.05;
    }
}

my $conf = sub {
    my ($redis_addr, $opts) = @_;
    return http_conf(secret => $SECRET, redis => "$redis_addr $opts",
        prefix => 't31', window => '60s', locations => [
            '/open/'   => guarded(),
            '/closed/' => guarded(with => ['distill_guard_fail closed;']),
            '/plain/'  => ['proxy_pass http://%%UPSTREAM%%;'],
            '= /basic-status' => ['stub_status;'],
        ]);
};

my $up = DG::Harness::Upstream->start;
my $redis = DG::Harness::Redis->start;

# timeout=100ms: a frozen Redis costs a request 100 ms
my $fast = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
    http => $conf->('%%REDIS%%', 'timeout=100ms connect_timeout=100ms'));

subtest 'baseline: counted, fail closed passes while Redis answers' => sub {
    my $key = 'sk-t31-base-0001';
    my $res = post($fast, '/open/x', $key);
    is($res->{status}, 200, 'open: 200');
    is(requests_of($res), 1, 'open: counted') or diag_res($res);
    ok(!unavailable($res), 'no redis_unavailable') or diag_res($res);
    $res = post($fast, '/closed/x', $key);
    is($res->{status}, 200, 'closed: 200 while Redis answers')
        or diag_res($res);
    is(requests_of($res), 2, 'closed: counted') or diag_res($res);
    is($res->{headers}{'x-distill-guard-action'}, 'pass',
        'X-Distill-Guard-Action: pass');
};

subtest 'NOSCRIPT after SCRIPT FLUSH: still counted, no error' => sub {
    my $key = 'sk-t31-noscript-0002';
    my $res = post($fast, '/open/x', $key, templated(1));
    is(requests_of($res), 1, 'counted before the flush') or diag_res($res);
    my $before = stats($fast);
    my $mark = $fast->mark;
    is($redis->cli('SCRIPT', 'FLUSH'), 'OK', 'SCRIPT FLUSH');
    for my $i (2 .. 4) {
        $res = post($fast, '/open/x', $key, templated($i));
        is($res->{status}, 200, "request $i: 200");
        is(requests_of($res), $i, "request $i: counted ($i)")
            or diag_res($res);
        ok(!unavailable($res), "request $i: no redis_unavailable")
            or diag_res($res);
        cmp_ok(window_of($res) ? window_of($res)->{template_keys} : -1,
            '>=', 1, "request $i: template fan-out answered too")
            or diag_res($res);
    }
    my $after = stats($fast);
    is(($after->{redis}{errors} // 0) - ($before->{redis}{errors} // 0), 0,
        'stats redis.errors did not rise');
    is(($after->{redis}{unavailable} // 0)
        - ($before->{redis}{unavailable} // 0), 0,
        'stats redis.unavailable did not rise');
    my $log = $fast->error_log_since($mark);
    unlike($log, qr/NOSCRIPT|\[error\]/, 'no NOSCRIPT / [error] in the log')
        or diag($log);
};

subtest 'Redis answering errors (out of memory): logged once, counted' => sub {
    my $before = stats($fast);
    my $mark = $fast->mark;
    is($redis->cli('CONFIG', 'SET', 'maxmemory', '1'), 'OK', 'maxmemory 1');
    for my $i (1 .. 8) {
        my $res = post($fast, '/open/x', "sk-t31-oom-$i");
        is($res->{status}, 200, "request $i: answered (fail open)");
        ok(unavailable($res), "request $i: redis_unavailable")
            or diag_res($res);
    }
    is($redis->cli('CONFIG', 'SET', 'maxmemory', '0'), 'OK', 'maxmemory 0');
    my $after = stats($fast);
    cmp_ok(($after->{redis}{errors} // 0) - ($before->{redis}{errors} // 0),
        '>=', 8, 'every failed request counted');
    my @lines = grep { /redis error/ }
        split /\n/, $fast->error_log_since($mark);
    is(scalar @lines, 1, 'one log line for eight error replies')
        or diag(join "\n", @lines);
    my $res = wait_counted($fast, '/open/x', 'sk-t31-oom-after', 5);
    ok($res, 'counted again once Redis has memory');
};

# At maxmemory good and bad replies interleave (a write that fits, then
# one that does not): the error line is rate-limited by time, not re-armed
# by each good reply.  Its own nginx: no line of the subtest above is
# within the interval.
subtest 'Redis at maxmemory, good and bad replies interleaved' => sub {
    my $ngx = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
        http => $conf->('%%REDIS%%', 'timeout=100ms connect_timeout=100ms'));
    ok(wait_counted($ngx, '/open/x', 'sk-t31-il-first', 5), 'counted');
    my $before = stats($ngx);
    my $mark = $ngx->mark;
    my ($good, $bad, $t_first) = (0, 0);
    my $t0 = time;
    for my $i (1 .. 10) {
        $redis->cli('CONFIG', 'SET', 'maxmemory', '1');
        $bad += unavailable(post($ngx, '/open/x', "sk-t31-il-$i"));
        $t_first //= time;      # the first line was logged by now
        $redis->cli('CONFIG', 'SET', 'maxmemory', '0');
        my $res = post($ngx, '/open/x', "sk-t31-il-$i");
        $good++ if window_of($res) && !unavailable($res);
    }
    my $took = time - $t0;
    is($bad, 10, 'ten requests met OOM');
    is($good, 10, 'ten requests in between were counted');
    my $after = stats($ngx);
    cmp_ok(($after->{redis}{errors} // 0) - ($before->{redis}{errors} // 0),
        '>=', 10, 'stats count every failed request');
    my @lines = grep { /redis error/ }
        split /\n/, $ngx->error_log_since($mark);
    note(sprintf 'interleaved for %.1f s', $took);
    is(scalar @lines, 1, 'one log line in the first 10 s, not one per '
        . 'good reply') or diag(join "\n", @lines);
    like($lines[0] // '', qr/OOM/, 'it is the OOM error');

    # the next line, once the interval is over, tells what it stood for
    # (nginx counts it in whole seconds of its cached clock: 11 s)
    sleep $t_first + 11 - time if time < $t_first + 11;
    $redis->cli('CONFIG', 'SET', 'maxmemory', '1');
    post($ngx, '/open/x', 'sk-t31-il-late');
    $redis->cli('CONFIG', 'SET', 'maxmemory', '0');
    @lines = grep { /redis error/ }
        split /\n/, $ngx->error_log_since($mark);
    is(scalar @lines, 2, 'a second line after 10 s')
        or diag(join "\n", @lines);
    my ($n) = ($lines[1] // '') =~ /(\d+) suppressed/;
    cmp_ok($n // 0, '>=', 9, 'it counts the error replies not logged')
        or diag($lines[1] // 'no second line');
    $ngx->stop;
};

subtest 'Redis frozen (SIGSTOP): answered within timeout' => sub {
    my $key = 'sk-t31-pause-0003';
    my $res = post($fast, '/open/x', $key);
    is(requests_of($res), 1, 'counted before the pause') or diag_res($res);
    my $before = stats($fast);
    $redis->pause;
    my @slow;
    for my $i (1 .. 5) {
        $res = post($fast, '/open/x', $key);
        is($res->{status}, 200, "open $i: 200 (fail open)");
        ok(unavailable($res), "open $i: redis_unavailable in the signals")
            or diag_res($res);
        like($res->{headers}{'x-distill-guard-signals'} // '',
            qr/redis_unavailable/,
            "open $i: X-Distill-Guard-Signals has redis_unavailable");
        is($res->{vars}{action}, 'pass', "open $i: action pass")
            or diag_res($res);
        ok(!window_of($res), "open $i: no window in the features");
        push @slow, $res->{elapsed} if $res->{elapsed} >= 1;
        cmp_ok($res->{elapsed}, '>=', 0.08,
            "open $i: it did wait for Redis (~100 ms)");
    }
    is_deeply(\@slow, [], 'every guarded request answered in < 1 s');

    my $t0 = time;
    my $plain = $fast->request(POST => '/plain/x', { content => 'x' });
    my $dt = time - $t0;
    is($plain->{status}, 200, 'unguarded location: 200');
    cmp_ok($dt, '<', 0.5, 'unguarded location: fast meanwhile');

    $res = post($fast, '/closed/x', $key);
    is($res->{status}, 503, 'fail closed: 503') or diag_res($res);
    cmp_ok($res->{elapsed}, '<', 1, 'fail closed: answered in < 1 s');

    my $after = stats($fast);
    cmp_ok(($after->{redis}{timeouts} // 0)
        - ($before->{redis}{timeouts} // 0), '>=', 6,
        'stats redis.timeouts grew by the requests');
    cmp_ok(($after->{redis}{unavailable} // 0)
        - ($before->{redis}{unavailable} // 0), '>=', 6,
        'stats redis.unavailable grew');

    $redis->resume;
    $res = wait_counted($fast, '/open/x', $key, 5);
    ok($res, 'counted again after SIGCONT');
    # Redis ran the late commands when it woke up: they count
    cmp_ok(requests_of($res) // 0, '>=', 2, 'the count went on')
        if $res;
    $res = post($fast, '/closed/x', $key);
    is($res->{status}, 200, 'fail closed: 200 again') or diag_res($res);

    # the late replies of the timed-out requests came back after SIGCONT,
    # most of them over half a second late: they are timeouts, not round
    # trips.  Every reply counted came before its timer (100 ms) fired,
    # or in the same loop turn on a busy machine, so p99 (the upper
    # bound of a log2 bucket, p99 = the max here) stays under 400 ms.
    my $p99 = stats($fast)->{redis}{latency_p99_us} // -1;
    cmp_ok($p99, '>', 0, 'stats redis.latency_p99_us is set');
    cmp_ok($p99, '<=', 400_000,
        'latency_p99_us counts no reply that came after its timeout');
};

# timeout=3s: a request that waits for a connection that is gone would
# take 3 s; it must take the fail path at once.
my $slow = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
    access_log_format => '$status $request_uri',
    http => $conf->('%%REDIS%%', 'timeout=3s connect_timeout=200ms'));

subtest 'a client that goes away while waiting for Redis' => sub {
    my $key = 'sk-t31-gone-0004';
    my $res = post($slow, '/open/x', $key);
    is(requests_of($res), 1, 'counted') or diag_res($res);
    is(active_wait($slow, 1, 1), 1, 'one active connection (this one)');
    $redis->pause;
    my $body = chat('leaving early');
    my @s;
    for my $i (1 .. 5) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $slow->port, Proto => 'tcp') or die "connect: $@";
        syswrite $s, "POST /open/x HTTP/1.1\r\nHost: localhost\r\n"
            . "Authorization: Bearer $key\r\n"
            . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
        push @s, $s;
    }
    my $t0 = time;
    is(active_wait($slow, 6, 1), 6, 'five requests waiting');
    sleep 0.3;
    close $_ for @s;
    my $n = active_wait($slow, 1, 1.5);
    is($n, 1, 'their connections are closed before timeout= (3 s) ends')
        or diag('active connections: ' . $n);
    note(sprintf 'closed %.2f s after they were sent', time - $t0);
    $redis->resume;
    sleep 0.3;          # the late replies arrive and find no request
    $res = post($slow, '/open/x', $key);
    is($res->{status}, 200, 'the worker still serves');
    ok(window_of($res) && !unavailable($res), 'and counts') or diag_res($res);
    is(active_wait($slow, 1, 1), 1, 'nothing left open');
    my @c499 = grep { /^499 / } $slow->access_log_lines;
    note(scalar(@c499) . ' requests logged 499');
    is_deeply([$slow->crash_lines], [], 'no crash or alert');
};

subtest 'Redis killed mid-traffic, then restarted' => sub {
    my $key = 'sk-t31-kill-0005';
    my $before = stats($slow);
    pipe(my $rd, my $wr) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $rd;
        my $end = time + 2.5;
        my $i = 0;
        while (time < $end) {
            my $res = post($slow, '/open/x', $key, chat('traffic ' . $i++));
            printf $wr "%d %.4f %d %d\n", $res->{status}, $res->{elapsed},
                unavailable($res), requests_of($res) // -1;
        }
        close $wr;
        POSIX::_exit(0);     # no END / DESTROY: the servers are the parent's
    }
    close $wr;
    sleep 0.5;
    kill 'KILL', $redis->pid;
    sleep 1.0;
    $redis->restart;
    my @lines = <$rd>;
    waitpid($pid, 0);
    my @r = map { [split / /] } @lines;
    cmp_ok(scalar @r, '>', 10, scalar(@r) . ' requests during the test');
    my @not200 = grep { $_->[0] != 200 } @r;
    is(scalar @not200, 0, 'all answered 200 (fail open)');
    my @late = grep { $_->[1] >= 1 } @r;
    is(scalar @late, 0, 'none took >= 1 s (timeout= is 3 s: no waiting on '
        . 'a lost connection)') or diag(join ', ', map { $_->[1] } @late);
    my $down = grep { $_->[2] } @r;
    cmp_ok($down, '>', 0, "$down answered with redis_unavailable");
    cmp_ok(scalar(grep { !$_->[2] && $_->[3] > 0 } @r), '>', 0,
        'some were counted before the kill');

    my $res = wait_counted($slow, '/open/x', $key, 8);
    ok($res, 'counted again after the restart, nginx not restarted')
        or return;
    my $n = requests_of($res);
    $res = post($slow, '/open/x', $key);
    is(requests_of($res), $n + 1, 'counting goes on') or diag_res($res);
    my $after = stats($slow);
    cmp_ok(($after->{redis}{reconnects} // 0)
        - ($before->{redis}{reconnects} // 0), '>', 0,
        'stats redis.reconnects grew');
    is($after->{redis}{workers_ready}, 1, 'workers_ready 1');
    like($slow->error_log, qr/distill_guard: redis .*(lost|closed|failed)/,
        'the loss is logged');
};

subtest 'Redis down when nginx starts, then started on that port' => sub {
    my $port = DG::Harness::free_port();
    my $ngx = DG::Harness::Nginx->start(upstream => $up,
        http => $conf->("127.0.0.1:$port",
            'timeout=2s connect_timeout=200ms'));
    my $key = 'sk-t31-late-0006';
    my @slow;
    for my $i (1 .. 5) {
        my $res = post($ngx, '/open/x', $key);
        is($res->{status}, 200, "request $i: 200");
        ok(unavailable($res), "request $i: redis_unavailable")
            or diag_res($res);
        is($res->{vars}{action}, 'pass', "request $i: action pass");
        push @slow, $res->{elapsed} if $res->{elapsed} >= 1;
        sleep 0.1;
    }
    is_deeply(\@slow, [], 'answered at once, not after timeout= (2 s)');
    my $res = post($ngx, '/closed/x', $key);
    is($res->{status}, 503, 'fail closed: 503');
    cmp_ok($res->{elapsed}, '<', 1, 'fail closed: at once');
    my $st = stats($ngx);
    is($st->{redis}{workers_ready}, 0, 'stats: no worker ready')
        or diag(explain $st);
    cmp_ok(($st->{redis}{workers_down} // 0)
        + ($st->{redis}{workers_connecting} // 0), '>=', 1,
        'stats: the worker is down or connecting');

    my $r2 = DG::Harness::Redis->start(port => $port);
    is($r2->port, $port, "redis started on $port");
    # backoff is at most 5 s (plus jitter)
    $res = wait_counted($ngx, '/open/x', $key, 10);
    ok($res, 'counted once Redis is there, without restarting nginx')
        or return;
    is(requests_of($res), 1, 'the first counted request: 1')
        or diag_res($res);
    $res = post($ngx, '/open/x', $key);
    is(requests_of($res), 2, 'then 2') or diag_res($res);
    $res = post($ngx, '/closed/x', $key);
    is($res->{status}, 200, 'fail closed: 200 now');
    is(stats($ngx)->{redis}{workers_ready}, 1, 'stats: workers_ready 1');
    like($ngx->error_log, qr/distill_guard: redis "127\.0\.0\.1:$port" connected/,
        'the reconnection is logged');
    is_deeply([$ngx->crash_lines], [], 'no crash or alert');
    $ngx->stop;
    $r2->stop;
};

logs_clean($_->[1], $_->[0]) for [fast => $fast], [slow => $slow];

done_testing();
