#!/usr/bin/perl
# distill_guard_redis <seed> cluster=on against a local Redis Cluster of
# 3 masters and 3 replicas (t/lib/DG/Cluster.pm): keys spread over the
# masters by their hash tags with exact counts; a slot moved under a live
# key (MOVED) and a slot half-migrated (ASK, and TRYAGAIN where Redis
# gives it); a master SIGKILLed under load (fail open, no worker crash,
# no request slower than timeout= + 100 ms, counting back on its own once
# a replica is promoted); nginx -t refusing db= with cluster=on.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use DG::Cluster;
use DG::Util qw(chat templated post window_of requests_of signals_of
    diag_res blast http_conf guarded logs_clean);
use File::Temp qw(tempdir);
use POSIX ();
use Time::HiRes qw(sleep time);

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();
plan skip_all => "$DG::Harness::REDIS_CLI has no --cluster"
    unless `$DG::Harness::REDIS_CLI --cluster help 2>&1` =~ /create/;

DG::Harness::watchdog(90);

my $SECRET = 't34-secret-Cq5v';

sub kid { DG::Util::key_id($_[0], $SECRET) }

sub unavailable {
    return signals_of($_[0]) =~ /(?:^|,)redis_unavailable(?:,|$)/ ? 1 : 0;
}

