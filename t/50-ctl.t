#!/usr/bin/perl
# distill-guard-ctl against a real redis-server: the window decoder
# against what the real script wrote (a change of layout fails here), top,
# show, events, release of a key throttled by a real nginx, the
# distill_guard_redis options, exit statuses.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use DG::Util qw(chat templated post key_id http_conf guarded);
use Time::HiRes qw(sleep time);

my $ROOT = DG::Harness::root();
my $BUILD = $ENV{BUILD} || "$ROOT/build";
my $CTL = $ENV{DG_CTL} || "$BUILD/distill-guard-ctl";

plan skip_all => "$CTL is missing (run make ctl)" unless -x $CTL;

DG::Harness::watchdog(120);

# runs the CLI: (exit status, stdout, stderr)
sub ctl {
    my (@args) = @_;
    my $stdin = ref $args[0] eq 'SCALAR' ? ${ shift @args } : '';
    my $d = DG::Harness::tempdir_for('ctl');
    DG::Harness::spit("$d/in", $stdin);
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', "$d/in" or die;
        open STDOUT, '>', "$d/out" or die;
        open STDERR, '>', "$d/err" or die;
        exec { $CTL } $CTL, @args or die "exec: $!";
    }
    waitpid $pid, 0;
    return ($? >> 8, DG::Harness::slurp("$d/out"),
        DG::Harness::slurp("$d/err"));
}

sub ctl_json {
    my ($rc, $out, $err) = ctl(@_);
    is($rc, 0, "ctl @_: exit 0") or diag($err);
    return DG::Harness::json_decode($out);
}

my $redis = DG::Harness::Redis->start;
my @R = ('--redis', $redis->addr);

# the engine's own decoding of the window script's replies: the test tool
# of t/10-window-script.t (build/unit/window_client)
my $out = `make -s -C $ROOT test-tools BUILD=$BUILD 2>&1`;
die "make test-tools failed:\n$out" if $?;

my @FIELDS = qw(requests sample topics topic_entropy templates
                top_template_share single_turn_share cot_share gap_mean_ms
                gap_cv bytes state penalty_ms refused retry_ms remaining
                now_ms verified_share fabricated_share prefix_share
                provenance scripted_share);

# window script calls through window_client: one hashref per call, the
# profile the engine computed from the value after it, and the
# provenance the script answered
sub window_client {
    my $d = DG::Harness::tempdir_for('ctl');
    DG::Harness::spit("$d/wc", join '', map { "$_\n" } @_);
    my @out = split /\n/,
        `$BUILD/unit/window_client ${\ $redis->port} < $d/wc`;
    die "window_client failed\n" if $?;
    return map {
        my @v = split ' ';
        die "window_client: unexpected reply: $_\n" if @v != @FIELDS;
        my %p;
        @p{@FIELDS} = @v;
        \%p;
    } @out;
}

# what the gateway sends of a template fingerprint (dg_fold12)
sub fold12 {
    my ($x) = @_;
    return 0 unless $x;
    my $v = ($x ^ ($x >> 12) ^ ($x >> 24)) & 0xfff;
    return $v || 1;
}

