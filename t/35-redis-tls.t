#!/usr/bin/perl
# Redis over TLS (distill_guard_redis ... tls=on): exact counting with
# AUTH, the CA and the name checked; a wrong CA, the system's CAs, a
# wrong name, an expired certificate and a plain-TCP Redis refused with
# one clear log line per outage while requests fail open at once;
# tls_verify=off; a client certificate the server requires; Redis
# restarted; TLS sessions resumed after a lost connection; a Redis
# Cluster whose every node speaks TLS; nginx -t on the parameters.
# Certificates and the TLS redis-server: DG::TLS.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use DG::TLS;
use DG::Util qw(key_id window_of requests_of signals_of diag_res stats
    http_conf guarded logs_clean);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();
if (my $why = DG::TLS::missing()) { plan skip_all => $why }

DG::Harness::watchdog(120);

my $SECRET = 't35-secret-Vn3x';
my $PW     = 'pw-T35-tls-S3cret';
my $NAME   = $DG::TLS::NAME;            # redis.test

my $pki = DG::TLS::pki();
my $up = DG::Harness::Upstream->start;
my $redis = DG::TLS::Redis->start(pki => $pki, password => $PW);

my @all;    # every nginx started, for the log checks at the end

sub post { DG::Util::post($_[0], '/v1/x', $_[1]) }

sub unavailable { signals_of($_[0]) =~ /(?:^|,)redis_unavailable(?:,|$)/ }

# nginx with "distill_guard_redis $addr timeout=500ms
# connect_timeout=300ms $opts"; undef (a failed test) if it does not start
sub nginx_for {
    my ($addr, $opts) = @_;
    my $ngx = eval { DG::Harness::Nginx->start(upstream => $up,
        http => http_conf(secret => $SECRET,
            redis => "$addr timeout=500ms connect_timeout=300ms $opts",
            prefix => 't35', window => '60s',
            locations => ['/v1/' => guarded()])) };
    unless ($ngx) {
        fail("nginx starts with: $opts");
        diag($@);
        return undef;
    }
    push @all, $ngx;
    return $ngx;
}