# $distill_guard_features through the upstream (window_of), else through
# the X-T34-Features response header of the failover's location
sub window {
    my ($res) = @_;
    my $w = window_of($res);
    return $w if $w;
    my $f = DG::Harness::json_decode($res->{headers}{'x-t34-features'}
        // '');
    return ref $f eq 'HASH' && ref $f->{window} eq 'HASH' ? $f->{window}
        : undef;
}

sub counted { my $r = shift; window($r) && !unavailable($r) ? 1 : 0 }

# Polls until a request of $key is counted; that response, or undef
# after $timeout seconds.
sub wait_counted {
    my ($ngx, $path, $key, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        my $res = post($ngx, $path, $key);
        return $res if $res->{status} == 200 && counted($res);
        sleep 0.1;
    }
    return undef;
}

# $n API key names ("sk-t34-$tag-<i>") whose key ids hash to one slot:
# (slot, names).
sub same_slot_keys {
    my ($tag, $n) = @_;
    my %by;
    for my $i (1 .. 200_000) {
        my $name = "sk-t34-$tag-$i";
        my $slot = DG::Cluster::slot('{' . kid($name) . '}');
        push @{ $by{$slot} }, $name;
        return ($slot, @{ $by{$slot} }) if @{ $by{$slot} } == $n;
    }
    die "no $n keys in one slot\n";
}

subtest 'nginx -t: cluster=on, and what it refuses' => sub {
    my $conf = sub {
        return "distill_guard_secret \"$SECRET\";\n"
            . "distill_guard_redis 127.0.0.1:7000 $_[0];\n"
            . "server { listen 127.0.0.1:%%PORT%%;\n"
            . "    location / { distill_guard on; } }\n";
    };
    my ($ok, $out) = DG::Harness::nginx_test(http => $conf->('cluster=on'));
    ok($ok, 'cluster=on is accepted') or diag($out);
    ($ok, $out) = DG::Harness::nginx_test(http => $conf->(
        'cluster=on password=pw user=u timeout=100ms connect_timeout=50ms '
        . 'max_inflight=100'));
    ok($ok, 'with password= user= timeout= connect_timeout= max_inflight=')
        or diag($out);
    ($ok, $out) = DG::Harness::nginx_test(http => $conf->('cluster=on db=1'));
    ok(!$ok, 'cluster=on db=1 is refused');
    like($out, qr/\[emerg\].*db/, 'the message names db') or diag($out);
    ($ok, $out) = DG::Harness::nginx_test(http => $conf->('db=1 cluster=on'));
    ok(!$ok, 'db=1 cluster=on (the other order) is refused') or diag($out);
    ($ok, $out) = DG::Harness::nginx_test(http => $conf->('cluster=maybe'));
    ok(!$ok, 'cluster=maybe is refused');
    like($out, qr/\[emerg\].*cluster/, 'the message names cluster')
        or diag($out);
};

# Without cluster=on nothing below can run: say so once instead of
# failing in every subtest.
unless (Test::More->builder->is_passing) {
    diag('the module does not take cluster=on: the rest is not run');
    done_testing();
    exit;
}

my $c = DG::Cluster->start;
my @M = $c->masters;
is(scalar @M, 3, '3 masters');
is(scalar $c->replicas, 3, '3 replicas');
note('masters ' . join(', ', map {
    $_->port . ' (' . join(',', map { "$_->[0]-$_->[1]" } $c->slots_of($_))
    . ')' } @M));

my $up = DG::Harness::Upstream->start;

# the seed of both nginx: a master
my $SEED = $c->seed;
my ($SEED_PORT) = $SEED =~ /:(\d+)$/;

# two workers: each has its own connection to each master
my $ngx = DG::Harness::Nginx->start(upstream => $up, workers => 2,
    http => http_conf(secret => $SECRET,
        redis => "$SEED cluster=on timeout=1s", prefix => 't34',
        window => '60s', reuseport => 1,
        locations => [
            '/v1/'  => guarded(),
            # the template alone, weight 0.6: tagged (the key gets its
            # state hash :s), never throttled
            '/tag/' => guarded(with => \@DG::Util::TAG),
        ]));

# Until both workers count on every master: 12 counted in a row, keys
# on all three masters (reuseport spreads the connections).
subtest 'warm-up: counted on every master' => sub {
    my %per;
    my $i = 0;
    while (keys %per < 3) {
        my $k = 'sk-t34-warm-' . $i++;
        my $m = $c->node_for('{' . kid($k) . '}');
        $per{ $m->port } //= $k;
    }
    my @warm = values %per;
    my ($row, $n) = (0, 0);
    my $deadline = time + 10;
    while ($row < 12 && time < $deadline) {
        my $res = post($ngx, '/v1/x', $warm[$n++ % 3]);
        $row = counted($res) ? $row + 1 : 0;
        sleep 0.05 unless $row;
    }
    is($row, 12, "12 counted in a row after $n requests") or return;
};

subtest 'keys spread over the masters, counts exact' => sub {
    my @keys = map { sprintf 'sk-t34-spread-%03d', $_ } 1 .. 60;
    my @res = blast($ngx->port, 60, 5, sub {
        my ($ci, $i) = @_;
        ['/v1/chat/completions', $keys[$ci],
            chat("spread $ci question $i about $DG::Util::TOPICS[$i]")];
    });
    is(scalar @res, 300, '300 answers');
    is(scalar(grep { $_->{status} != 200 } @res), 0, 'all 200');
    my %seq;
    for my $r (@res) {
        $r->{vars} = DG::Harness::vars($r) || {};
        my $id = $r->{vars}{key_id} // '?';
        push @{ $seq{$id} }, unavailable($r) ? 'unavailable'
            : requests_of($r) // 'none';
    }
    my @wrong = grep { join(',', @{ $seq{ kid($_) } || [] }) ne '1,2,3,4,5' }
        @keys;
    is(scalar @wrong, 0, 'every key counted 1, 2, 3, 4, 5 in order')
        or diag(join "\n", map { "$_: " . join(',', @{ $seq{ kid($_) }
            || [] }) } @wrong[0 .. ($#wrong > 9 ? 9 : $#wrong)]);

    my %on;
    for my $m (@M) {
        $on{$_} = $m for $c->scan($m, 't34:{*}:w');
    }
    my %ours = map { ("t34:{" . kid($_) . "}:w" => $_) } @keys;
    for my $m (@M) {
        my $n = grep { $on{$_} == $m } grep { $on{$_} } keys %ours;
        cmp_ok($n, '>', 0, 'master ' . $m->port . " holds $n window keys");
    }
    my @lost = grep { !$on{$_} } sort keys %ours;
    is(scalar @lost, 0, 'every window key is on a master') or diag("@lost");
    my @elsewhere = grep { $on{$_} && $on{$_} != $c->node_for($_) }
        keys %ours;
    is(scalar @elsewhere, 0, 'each on the master of its slot');
};

# distill-guard-ctl on the cluster: it follows MOVED from the seed
sub ctl_run {
    my ($ctl, @args) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        exec { $ctl } $ctl, @args or exit 127;
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    return ($? >> 8, $out);
}

subtest 'distill-guard-ctl: show and release follow MOVED' => sub {
    my $ctl = DG::Harness::root() . '/build/distill-guard-ctl';
    plan skip_all => "$ctl is missing (make ctl)" unless -x $ctl;
    my $seed = $c->node_by_port($SEED_PORT);
    my ($key) = grep { $c->node_for('{' . kid($_) . '}') != $seed }
        map { sprintf 'sk-t34-spread-%03d', $_ } 1 .. 60;
    my $id = kid($key);
    my @redis = ('--redis', "$SEED cluster=on", '--prefix', 't34',
        '--window', '60s');
    my ($rc, $out) = ctl_run($ctl, @redis, '--json', 'show', $id);
    is($rc, 0, "show $id (not on the seed): exit 0") or diag($out);
    like($out, qr/"requests":\s*5\b/, 'its 5 requests') or diag($out);
    ($rc, $out) = ctl_run($ctl, @redis, 'release', $id);
    is($rc, 0, 'release: exit 0') or diag($out);
    ($rc, $out) = ctl_run($ctl, @redis, '--json', 'show', $id);
    is($rc, 3, 'its window is gone (exit 3)') or diag($out);
    ($rc, $out) = ctl_run($ctl, @redis, 'events', '--count', '50');
    like($out, qr/\Q$id\E.*by distill-guard-ctl release/,
        'the release event, on its own slot') or diag($out);
    ($rc, $out) = ctl_run($ctl, '--redis', "$SEED tls=on", 'top');
    isnt($rc, 0, 'tls=on is refused');
    like($out, qr/plain TCP only/, 'and says why');
};

subtest 'MOVED: a live key\'s slot moved to another master' => sub {
    my $key = 'sk-t34-moved-0001';
    my $id = kid($key);
    my $slot = $c->slot("{$id}");
    for my $n (1 .. 3) {
        my $res = post($ngx, '/v1/x', $key, templated($n));
        is(requests_of($res), $n, "before: $n") or diag_res($res);
    }
    my $from = $c->owner($slot);
    my ($to) = grep { $_ != $from } @M;
    my $other = 'sk-t34-moved-other';
    $other .= 'x' while $c->node_for('{' . kid($other) . '}') != $from;
    ok(counted(post($ngx, '/v1/x', $other)), 'a key staying on '
        . $from->port . ' counted');
    my $t0 = time;
    $c->migrate_slot($slot, $from, $to);
    note(sprintf 'slot %d moved from %d to %d in %.2f s', $slot,
        $from->port, $to->port, time - $t0);
    is($c->owner($slot)->port, $to->port, "slot $slot now on " . $to->port);
    is($to->cli('EXISTS', "t34:{$id}:w"), 1, 'the window key moved with it');
    # six requests: both workers meet the MOVED with good odds
    for my $n (4 .. 9) {
        my $res = post($ngx, '/v1/x', $key, templated($n));
        is(requests_of($res), $n, "after the move: $n, no redis_unavailable")
            or diag_res($res);
    }
    my $res = post($ngx, '/v1/x', $other);
    is(requests_of($res), 2, 'the key that stayed on ' . $from->port
        . ': 2') or diag_res($res);
};

# During a migration Redis serves a command on the old owner while it
# has every key the command names, and on the new one after ASKING when
# all of them have moved there; a command naming several keys of which
# some are missing gets TRYAGAIN on either.  The window script names a
# key's four keys (:w, :s, :p, :t) and the gateway's own path reads :w,
# :p and :t with one MGET, most of which a key may or may not have: its
# requests in that slot fail open (TRYAGAIN), answered within timeout=.
# A request of the gateway's own path may have appended its record
# before its MGET failed: it is counted (it did reach the upstream).  So
# while half-migrated a key's count, when one comes, only grows, and
# never past the requests sent; once the migration is done every key
# counts on from what Redis holds.
subtest 'ASK: a slot half-migrated' => sub {
    my ($slot, $a_moved, $b_stays, $c_moved, $d_stays)
        = same_slot_keys('ask', 4);
    my %path = ($a_moved => '/tag/', $b_stays => '/tag/',
                $c_moved => '/v1/', $d_stays => '/v1/');
    my (%sent, %last);
    my $seq = 0;
    my $send = sub {
        my ($k) = @_;
        my $res = post($ngx, "$path{$k}x", $k, templated(++$seq));
        $sent{$k}++;
        return $res;
    };
    for my $k ($a_moved, $b_stays, $c_moved, $d_stays) {
        for my $n (1, 2) {
            my $res = $send->($k);
            is(requests_of($res), $n, "$k: $n") or diag_res($res);
        }
        $last{$k} = 2;
    }
    my $from = $c->owner($slot);
    my ($to) = grep { $_ != $from } $c->masters;
    my $sw = sub { 't34:{' . kid($_[0]) . "}:$_[1]" };
    my $t_wait = time + 2;     # the state writes are not waited for
    sleep 0.05 while time < $t_wait
        && grep { $from->cli('EXISTS', $sw->($_, 's')) != 1 }
            $a_moved, $b_stays;
    for my $k ($a_moved, $b_stays) {
        is($from->cli('EXISTS', $sw->($k, 's')), 1,
            "tagged $k has its state hash") or return;
    }
    is($from->cli('EXISTS', $sw->($c_moved, 's')), 0,
        "ordinary $c_moved has none");

    my $m = $c->migrate_slot($slot, $from, $to, keys => [
        $sw->($a_moved, 'w'), $sw->($a_moved, 's'), $sw->($c_moved, 'w')]);
    note("slot $slot half-migrated from " . $from->port . ' to ' . $to->port
        . ": moved @{ $m->{moved} }; left @{ $m->{left} }");
    is(scalar @{ $m->{moved} }, 3, '3 keys moved');
    like($from->cli('GET', $sw->($a_moved, 'w')), qr/^ASK $slot /,
        'the old owner answers ASK for a moved key');

    my $mark = $ngx->mark;
    for my $n (3, 4) {
        for my $k ($a_moved, $b_stays, $c_moved, $d_stays) {
            my $res = $send->($k);
            is($res->{status}, 200, "$k: 200");
            cmp_ok($res->{elapsed}, '<', 1.5, 'answered within timeout=');
            if (counted($res)) {
                my $got = requests_of($res);
                ok($got > $last{$k} && $got <= $sent{$k},
                   "counted: $got, over $last{$k}, at most $sent{$k}");
                $last{$k} = $got;
            } else {
                ok(unavailable($res), 'not counted: redis_unavailable')
                    or diag_res($res);
            }
        }
    }
    note('while half-migrated, the log said: '
        . join(' | ', grep { /redis/ } split /\n/,
            $ngx->error_log_since($mark)));

    $c->finish_migration($m);
    is($c->owner($slot)->port, $to->port, "slot $slot now on " . $to->port);
    for my $k ($a_moved, $b_stays, $c_moved, $d_stays) {
        my $res = $send->($k);
        my $got = requests_of($res) // 0;
        ok($got > $last{$k} && $got <= $sent{$k},
           "after the migration $k: $got, over $last{$k}, at most "
           . "$sent{$k}") or diag_res($res);
        $res = $send->($k);
        is(requests_of($res), $got + 1, "and on: " . ($got + 1))
            or diag_res($res);
    }
};

logs_clean($ngx, 'spread, MOVED, ASK');

# Failover under load.  A location without the mock upstream (a second
# server in the same nginx answers), so that a request's time is the
# module's; timeout=100ms: no request may take longer than 200 ms.
# two seeds: the first (also the other nginx's), and a master that the
# failover below does not kill
my ($SEED2) = map { $_->addr } (grep { $_->port != $SEED_PORT } @M)[-1];
my $fast = DG::Harness::Nginx->start(workers => 2,
    access_log_format => '$msec $status $request_time $uri '
        . '$distill_guard_key_id "$sent_http_x_distill_guard_signals"',
    http => http_conf(secret => $SECRET,
        redis => "$SEED $SEED2 cluster=on timeout=100ms "
            . 'connect_timeout=100ms',
        prefix => 't34f', window => '60s', reuseport => 1,
        head => "server {\n    listen 127.0.0.1:%%PORT2%%;\n"
            . "    access_log off;\n"
            . "    location / { return 200 \"ok\\n\"; }\n}\n",
        locations => ['/load/' => ['distill_guard on;',
            'add_header X-T34-Features $distill_guard_features always;',
            'proxy_pass http://127.0.0.1:%%PORT2%%;']]));

subtest 'failover: a master SIGKILLed under load' => sub {
    my @masters = $c->masters;
    # not the seed of distill_guard_redis
    my ($victim) = grep { $_->port != $SEED_PORT } @masters;
    # two keys on each master
    my (@keys, %n_on);
    for (my $i = 0; @keys < 6; $i++) {
        my $k = "sk-t34-load-$i";
        my $m = $c->node_for('{' . kid($k) . '}');
        next if ($n_on{ $m->port } //= 0) >= 2;
        $n_on{ $m->port }++;
        push @keys, $k;
    }
    my @vkeys = grep { $c->node_for('{' . kid($_) . '}') == $victim } @keys;
    my %is_v = map { $_ => 1 } @vkeys;
    for my $k (@keys) {
        ok(wait_counted($fast, '/load/x', $k, 5), "$k counted before")
            or return;
    }
    my @workers = sort $fast->workers;

    my $dir = tempdir('dg-t34-load-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my @kids;
    for my $ci (0 .. 2) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            # no END, no DESTROY: the servers are the parent's
            eval {
                open my $out, '>', "$dir/c$ci" or die;
                my $i = $ci;
                until (-e "$dir/stop") {
                    my $k = $keys[$i++ % @keys];
                    my $res = post($fast, '/load/x', $k, chat("load $ci $i"));
                    printf $out "%.4f %.4f %d %d %s\n", time,
                        $res->{elapsed}, $res->{status}, unavailable($res), $k;
                    sleep 0.005;
                }
                close $out;
            };
            POSIX::_exit($@ ? 1 : 0);
        }
        push @kids, $pid;
    }
    sleep 1;
    my $t_kill = time;
    $c->kill($victim);
    note('SIGKILLed master ' . $victim->port . " (keys: @vkeys)");

    # counting is back on the victim's slots once every key of them is
    # counted twice in a row
    my %row;
    my $t_back;
    while (time < $t_kill + 15) {
        for my $k (@vkeys) {
            my $res = post($fast, '/load/x', $k);
            $row{$k} = counted($res) ? ($row{$k} // 0) + 1 : 0;
        }
        if (!grep { $row{$_} < 2 } @vkeys) { $t_back = time; last }
        sleep 0.1;
    }
    sleep 0.5;
    DG::Harness::spit("$dir/stop", '');
    my @failed = grep { waitpid($_, 0); $? != 0 } @kids;
    is(scalar @failed, 0, 'the load children ran to the end');

    ok($t_back, sprintf 'counting resumed on the killed master\'s slots '
        . 'within 15 s: after %.1f s', ($t_back // time) - $t_kill);
    my $new = $c->wait_promotion($victim, 10);
    ok($new, 'a replica was promoted: ' . ($new ? $new->port : 'none'));

    my @r = map { [split / /] } map { split /\n/, DG::Harness::slurp($_) }
        glob "$dir/c*";
    cmp_ok(scalar @r, '>', 100, scalar(@r) . ' requests under load');
    my @not2xx = grep { $_->[2] !~ /^2/ } @r;
    is(scalar @not2xx, 0, 'all 2xx (fail open)')
        or diag(join ', ', map { "$_->[2] at " . sprintf('%+.2f s',
            $_->[0] - $t_kill) } @not2xx[0 .. ($#not2xx > 9 ? 9 : $#not2xx)]);
    my $down = grep { $_->[3] && $is_v{ $_->[4] } } @r;
    cmp_ok($down, '>', 0, "$down requests of the killed master's keys "
        . 'failed open (redis_unavailable)');
    my $other_down = grep { $_->[3] && !$is_v{ $_->[4] } } @r;
    note("$other_down requests of the other masters' keys failed open "
        . '(the cluster is down for every slot from the failure report to '
        . 'the promotion)');
    my ($slowest) = sort { $b->[1] <=> $a->[1] } @r;
    note(sprintf 'slowest request seen by a client: %.3f s at %+.2f s',
        $slowest->[1], $slowest->[0] - $t_kill) if $slowest;

    # nginx's own $request_time: no client scheduling in it
    my @log = grep { $_->[3] eq '/load/x' } map { [split / /] }
        $fast->access_log_lines;
    my @slow = grep { $_->[2] > 0.200 } @log;
    is(scalar @slow, 0, 'no request took more than timeout= + 100 ms '
        . '($request_time)') or diag(join "\n", map { sprintf
            '%s s at %+.2f s: %s %s', $_->[2], $_->[0] - $t_kill, $_->[3],
            $_->[4] } @slow[0 .. ($#slow > 9 ? 9 : $#slow)]);

    is_deeply([sort $fast->workers], \@workers,
        'the same workers serve (none crashed)');
    for my $k (@keys) {
        ok(wait_counted($fast, '/load/x', $k, 5), "$k counted after");
    }
};

# The first seed killed: the running workers keep the slot map they have
# and refresh it from any node; a new worker (a reload, a worker that
# died) finds the cluster through the second seed.
subtest 'the seed killed: running workers go on, then a reload' => sub {
    my $seed = $c->node_by_port($SEED_PORT);
    my ($on_seed, $elsewhere);
    for (my $i = 0; !$on_seed || !$elsewhere; $i++) {
        my $k = "sk-t34-seed-$i";
        if ($c->node_for('{' . kid($k) . '}') == $seed) { $on_seed //= $k }
        else { $elsewhere //= $k }
    }
    ok(wait_counted($fast, '/load/x', $_, 5), "$_ counted")
        for $on_seed, $elsewhere;
    my $t_kill = time;
    $c->kill($seed);
    my $new = $c->wait_promotion($seed, 15);
    ok($new, 'the seed\'s replica promoted: ' . ($new ? $new->port : 'none'))
        or return;
    ok(wait_counted($fast, '/load/x', $on_seed, 10),
        sprintf 'the seed\'s slots count again on its replica (%.1f s after '
        . 'the kill)', time - $t_kill);
    ok(wait_counted($fast, '/load/x', $elsewhere, 2),
        'and the other masters\' keys');
    $fast->reload;
    ok(wait_counted($fast, '/load/x', $elsewhere, 5),
        'after a reload the new workers count, through the second seed');
    ok(wait_counted($fast, '/load/x', $on_seed, 5),
        'and the first seed\'s slots, on its replica');
};

logs_clean($fast, 'failover');
my @sig = grep { /exited on signal/ } split /\n/, $fast->error_log;
is(scalar @sig, 0, 'no worker exited on a signal');

done_testing();
