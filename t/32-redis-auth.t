#!/usr/bin/perl
# distill_guard_redis logins and addresses: plain AUTH (requirepass), an
# ACL user, db=N, a unix socket; a wrong password (or none) makes Redis
# unavailable and is logged as an AUTH failure that never shows the
# password.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use DG::Util qw(key_id window_of diag_res http_conf guarded);
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();

DG::Harness::watchdog(60);

my $SECRET = 't32-secret-Lm4k';

my $PLAIN_PW = 'pw-T32-plain-S3cret';
my $ACL_USER = 'dgacl';
my $ACL_PW   = 'pw-T32-acl-S3cret';
my $WRONG_PW = 'WRONG-T32-pw-Qx7';

sub post { DG::Util::post($_[0], '/v1/x', $_[1]) }

sub unavailable { ($_[0]{vars}{signals} // '') =~ /redis_unavailable/ }

my @all;    # every nginx started, for the log checks at the end

# nginx on $addr with "distill_guard_redis $addr timeout=500ms $opts";
# prefix t32 unless $prefix is given ('': none); no window.
sub nginx_for {
    my ($up, $redis, $addr, $opts, $prefix) = @_;
    $prefix //= 't32';
    my $ngx = DG::Harness::Nginx->start(upstream => $up,
        ($redis ? (redis => $redis) : ()),
        http => http_conf(secret => $SECRET,
            redis => "$addr timeout=500ms $opts",
            prefix => length $prefix ? $prefix : undef,
            locations => ['/v1/' => guarded()]));
    push @all, $ngx;
    return $ngx;
}

# The first request may race the connection: poll a moment.
sub counted {
    my ($ngx, $key) = @_;
    my $res;
    for (1 .. 20) {
        $res = post($ngx, $key);
        return $res if window_of($res) && !unavailable($res);
        sleep 0.1;
    }
    return $res;
}

my $up = DG::Harness::Upstream->start;
my $plain = DG::Harness::Redis->start(password => $PLAIN_PW);
my $acl = DG::Harness::Redis->start(user => $ACL_USER, password => $ACL_PW);

subtest 'plain AUTH (requirepass)' => sub {
    my $ngx = nginx_for($up, $plain, '%%REDIS%%', "password=$PLAIN_PW");
    my $res = counted($ngx, 'sk-t32-plain-0001');
    ok(window_of($res), 'counted') or diag_res($res);
    is(window_of($res)->{requests}, 1, 'requests 1') if window_of($res);
    $res = post($ngx, 'sk-t32-plain-0001');
    is(window_of($res) ? window_of($res)->{requests} : undef, 2,
        'requests 2') or diag_res($res);
    my @keys = grep { /^t32:/ } split /\n/, $plain->cli('--scan');
    cmp_ok(scalar @keys, '>', 0, 'keys written to db 0');
    unlike($ngx->error_log, qr/\Q$PLAIN_PW\E/, 'password not in the log');
};

subtest 'ACL user and password' => sub {
    my $ngx = nginx_for($up, $acl, '%%REDIS%%',
        "user=$ACL_USER password=$ACL_PW");
    my $res = counted($ngx, 'sk-t32-acl-0002');
    ok(window_of($res), 'counted') or diag_res($res);
    my @keys = grep { /^t32:/ } split /\n/, $acl->cli('--scan');
    cmp_ok(scalar @keys, '>', 0, 'keys written');
    unlike($ngx->error_log, qr/\Q$ACL_PW\E/, 'password not in the log');
};

subtest 'db=3' => sub {
    my $ngx = nginx_for($up, $plain, '%%REDIS%%',
        "password=$PLAIN_PW db=3");
    my $res = counted($ngx, 'sk-t32-db-0003');
    ok(window_of($res), 'counted') or diag_res($res);
    my $id = key_id('sk-t32-db-0003', $SECRET);
    my $db3 = $plain->cli('-n', 3, '--scan', '--pattern', 't32:*');
    like($db3, qr/^t32:\{$id\}:w$/m, 'the window key is in db 3')
        or diag($db3);
    my $db0 = $plain->cli('--scan', '--pattern', 't32:*');
    unlike($db0, qr/\{$id\}/, 'and not in db 0');
};

subtest 'unix socket; default prefix and window' => sub {
    my $dir = tempdir('dg-t32-sock-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $dir;
    my $sock = "$dir/redis.sock";
    my $r = DG::Harness::Redis->start(
        conf => "unixsocket $sock\nunixsocketperm 777");
    ok(-S $sock, 'redis listens on a unix socket') or return;
    # no distill_guard_redis_prefix, no distill_guard_window
    my $ngx = nginx_for($up, undef, "unix:$sock", '', '');
    my $res = counted($ngx, 'sk-t32-unix-0004');
    ok(window_of($res), 'counted over the unix socket') or diag_res($res);
    my $id = key_id('sk-t32-unix-0004', $SECRET);
    my @keys = split /\n/, $r->cli('--scan');
    ok((grep { $_ eq "dg:{$id}:w" } @keys), "default prefix: dg:{$id}:w")
        or diag(join "\n", @keys);
    is(scalar(grep { !/^dg:/ } @keys), 0, 'every key under dg:');
    my $pttl = $r->cli('PTTL', "dg:{$id}:w");
    cmp_ok($pttl, '>', 3_500_000, "default window 1h: TTL $pttl ms");
    # a window and a sub-window (1 h / 16): doc/redis-keys.md
    cmp_ok($pttl, '<=', 3_825_000, 'and not more than 1h and 1/16');
    $ngx->stop;
    $r->stop;
};

# A wrong login: requests pass with redis_unavailable; the log tells of
# the AUTH failure without the password.
sub wrong_login {
    my ($name, $redis, $opts, $secret) = @_;
    subtest $name => sub {
        my $ngx = nginx_for($up, $redis, '%%REDIS%%', $opts);
        my $t0 = time;
        my $res;
        for my $i (1 .. 3) {
            $res = post($ngx, 'sk-t32-wrong-0005');
            is($res->{status}, 200, "request $i: 200 (fail open)");
            ok(unavailable($res), "request $i: redis_unavailable")
                or diag_res($res);
            ok(!window_of($res), "request $i: not counted");
            cmp_ok($res->{elapsed}, '<', 1.5, "request $i: answered in time");
            sleep 0.1;
        }
        my $log = '';
        for (1 .. 20) {
            $log = $ngx->error_log;
            last if $log =~ /AUTH failed/;
            sleep 0.1;
        }
        like($log, qr/distill_guard: redis "[^"]+" AUTH failed/,
            'the log says AUTH failed') or diag($log);
        unlike($log, qr/\Q$secret\E/, 'without the password');
        my $st = $ngx->get_json('/dg-stats') || {};
        is($st->{redis}{workers_ready}, 0, 'stats: no worker ready')
            or diag(explain $st);

        # the connection succeeds, the login fails: that must back off
        # like any failure (100 ms doubling: at most 5 retries in 1.5 s)
        # and not flood the log
        my $wait = $t0 + 1.5 - time;
        sleep $wait if $wait > 0;
        $st = $ngx->get_json('/dg-stats') || {};
        my $span = time - $t0;
        cmp_ok($st->{redis}{reconnects} // 0, '<=', 6, sprintf(
            'backoff: %d reconnects in %.1f s (<= 6)',
            $st->{redis}{reconnects} // 0, $span));
        my @auth = grep { /AUTH failed/ } split /\n/, $ngx->error_log;
        cmp_ok(scalar @auth, '<=', 6, scalar(@auth)
            . ' "AUTH failed" lines (<= 6)');
        my @conn = grep { /distill_guard: redis "[^"]+" connected/ }
            split /\n/, $ngx->error_log;
        is(scalar @conn, 0, 'never logged as "connected"')
            or diag(scalar(@conn) . ' lines like: ' . $conn[0]);
        $ngx->stop;
        unlike($ngx->error_log, qr/\Q$secret\E/,
            'no password in the log after stopping either');
    };
}

wrong_login('wrong password (requirepass)', $plain,
    "password=$WRONG_PW", $WRONG_PW);
wrong_login('wrong password (ACL user)', $acl,
    "user=$ACL_USER password=$WRONG_PW", $WRONG_PW);
wrong_login('unknown ACL user', $acl,
    "user=nobody-t32 password=$WRONG_PW", $WRONG_PW);

subtest 'no password for a Redis that needs one' => sub {
    my $ngx = nginx_for($up, $plain, '%%REDIS%%', '');
    my $res = post($ngx, 'sk-t32-noauth-0006');
    is($res->{status}, 200, '200 (fail open)');
    ok(unavailable($res), 'redis_unavailable') or diag_res($res);
    my $log = '';
    for (1 .. 20) {
        $log = $ngx->error_log;
        last if $log =~ /NOAUTH|unauthenticated/;
        sleep 0.1;
    }
    # Redis 7 answers NOAUTH, or refuses a large unauthenticated command
    like($log, qr/NOAUTH|unauthenticated/,
        'the log tells why (NOAUTH / unauthenticated)') or diag($log);
    $ngx->stop;
};

subtest 'nginx -t never echoes a password' => sub {
    my ($ok, $out) = DG::Harness::nginx_test(http => <<"EOF");
distill_guard_secret "$SECRET";
distill_guard_redis 127.0.0.1:1 password=$WRONG_PW timeout=bogus;
server { listen 127.0.0.1:%%PORT%%; location / { distill_guard on; } }
EOF
    ok(!$ok, 'a bad parameter is refused');
    unlike($out, qr/\Q$WRONG_PW\E/, 'the message holds no password')
        or diag($out);
    ($ok, $out) = DG::Harness::nginx_test(http => <<"EOF");
distill_guard_secret "$SECRET";
distill_guard_redis 127.0.0.1:1 passwordx$WRONG_PW;
server { listen 127.0.0.1:%%PORT%%; location / { distill_guard on; } }
EOF
    ok(!$ok, 'a malformed password parameter is refused');
    unlike($out, qr/\Q$WRONG_PW\E/, 'the message holds no password')
        or diag($out);
};

for my $ngx (@all) {
    my @crash = $ngx->crash_lines;
    is_deeply(\@crash, [], 'no crash or alert in ' . $ngx->dir)
        or diag(join "\n", @crash);
    my $log = $ngx->error_log;
    unlike($log, qr/\Q$PLAIN_PW\E|\Q$ACL_PW\E|\Q$WRONG_PW\E/,
        'no password in ' . $ngx->dir . '/error.log');
}

done_testing();