# Waits until the worker's Redis connection is ready; true if it is.
sub ready {
    my ($ngx, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        return 1 if (stats($ngx)->{redis}{workers_ready} // 0) == 1;
        return 0 if time >= $deadline;
        sleep 0.05;
    }
}

# Posts until a request is counted by Redis; that response, or undef
# after $timeout seconds.
sub wait_counted {
    my ($ngx, $key, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        my $res = post($ngx, $key);
        return $res if $res->{status} == 200 && window_of($res)
            && !unavailable($res);
        sleep 0.1;
    }
    return undef;
}

# The TLS counters of /dg-stats: redis.tls_handshakes, redis.tls_reused
sub tls_count { $_[0]{redis}{"tls_$_[1]"} }

# Counts 1..$n for a new key, every request 200 and not redis_unavailable.
sub counts {
    my ($ngx, $key, $n) = @_;
    my @got;
    for my $i (1 .. $n) {
        my $res = post($ngx, $key);
        push @got, $res->{status} == 200 && !unavailable($res)
            ? requests_of($res) // 'none' : "status $res->{status} "
            . signals_of($res);
    }
    is_deeply(\@got, [1 .. $n], "counted 1..$n") or diag(explain \@got);
}

my $ca   = "tls_ca=$pki->{ca}";
my $name = "tls_name=$NAME";
my $addr = $redis->addr;            # 127.0.0.1:<TLS port>
my $good;                           # the nginx of the first subtest

subtest 'counting over TLS: AUTH, tls_ca, tls_name' => sub {
    $good = nginx_for($addr, "tls=on $ca $name password=$PW") or return;
    ok(ready($good, 5), 'the worker connects') or return;
    my $key = 'sk-t35-count-0001';
    counts($good, $key, 6);
    my $id = key_id($key, $SECRET);
    like($redis->cli('--scan', '--pattern', 't35:*'), qr/^t35:\{$id\}:w$/m,
        'the window key is in the TLS redis-server');
    my $st = stats($good);
    ok(defined tls_count($st, 'handshakes'), 'stats: redis.tls_handshakes')
        or diag(explain $st);
    cmp_ok(tls_count($st, 'handshakes') // 0, '>=', 1, 'one handshake');
    ok(defined tls_count($st, 'reused'), 'stats: redis.tls_reused');
    unlike($good->error_log, qr/\Q$PW\E/, 'the password is not in the log');
    unlike($good->error_log, qr/TLS handshake failed/, 'no failed handshake');
};

subtest 'no tls_name: the host as written (127.0.0.1) is checked' => sub {
    # the server certificate holds IP:127.0.0.1 beside DNS:redis.test
    my $ngx = nginx_for($addr, "tls=on $ca password=$PW") or return;
    ok(ready($ngx, 5), 'the worker connects')
        or diag($ngx->error_log);
    counts($ngx, 'sk-t35-ipname-0002', 2);
    $ngx->stop;
};

# A refused server at $to (host:port): requests pass at once with
# redis_unavailable and the log says why, at error level, once.
# once => 1: also waits 1.5 s of retries and checks that they are not
# logged again.
sub refused {
    my ($what, $to, $opts, $reason, %o) = @_;
    subtest $what => sub {
        my $ngx = nginx_for($to, $opts) or return;
        my $t0 = time;
        for my $i (1 .. 3) {
            my $res = post($ngx, "sk-t35-refused-000$i");
            ok($res->{status} == 200 && unavailable($res) && !window_of($res),
                "request $i: 200, redis_unavailable, not counted (fail open)")
                or diag_res($res);
            cmp_ok($res->{elapsed}, '<', 1, "request $i: answered at once");
            sleep 0.1;
        }
        my $re = qr/distill_guard: redis "\Q$to\E" TLS handshake failed: /;
        my $log = '';
        for (1 .. 30) {
            $log = $ngx->error_log;
            last if $log =~ $re;
            sleep 0.1;
        }
        my ($line) = grep { $_ =~ $re } split /\n/, $log;
        ok($line, 'logged: TLS handshake failed')
            or diag("error.log:\n$log");
        like($line // '', qr/\[error\]/, 'at error level');
        like($line // '', $reason, "the reason: $reason");
        note($line) if $line;
        is(stats($ngx)->{redis}{workers_ready}, 0, 'stats: no worker ready');
        if ($o{once}) {
            my $wait = $t0 + 1.5 - time;
            sleep $wait if $wait > 0;
            my $st = stats($ngx);
            cmp_ok($st->{redis}{reconnects} // 0, '>=', 2,
                'the worker retried (' . ($st->{redis}{reconnects} // 0)
                . ' reconnects in 1.5 s)');
            cmp_ok($st->{redis}{reconnects} // 0, '<=', 8,
                'with its backoff (not more than 8)');
            my @lines = grep { $_ =~ $re } split /\n/, $ngx->error_log;
            is(scalar @lines, 1, 'logged once for the outage')
                or diag(join "\n", @lines);
        }
        unlike($ngx->error_log, qr/\Q$PW\E/, 'no password in the log');
        $ngx->stop;
    };
}

# redis-server sends its certificate with the CA (OpenSSL builds the
# chain from tls-ca-cert-file): "self-signed certificate in certificate
# chain"; the leaf alone would be "unable to get local issuer certificate"
my $unknown_ca = join '|', 'unable to get local issuer certificate',
    'self[- ]signed certificate in certificate chain';
$unknown_ca = qr/verify.*\((?:$unknown_ca)\)/;

refused('a wrong CA', $addr, "tls=on tls_ca=$pki->{wrong_ca} $name "
    . "password=$PW", $unknown_ca, once => 1);
refused('no tls_ca: the system CAs do not know the test CA', $addr,
    "tls=on $name password=$PW", $unknown_ca);
refused('a wrong name (tls_name=other.test)', $addr,
    "tls=on $ca tls_name=other.test password=$PW",
    qr/verify.*\(hostname mismatch\)/);

if ($pki->{expired}) {
    my $old = DG::TLS::Redis->start(pki => $pki, cert => 'expired',
        password => $PW);
    refused('an expired server certificate', $old->addr,
        "tls=on $ca $name password=$PW",
        qr/verify.*\(certificate has expired\)/);
    $old->stop;
} else {
    note('no expired certificate: openssl ca failed');
}

{
    # a listening socket that nobody accepts from: TCP connects, the
    # ClientHello is never answered
    my $mute = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Proto => 'tcp', Listen => 8) or die "listen: $@";
    refused('a server that never answers the handshake',
        '127.0.0.1:' . $mute->sockport, "tls=on $ca $name password=$PW",
        qr/timed out/);
    close $mute;

    # the ClientHello is an inline command to Redis: it answers an error,
    # closes, or waits for the end of the line (then as above)
    my $plain = DG::Harness::Redis->start(password => $PW);
    refused('tls=on to a Redis without TLS', $plain->addr,
        "tls=on $ca $name password=$PW", qr/\S/);
    $plain->stop;
}

subtest 'tls_verify=off: the wrong CA and name are not checked' => sub {
    my $ngx = nginx_for($addr, "tls=on tls_verify=off "
        . "tls_ca=$pki->{wrong_ca} tls_name=other.test password=$PW")
        or return;
    ok(ready($ngx, 5), 'the worker connects') or diag($ngx->error_log);
    counts($ngx, 'sk-t35-noverify-0003', 3);
    unlike($ngx->error_log, qr/TLS handshake failed/, 'no failed handshake');
    $ngx->stop;
};

{
    my $mtls = DG::TLS::Redis->start(pki => $pki, auth_clients => 1,
        password => $PW);
    subtest 'a client certificate the server requires: given' => sub {
        my $ngx = nginx_for($mtls->addr, "tls=on $ca $name "
            . "tls_cert=$pki->{client} tls_key=$pki->{client_key} "
            . "password=$PW") or return;
        ok(ready($ngx, 5), 'the worker connects') or diag($ngx->error_log);
        counts($ngx, 'sk-t35-mtls-0004', 3);
        $ngx->stop;
    };
    subtest 'a client certificate the server requires: none' => sub {
        my $ngx = nginx_for($mtls->addr, "tls=on $ca $name password=$PW")
            or return;
        for my $i (1 .. 3) {
            my $res = post($ngx, 'sk-t35-nocert-0005');
            ok($res->{status} == 200 && unavailable($res) && !window_of($res),
                "request $i: 200, redis_unavailable, not counted")
                or diag_res($res);
            cmp_ok($res->{elapsed}, '<', 1, "request $i: answered at once");
            sleep 0.1;
        }
        my $to = $mtls->addr;
        my $re = qr/\[error\][^\n]*distill_guard: redis "\Q$to\E" ([^\n]*)/;
        my $log = '';
        for (1 .. 20) {
            $log = $ngx->error_log;
            last if $log =~ $re;
            sleep 0.1;
        }
        my ($why) = $log =~ $re;
        ok(defined $why, 'logged at error level') or diag($log);
        note("the reason: $why") if defined $why;
        # TLS 1.3: the client's side of the handshake ends before the
        # server checks its certificate; the server's answer is the alert
        # "certificate required", then it closes
        like($why // '', qr/client certificate|certificate required/,
            'the reason names the missing certificate');
        unlike($log, qr/redis "[^"]+" connected/, 'never logged as connected');
        is(stats($ngx)->{redis}{workers_ready}, 0, 'stats: no worker ready');
        $ngx->stop;
    };
    $mtls->stop;
}

# A lost connection: the next one resumes the TLS session.
sub resumed {
    my ($key) = @_;
    my $st0 = stats($good);
    my $killed = $redis->cli('CLIENT', 'KILL', 'TYPE', 'normal');
    cmp_ok($killed, '>=', 1, "CLIENT KILL TYPE normal: $killed killed");
    ok(wait_counted($good, $key, 8), 'counted again') or return;
    my $st1 = stats($good);
    my $hs = (tls_count($st1, 'handshakes') // 0)
        - (tls_count($st0, 'handshakes') // 0);
    my $re = (tls_count($st1, 'reused') // 0)
        - (tls_count($st0, 'reused') // 0);
    cmp_ok($hs, '>=', 1, "redis_tls_handshakes grew by $hs");
    cmp_ok($re, '>=', 1, "redis_tls_reused grew by $re: the session was "
        . 'resumed') or diag(explain [$st0, $st1]);
    cmp_ok($re, '<=', $hs, 'not more resumed than handshakes');
}

subtest 'a lost connection: the next handshake resumes the session' => sub {
    ok($good && ready($good, 2), 'the first nginx is connected') or return;
    resumed('sk-t35-resume-0006');
};

subtest 'Redis restarted: reconnects by itself, then resumes again' => sub {
    ok($good && ready($good, 2), 'the first nginx is connected') or return;
    my $key = 'sk-t35-restart-0007';
    my $res = wait_counted($good, $key, 2);
    ok($res, 'counted before the restart') or return;
    my $st0 = stats($good);
    $redis->restart;            # the same port; its data is gone
    $res = wait_counted($good, $key, 10);
    ok($res, 'counted again, nginx not restarted') or return;
    is(requests_of($res), 1, 'from 1 (a new Redis)') or diag_res($res);
    $res = post($good, $key);
    is(requests_of($res), 2, 'then 2') or diag_res($res);
    my $st1 = stats($good);
    cmp_ok(($st1->{redis}{reconnects} // 0)
        - ($st0->{redis}{reconnects} // 0), '>', 0, 'stats: reconnects grew');
    cmp_ok((tls_count($st1, 'handshakes') // 0)
        - (tls_count($st0, 'handshakes') // 0), '>=', 1,
        'stats: redis_tls_handshakes grew');
    # a new redis-server has new ticket keys: the old session is of no use
    is((tls_count($st1, 'reused') // 0) - (tls_count($st0, 'reused') // 0),
        0, 'not counted as resumed (the new server cannot resume it)');
    # and the session of the new server is kept in turn
    resumed('sk-t35-restart2-0008');
};

# Every node of a cluster over TLS (tls-cluster yes): one handshake per
# master, each node checked against its own address (the IP address in
# the test certificate), keys on every master.
subtest 'a Redis Cluster over TLS' => sub {
    my @nodes = map {
        my $bus = DG::Harness::free_port();
        DG::TLS::Redis->start(pki => $pki, conf => join "\n",
            'cluster-enabled yes', 'cluster-node-timeout 1500',
            'cluster-config-file nodes.conf', "cluster-port $bus",
            # the bus is TLS too; the server certificate is for servers
            'tls-cluster yes', "tls-client-cert-file $pki->{client}",
            "tls-client-key-file $pki->{client_key}", '')
    } 1 .. 3;
    my @create = ($DG::Harness::REDIS_CLI, $nodes[0]->_tls_args,
        '--cluster', 'create', (map { $_->addr } @nodes), '--cluster-yes');
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        exec { $create[0] } @create or exit 127;
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    like($out, qr/All 16384 slots covered/, 'the TLS cluster is made')
        or return diag($out);
    my $deadline = time + 10;
    sleep 0.2 while time < $deadline
        && grep { $_->cli('CLUSTER', 'INFO') !~ /cluster_state:ok/ } @nodes;

    my $ngx = nginx_for($nodes[0]->addr, "cluster=on tls=on $ca") or return;
    my @got;
    for my $k (map { "sk-t35-cluster-$_" } 1 .. 24) {
        my $res;
        for (1 .. 20) {
            $res = post($ngx, $k);
            last if !unavailable($res);
            sleep 0.1;
        }
        push @got, requests_of($res) // 'none';
    }
    is_deeply(\@got, [(1) x 24], '24 keys counted, each once');
    my @held = map { $_->cli('DBSIZE') } @nodes;
    is(scalar(grep { $_ > 0 } @held), 3, "keys on every master (@held)");
    is(tls_count(stats($ngx), 'handshakes'), 3, 'one handshake per master');
    unlike($ngx->error_log, qr/TLS handshake failed/, 'no failed handshake');
    $_->stop for @nodes;
};

subtest 'nginx -t' => sub {
    my $test = sub {
        my ($redis_line) = @_;
        return DG::Harness::nginx_test(http => http_conf(secret => $SECRET,
            redis => $redis_line, stats => 0,
            locations => ['/' => ['distill_guard on;']]));
    };
    my $cert = "tls_cert=$pki->{client}";
    my $key  = "tls_key=$pki->{client_key}";
    for my $good_line ("127.0.0.1:6379 tls=on",
        "127.0.0.1:6379 tls=on tls_verify=on $ca $name",
        "127.0.0.1:6379 tls=on tls_verify=off $ca $name $cert $key "
            . "password=$PW timeout=1s connect_timeout=200ms")
    {
        my ($ok, $out) = $test->($good_line);
        ok($ok, "accepted: $good_line") or diag($out);
    }
    my $garbage = "$pki->{dir}/t35-garbage.pem";
    DG::Harness::spit($garbage, "not a certificate\n");
    my @bad = (
        ["tls=on $cert", qr/tls_key/, 'tls_cert without tls_key'],
        ["tls=on $key", qr/tls_cert/, 'tls_key without tls_cert'],
        ['tls=on tls_ca=/nonexistent/t35-ca.pem', qr/t35-ca\.pem/,
            'tls_ca: no such file'],
        ["tls=on tls_ca=$garbage", qr/t35-garbage\.pem/,
            'tls_ca: not a PEM certificate'],
        ["tls=on tls_cert=/nonexistent/t35-cert.pem $key",
            qr/t35-cert\.pem/, 'tls_cert: no such file'],
        ["tls=on $cert tls_key=/nonexistent/t35-key.pem", qr/t35-key\.pem/,
            'tls_key: no such file'],
        ['tls=on tls_verify=maybe', qr/tls_verify/, 'tls_verify=maybe'],
        [$ca, qr/tls/, 'tls_ca without tls=on'],
        ['tls_verify=off', qr/tls/, 'tls_verify without tls=on'],
        [$name, qr/tls/, 'tls_name without tls=on'],
        ["$cert $key", qr/tls/, 'tls_cert and tls_key without tls=on'],
        ["tls=on password=$PW tls_verify=maybe", qr/tls_verify/,
            'a bad parameter beside a password'],
    );
    for my $b (@bad) {
        my ($opts, $says, $what) = @$b;
        my ($ok, $out) = $test->("127.0.0.1:6379 $opts");
        ok(!$ok, "refused: $what") or next;
        like($out, qr/\[emerg\][^\n]*$says/, "  and the message says why")
            or diag($out);
        unlike($out, qr/\Q$PW\E/, '  without the password');
    }
    my ($ok, $out) = $test->('unix:/tmp/t35-redis.sock tls=on');
    ok(!$ok, 'refused: tls=on with a unix: address');
    like($out, qr/\[emerg\][^\n]*(?:unix|tls)/, '  and the message says why')
        or diag($out);
};

for my $ngx (@all) {
    my @crash = $ngx->crash_lines;
    is_deeply(\@crash, [], 'no crash or alert in ' . $ngx->dir)
        or diag(join "\n", @crash);
    unlike($ngx->error_log, qr/\Q$PW\E/, 'no password in ' . $ngx->dir
        . '/error.log');
}

done_testing();