subtest 'the decoder against the real window script' => sub {
    my $sha = $redis->cli('SCRIPT', 'LOAD',
        DG::Harness::slurp("$ROOT/src/dg_window.lua"));
    like($sha, qr/^[0-9a-f]{40}\z/, 'the script loads');
    my $window = 300_000;

    # requests on the script's clock, ending just before Redis's own
    my ($s, $us) = split /\n/, $redis->cli('TIME');
    my $now = $s * 1000 + int($us / 1000);

    # each request: [topic, head, tail, flags, bytes, ts, topic_last,
    # sent, prior, opening]; flags: 2 cot, 4 a long last user turn
    my %case = (
        # 60 requests in conversations of four turns: a new one, its
        # verified follow-up (every other one resending a message of the
        # previous conversation: scripted), a fabricated history, then a
        # prefix; repeated topics, two templates (one head only), cot on
        # some, irregular gaps
        small => [map {
            my $i = $_;
            my $conv = 1000 + int($i / 4);
            my $turn = $i % 4;
            my $sent = ($turn == 1 && $i % 8 == 5) ? 2000 + $i - 4
                     : 2000 + $i;
            my $prior = $turn == 0 ? 0 : $turn == 1 ? 2000 + $i - 1
                      : 30000 + $i;
            [($i * 7) % 13, $i % 3 ? fold12(0x89abcdef) : 0,
             $i % 5 ? fold12(0x1234) : 0, ($i % 4 & 2) | 4, 100 + $i * 3,
             $now - 90_000 + $i * 1000 + ($i % 7) * 97, 100 + $i % 11,
             $sent, $prior, $conv]
        } 0 .. 59],
        # 200: the ring wraps; the dropped ones come from the counters
        wrapped => [map { [$_ % 40, 0x77, 0x88, 2, 50 + $_ % 9,
                           $now - 80_000 + $_ * 350 + ($_ % 3) * 11,
                           $_ % 40, $_ + 1, 0, $_ + 1] }
                    0 .. 199],
        one => [[5, 0, 0, 0, 42, $now - 1000, 5, 7, 0, 7]],
    );

    for my $name (sort keys %case) {
        my $id = substr(unpack('H*', $name) . '0000000000000000', 0, 16);
        my @res = window_client(map {
            my ($t, $h, $l, $f, $b, $ts, $tl, $sent, $prior, $open) = @$_;
            "EVALSHA $sha 1 dg:{$id}:w $window $t $h $l $f $b $ts 0 0 0 0"
                . " $tl $sent $prior $open"
        } @{ $case{$name} });
        is(scalar @res, scalar @{ $case{$name} }, "$name: every call"
            . ' decoded by the engine');
        # the profile the engine computed after the last request
        my %want = %{ $res[-1] || {} };

        my $j = ctl_json(@R, '--json', '--window', '300s', 'show', $id);
        my $p = $j->{window}{profile} || {};
        is($j->{window}{version}, 7, "$name: version 7");
        for my $f (qw(sample topics templates gap_mean_ms)) {
            is($p->{$f}, $want{$f}, "$name: $f $want{$f}");
        }
        for my $f (qw(topic_entropy top_template_share single_turn_share
                      cot_share gap_cv verified_share fabricated_share
                      prefix_share scripted_share)) {
            is(sprintf('%.3f', $p->{$f} // -1),
                sprintf('%.3f', $want{$f} / 1000),
                "$name: $f " . $want{$f} / 1000);
        }
        if ($name eq 'small') {
            # every kind of record is there
            cmp_ok($want{$_}, '>', 0, "small: $_ $want{$_}")
                for qw(verified_share fabricated_share prefix_share
                       scripted_share);
        }
        if ($name eq 'wrapped') {
            # a little later on Redis's clock: the counters' share of
            # the sub-window holding the window's start may differ
            cmp_ok(abs(($p->{requests} // 0) - $want{requests}), '<=', 2,
                "wrapped: requests $p->{requests}, engine $want{requests}");
            is(scalar @{ $j->{window}{records} }, 128, 'wrapped: 128 records');
            next;
        }
        is($p->{requests}, $want{requests}, "$name: requests");
        is($p->{bytes}, $want{bytes}, "$name: bytes");
        my $recs = $j->{window}{records};
        is(scalar @$recs, scalar @{ $case{$name} }, "$name: records");
        my $c = $case{$name};
        my @prov = qw(none verified fabricated prefix);
        my @bad = grep {
            my ($t, $h, $l, $f, $b, $ts, $tl, $sent, $prior, $open) =
                @{ $c->[$_] };
            my $r = $recs->[$_];
            my $pv = $res[$_]{provenance};
            # the script files a request with no history of its own (none
            # or prefix) under its last user turn
            my $topic = ($pv == 0 || $pv == 3) ? $tl : $t;
            $r->{topic} != $topic || hex($r->{head}) != $h
                || hex($r->{tail}) != $l || $r->{ts_ms} != $ts
                || hex($r->{sent}) != $sent || hex($r->{opening}) != $open
                || $r->{provenance} ne $prov[$pv]
                || ($r->{single_turn} ? 1 : 0) != ($pv == 0 || $pv == 2)
                || ($r->{cot} ? 1 : 0) != ($f >> 1 & 1)
        } 0 .. $#$c;
        is_deeply(\@bad, [], "$name: every record decodes as sent");
        my $scripted = grep { $_->{scripted} } @$recs;
        is(sprintf('%.3f', $scripted / @$recs),
            sprintf('%.3f', $want{scripted_share} / 1000),
            "$name: the scripted records");
    }

    # a value of another layout is refused, not misread
    $redis->cli('SET', 'dg:{00000000000000aa}:w', 'x' x 1721);
    my ($rc, $out, $err) = ctl(@R, 'show', '00000000000000aa');
    is($rc, 2, 'another version: exit 2');
    like($err, qr/not a window of this version/, 'and says so');
    # the size of version 5
    $redis->cli('SET', 'dg:{00000000000000aa}:w', 'x' x 1703);
    ($rc, $out, $err) = ctl(@R, 'show', '00000000000000aa');
    is($rc, 2, 'another size: exit 2');
    like($err, qr/layout \(size\)/, 'another size: refused');
    $redis->cli('SET', 'dg:{00000000000000aa}:w', 'short');
    ($rc, $out, $err) = ctl(@R, 'show', '00000000000000aa');
    like($err, qr/layout/, 'a short value: refused');
};

my $SECRET = 't50-secret';
my $HOT = 'sk-t50-campaign-1';
my $HOT_ID = key_id($HOT, $SECRET);
my $up = DG::Harness::Upstream->start;
my $ngx = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
    http => http_conf(secret => $SECRET, redis => '%%REDIS%% timeout=1s',
        prefix => 't50', window => '60s', locations => [
            '/hot/' => guarded(with => [@DG::Util::HOT,
                'distill_guard_penalty 10m;']),
        ]));

subtest 'top, show, events: a key a real nginx throttled' => sub {
    my @st = map { post($ngx, '/hot/x', $HOT, templated($_))->{status} }
        1 .. 4;
    note("statuses: @st");
    is($st[-1], 429, 'the campaign key is refused');

    my $top = ctl_json(@R, '--prefix', 't50', '--json', 'top', '5');
    is(scalar @$top, 1, 'top: one flagged key');
    my $t = $top->[0] || {};
    is($t->{key_id}, $HOT_ID, 'top: its id');
    is($t->{state}, 'throttle', 'top: state throttle');
    cmp_ok($t->{score}, '>=', 0.8, "top: score $t->{score}");
    like($t->{signals}, qr/\btemplate\b/, "top: signals $t->{signals}");
    cmp_ok($t->{penalty_left_ms}, '>', 9 * 60_000, 'top: ~10 min left');
    cmp_ok($t->{penalty_left_ms}, '<=', 10 * 60_000, 'top: at most 10 min');

    my ($rc, $out) = ctl(@R, '--prefix', 't50', 'top');
    is($rc, 0, 'top (text): exit 0');
    like($out, qr/^KEY_ID/, 'top (text): a header line');
    like($out, qr/^$HOT_ID\s+\d\.\d{3}\s+throttle\s/m,
        'top (text): the key, its score and state');

    my $s = ctl_json(@R, '--prefix', 't50', '--json', 'show', $HOT_ID);
    is($s->{state}, 'throttle', 'show: state');
    is($s->{window}{profile}{requests}, 4, 'show: 4 requests in the window');
    is($s->{window}{profile}{templates}, 1, 'show: one template');
    is($s->{window}{window_ms}, 60_000, 'show: the window from the value');

    # the raw key from stdin, the id from the nginx configuration's secret
    my $conf = $ngx->dir . '/nginx.conf';
    ($rc, $out) = ctl(\"Bearer $HOT\n", '--nginx-conf', $conf, '--json',
        'show', '--key');
    is($rc, 0, 'show --key with --nginx-conf: exit 0');
    is((DG::Harness::json_decode($out) || {})->{key_id}, $HOT_ID,
        'show --key: the same key id');
    unlike($out, qr/\Q$HOT\E/, 'show --key: the raw key is not printed');

    my $d = DG::Harness::tempdir_for('ctl');
    DG::Harness::spit("$d/secret", "$SECRET\n");
    ($rc, $out) = ctl(\"$HOT\n", @R, '--prefix', 't50', '--secret-file',
        "$d/secret", 'show', '--key');
    is($rc, 0, 'show --key --secret-file: exit 0');
    like($out, qr/^key_id\s+$HOT_ID$/m, 'show (text): the key id');
    like($out, qr/^state\s+throttle$/m, 'show (text): the state');
    unlike($out, qr/\Q$HOT\E/, 'show (text): no raw key');

    ($rc, $out) = ctl(@R, '--prefix', 't50', '--json', 'events');
    my @ev = map { DG::Harness::json_decode($_) } split /\n/, $out;
    ok((grep { $_->{key_id} eq $HOT_ID && $_->{to} eq 'throttle' } @ev),
        'events: the change to throttle');
};

subtest 'release: the key passes again, and the stream says so' => sub {
    my $mark = time;
    my $f = DG::Harness::tempdir_for('ctl') . '/follow';
    # events --follow in the background sees the release as it happens
    my $pid = fork // die;
    if (!$pid) {
        open STDOUT, '>', $f or die;
        exec { $CTL } $CTL, @R, '--prefix', 't50', '--count', '1',
            'events', '--follow', '--json' or die;
    }
    sleep 0.5;

    my $r = ctl_json(@R, '--prefix', 't50', '--json', 'release', $HOT_ID);
    is($r->{from}, 'throttle', 'release: from throttle');
    is($r->{to}, 'pass', 'release: to pass');
    ok($r->{window_deleted}, 'release: the window deleted');

    my $s = ctl_json(@R, '--prefix', 't50', '--json', 'show', $HOT_ID);
    is($s->{state}, 'pass', 'show: state pass');
    like($s->{signals}, qr/\btemplate\b/,
        'show: the signals of the module\'s last change, not the release');
    is($s->{penalty_left_ms}, 0, 'show: no penalty left');
    ok(!$s->{has_window}, 'show: no window');
    is($redis->cli('HGET', "t50:{$HOT_ID}:s", 'pu'), 0, 'Redis: pu 0');

    # the first request after the release is not refused
    is(post($ngx, '/hot/x', $HOT, chat('an honest question'))->{status},
        200, 'the released key: 200');

    for (1 .. 30) { last if -s $f && DG::Harness::slurp($f) =~ /release/;
        sleep 0.1 }
    kill 'TERM', $pid;
    waitpid $pid, 0;
    my @ev = map { DG::Harness::json_decode($_) } grep { length }
        split /\n/, DG::Harness::slurp($f);
    my ($rel) = grep { ($_->{by} // '') =~ /release/ } @ev;
    ok($rel, 'events --follow: the release arrived') or diag(@ev . ' events');
    is($rel->{key_id}, $HOT_ID, 'release event: key id') if $rel;
    is("$rel->{from}>$rel->{to}", 'throttle>pass', 'release event: from, to')
        if $rel;

    my ($rc, $out) = ctl(@R, '--prefix', 't50', 'events');
    like($out, qr/\Q$HOT_ID\E\s+throttle\s+-> pass\s.*by distill-guard-ctl release/,
        'events (text): the release line');
};

subtest 'errors: exit statuses and messages' => sub {
    my ($rc, $out, $err) = ctl(@R, 'show', 'not-a-key-id');
    is($rc, 1, 'bad key id: exit 1');
    like($err, qr/invalid key id "not-a-key-id"/, 'bad key id: named');
    ($rc, $out, $err) = ctl(@R, 'release', '0123456789ABCDEF');
    is($rc, 1, 'upper-case key id: exit 1');
    ($rc, $out, $err) = ctl(@R, '--prefix', 't50', 'show',
        'ffffffffffffffff');
    is($rc, 3, 'a key not in Redis: exit 3');
    like($err, qr/ffffffffffffffff: nothing in Redis/, 'and says so');
    ($rc, $out, $err) = ctl(@R, '--prefix', 't50', 'release',
        'ffffffffffffffff');
    is($rc, 3, 'release of a key not in Redis: exit 3');
    ($rc, $out, $err) = ctl('--redis', '127.0.0.1:' . DG::Harness::free_port(),
        'top');
    is($rc, 2, 'Redis down: exit 2');
    like($err, qr/cannot connect to redis 127\.0\.0\.1:\d+/, 'and says so');
    ($rc, $out, $err) = ctl(@R, 'frobnicate');
    is($rc, 1, 'unknown command: exit 1');
    ($rc, $out, $err) = ctl(@R, '--redis', 'x:1 passwd=oops', 'top');
    is($rc, 1, 'bad --redis parameter: exit 1');
    unlike($err, qr/oops/, 'a mistyped password is not echoed');
};

subtest 'the distill_guard_redis options: password, user, db, socket' => sub {
    my $sock = DG::Harness::tempdir_for('ctl') . '/r.sock';
    my $acl = DG::Harness::Redis->start(user => 'gw', password => 'pw-t50',
        conf => "unixsocket $sock\nunixsocketperm 700");
    $acl->cli('-n', '3', 'ZADD', 'dg:flagged', '0.9', '0123456789abcdef');

    my ($rc, $out, $err) = ctl('--redis', $acl->addr, 'top');
    is($rc, 2, 'no password: exit 2');
    like($err, qr/NOAUTH|NOPERM|auth/i, 'the Redis error is shown');

    my $t = ctl_json('--redis', $acl->addr . ' user=gw password=pw-t50 db=3',
        '--json', 'top');
    is($t->[0]{key_id}, '0123456789abcdef', '--redis with user=, password=,'
        . ' db=: the key');
    is($t->[0]{state}, 'expired', 'no state hash: "expired"');

    my $d = DG::Harness::tempdir_for('ctl');
    DG::Harness::spit("$d/pw", "pw-t50\n");
    $t = ctl_json('-s', $sock, '--user', 'gw', '--password-file', "$d/pw",
        '-n', '3', '--json', 'top');
    is($t->[0]{key_id}, '0123456789abcdef', 'unix socket, --password-file');

    DG::Harness::spit("$d/nginx.conf", <<"EOF");
http {
    distill_guard_secret "s"; # a comment; distill_guard_redis 1.2.3.4:1;
    distill_guard_redis unix:$sock user=gw "password=pw-t50" db=3 timeout=50ms;
}
EOF
    $t = ctl_json('--nginx-conf', "$d/nginx.conf", '--json', 'top');
    is($t->[0]{key_id}, '0123456789abcdef', '--nginx-conf: the same');
    unlike(join('', ctl('--nginx-conf', "$d/nginx.conf", 'top')), qr/pw-t50/,
        'the password is never printed');
    $acl->stop;
};

done_testing();
