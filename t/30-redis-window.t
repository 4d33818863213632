#!/usr/bin/perl
# The per-key sliding window kept in Redis: "window" in
# $distill_guard_features, exact counts across two workers and across two
# nginx instances sharing one Redis, the window sliding, the layout of
# the Redis keys (prefix, hash tags, a TTL on every key, the raw API key
# nowhere) and an idle key's state expiring whole.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use DG::Util qw(chat post window_of requests_of diag_res redis_dump blast
    http_conf guarded logs_clean stats);
use Time::HiRes qw(sleep time);

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();

DG::Harness::watchdog(100);

my $SECRET = 't30-secret-Wq8e';

sub key_id { DG::Util::key_id($_[0], $SECRET) }

my @TOPICS = @DG::Util::TOPICS;      # 20

sub templated { DG::Util::templated($_[0], @TOPICS) }

my $redis = DG::Harness::Redis->start;
my $up = DG::Harness::Upstream->start;

my $http = sub {
    my ($prefix, $window, $redis_extra) = @_;
    return http_conf(secret => $SECRET,
        redis => '%%REDIS%% timeout=2s' . ($redis_extra // ''),
        prefix => $prefix,
        window => $window, reuseport => 1,
        # a client's own address, as behind a load balancer
        head => "set_real_ip_from 127.0.0.1;\n"
              . "real_ip_header X-Forwarded-For;\n",
        locations => [
            '/v1/' => guarded(),
            # min_requests 1 and a template weight over 1: one templated
            # request alone reaches the throttle threshold
            '/hot/' => guarded(with => [
                'distill_guard_min_requests 1;',
                'distill_guard_weight template 10;']),
        ]);
};

# two workers, a long window: counts do not slide during the test
my $ngx = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
    workers => 2, http => $http->('t30', '60s'),
    access_log_format => '$pid $status action=$distill_guard_action');
# a second node on the same Redis, same secret and prefix, which sends
# every request through the window script (native=off): the two paths
# must agree on one key
my $ngx2 = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
    http => $http->('t30', '60s', ' native=off'));
# a 2 s window, its own prefix
my $short = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
    http => $http->('t30s', '2s'));

subtest 'window profile in $distill_guard_features' => sub {
    my $key = 'sk-t30-fields-0001';
    my $res = post($ngx, '/v1/chat/completions', $key, templated(1));
    is($res->{status}, 200, 'status 200') or return diag_res($res);
    my $w = window_of($res);
    ok($w, 'features have a "window" object') or return diag_res($res);
    for my $k (qw(requests sample topics topic_entropy templates
                  top_template_share single_turn_share cot_share gap_mean_ms
                  gap_cv bytes template_keys subnet_keys)) {
        ok(exists $w->{$k}, "window.$k") or diag_res($res);
    }
    is($w->{requests}, 1, 'first request of a key: requests 1');
    is($w->{sample}, 1, 'sample 1');
    is($w->{topics}, 1, 'topics 1');
    is($res->{vars}{action}, 'pass', 'action pass');
    unlike($res->{vars}{signals} // '', qr/redis_unavailable/,
        'no redis_unavailable');
    is($res->{vars}{key_id}, key_id($key), 'key_id');
    cmp_ok($w->{bytes}, '>', 0, 'bytes > 0');
    is($w->{bytes}, $res->{vars}{features}{bytes},
        'window bytes = the one request\'s bytes');
    is($w->{subnet_keys}, 0, 'from loopback: no client network counted');
    cmp_ok($w->{template_keys}, '>=', 1, 'template_keys >= 1 (templated)')
        or diag_res($res);

    my $last;
    for my $i (2 .. 5) {
        $last = post($ngx, '/v1/chat/completions', $key, templated($i));
    }
    $w = window_of($last) or return diag_res($last);
    is($w->{requests}, 5, 'five requests: requests 5');
    is($w->{sample}, 5, 'sample 5');
    # shares are fractions 0..1
    cmp_ok($w->{top_template_share}, '>=', 0.5,
        'same template each time: top_template_share high')
        or diag_res($last);
    cmp_ok($w->{top_template_share}, '<=', 1, 'top_template_share <= 1');
    is($w->{templates}, 1, 'templates 1') or diag_res($last);
    is($w->{single_turn_share} + 0, 1, 'all single-turn: share 1')
        or diag_res($last);
    cmp_ok($w->{cot_share}, '<=', 1, 'cot_share <= 1');
    cmp_ok($w->{topics}, '>=', 1, 'topics >= 1');
    cmp_ok($w->{gap_mean_ms}, '>', 0, 'gap_mean_ms > 0');
};

subtest 'template_keys counts the keys sharing a template' => sub {
    my $res;
    for my $k (1 .. 4) {
        # a worker holds the counts for up to window / 64 (937 ms here,
        # src/dg_fanout.h): what the other worker added shows after that
        sleep 1 if $k == 4;
        $res = post($ngx, '/v1/x', "sk-t30-fan-$k", templated(100 + $k),
            'X-Forwarded-For' => "198.51.100.$k");
    }
    my $w = window_of($res) or return diag_res($res);
    # the first subtest's key used the same template
    cmp_ok($w->{template_keys}, '>=', 4, 'template_keys >= 4')
        or diag_res($res);
    cmp_ok($w->{template_keys}, '<=', 6, 'template_keys <= 6 (HLL, small)')
        or diag_res($res);
    is($w->{subnet_keys}, 4, 'subnet_keys 4: the keys from 198.51.100.0/24')
        or diag_res($res);

    # private and carrier-NAT addresses are a proxy's, not a network
    for my $ip (qw(10.1.2.3 192.168.7.8 172.20.1.1 100.64.9.9)) {
        my $p = post($ngx, '/v1/x', 'sk-t30-fan-1', templated(100),
            'X-Forwarded-For' => $ip);
        my $pw = window_of($p) or return diag_res($p);
        is($pw->{subnet_keys}, 0, "from $ip: no client network counted");
    }
    $res = post($ngx, '/v1/x', 'sk-t30-fan-9',
        chat('hi'));
    $w = window_of($res) or return diag_res($res);
    is($w->{template_keys}, 0, 'a prompt without a template: 0')
        or diag_res($res);
};

subtest 'exact counts across 2 workers, many connections' => sub {
    my $key = 'sk-t30-workers-0002';
    my ($conns, $per) = (16, 5);
    # most of these go the gateway's own way (APPEND to the pending log,
    # MGET), the others through the script: the counts must not tell
    my $appends = sub {
        ($redis->cli('INFO', 'commandstats') =~ /cmdstat_append:calls=(\d+)/)
            [0] // 0;
    };
    my $a0 = $appends->();
    my @res = blast($ngx->port, $conns, $per,
        sub { ['/v1/chat/completions', $key,
            chat("question $_[0] $_[1] about $TOPICS[$_[1]]")] });
    is(scalar @res, $conns * $per, 'every request answered');
    my @bad = grep { $_->{status} != 200 } @res;
    is(scalar @bad, 0, 'all 200') or diag("statuses: "
        . join ',', map { $_->{status} } @bad);
    my @unavail = grep { ($_->{headers}{'x-distill-guard-signals'} // '')
        =~ /redis_unavailable/ } @res;
    is(scalar @unavail, 0, 'none redis_unavailable');
    my %pids = map { (split / /)[0] => 1 } $ngx->access_log_lines;
    cmp_ok(scalar keys %pids, '>=', 2, 'both workers served requests')
        or diag(join "\n", $ngx->access_log_lines);

    # the counts seen along the way are distinct: every request was
    # counted exactly once, whatever its worker
    my @counts = sort { $a <=> $b } grep { defined }
        map { requests_of({ vars => DG::Harness::vars($_) || {} }) } @res;
    is(scalar @counts, $conns * $per, 'every answer has window.requests');
    is_deeply(\@counts, [1 .. $conns * $per],
        'window.requests took every value 1..N once')
        or diag("counts: @counts");
    cmp_ok($appends->() - $a0, '>=', $conns * $per / 2,
        'half of them or more without the script (APPEND to the log)');
    # the gateway wrote its fold back (a commit) at least once every
    # 16 requests of its own path: the counts above include them
    cmp_ok(stats($ngx)->{redis}{commits} // 0, '>=',
        int($conns * $per / 2 / 16), 'the gateway committed its folds');

    my $res = post($ngx, '/v1/chat/completions', $key);
    is(requests_of($res), $conns * $per + 1, 'one more: N + 1')
        or diag_res($res);

    # one connection per worker: 2 + 1 + 1 for the three nginx (the
    # redis-cli asking is the one running CLIENT)
    my @clients = grep { length && !/ cmd=client/ }
        split /\n/, $redis->cli('CLIENT', 'LIST');
    is(scalar @clients, 4, 'Redis sees one connection per worker (4)')
        or diag($redis->cli('CLIENT', 'LIST'));
};

subtest 'a window gone while the workers knew it (flushed, released)' => sub {
    # both workers know the key's window; it goes (FLUSHALL, a failover,
    # a release): the next request of each worker finds it gone and
    # forgets it, the one after goes to the script, which makes the
    # window again with the log's records
    my $key = 'sk-t30-gone-0007';
    my $res;
    $res = post($ngx, '/v1/x', $key, chat("before $_")) for 1 .. 6;
    is(requests_of($res), 6, 'six requests') or diag_res($res);
    my ($w, $p) = map { "t30:{" . key_id($key) . "}:$_" } qw(w p);
    cmp_ok($redis->cli('DEL', $w, $p), '>=', 1,
        'the window and its log are deleted');
    my @n = map { requests_of(post($ngx, '/v1/x', $key, chat("after $_"))) }
        1 .. 4;
    is_deeply(\@n, [1 .. 4], 'counted afresh: 1 to 4') or diag("@n");
    is($redis->cli('EXISTS', $w), 1, 'the window is there again');
};

subtest 'two nginx instances sharing one Redis' => sub {
    # node a takes the gateway's own path once it knows the key, node b
    # (native=off) always the script, which folds a's pending log
    my $key = 'sk-t30-nodes-0003';
    my $n = 24;
    my (%seen, $last);
    for my $i (1 .. $n) {
        my $node = $i % 2 ? $ngx : $ngx2;
        # three topics: the default scoring has no reason to act
        $last = post($node, '/v1/x', $key,
            chat("node test $i about $TOPICS[$i % 3]"));
        $seen{ $i % 2 ? 'a' : 'b' }++ if $last->{status} == 200;
        is(requests_of($last), $i, "request $i (node "
            . ($i % 2 ? 'a' : 'b') . "): requests $i") or diag_res($last);
    }
    is(($seen{a} // 0) + ($seen{b} // 0), $n, 'all answered 200, '
        . 'half by each node');
    is($last->{vars}{key_id}, key_id($key), 'same key id on both nodes');

    my $appends = sub {
        ($redis->cli('INFO', 'commandstats') =~ /cmdstat_append:calls=(\d+)/)
            [0] // 0;
    };
    my $a0 = $appends->();
    post($ngx2, '/v1/x', $key, chat("node b alone $_")) for 1 .. 3;
    is($appends->(), $a0, 'native=off: node b appends nothing');
    post($ngx, '/v1/x', $key, chat("node a alone $_")) for 1 .. 3;
    cmp_ok($appends->(), '>', $a0, 'node a does');
};

subtest 'the window slides (2 s window)' => sub {
    my $key = 'sk-t30-slide-0004';
    my $t0 = time;
    post($short, '/v1/x', $key, chat("first batch $_")) for 1 .. 4;
    my $res = post($short, '/v1/x', $key, chat('first batch 5'));
    is(requests_of($res), 5, 'five quick requests: 5') or diag_res($res);
    my $t1 = time;
    sleep(1.2 - ($t1 - $t0)) if $t1 - $t0 < 1.2;
    my $tb = time;
    post($short, '/v1/x', $key, chat('second batch 1'));
    $res = post($short, '/v1/x', $key, chat('second batch 2'));
    if (time - $t0 < 1.9) {
        is(requests_of($res), 7, '1.2 s later, two more: 7')
            or diag_res($res);
    }
    my $wait = $t1 + 2.5 - time;
    sleep $wait if $wait > 0;
    if (time - $tb < 1.9) {
        $res = post($short, '/v1/x', $key, chat('third'));
        is(requests_of($res), 3,
            'first batch older than the window: 2 + this one = 3')
            or diag_res($res);
    } else {
        note('too slow to check the partial slide: ' . (time - $tb));
    }
    sleep 2.5;
    $res = post($short, '/v1/x', $key, chat('after idle'));
    is(requests_of($res), 1, 'after 2.5 s idle: requests restarts at 1')
        or diag_res($res);
};

subtest 'a sparse key on the gateway\'s own path (2 s window)' => sub {
    # one request every 250 ms for 4 s: most take the gateway's own path,
    # whose log gets its TTL (a window and a sub-window) as it starts; it
    # must be folded before that ends (the worker sends the key to the
    # script once its log is a sub-window old), or the count loses the
    # records of a log gone with them
    my $key = 'sk-t30-sparse-0006';
    my (@sent, @bad);
    for my $i (1 .. 16) {
        my $res = post($short, '/v1/x', $key, chat("sparse $i"));
        my $now = time;
        push @sent, $now;
        my $got = requests_of($res);
        # the window holds what came in the last 2 s; a request at the
        # edge may fall either side
        my $in = grep { $_ > $now - 1.9 } @sent;
        my $edge = grep { $_ > $now - 2.1 } @sent;
        push @bad, "request $i: $got, not $in to $edge"
            if !defined $got || $got < $in || $got > $edge;
        sleep 0.25;
    }
    is_deeply(\@bad, [], 'every count is the window\'s, over 4 s');
};

subtest 'Redis keys: layout, TTLs, no raw API key' => sub {
    # a flagged key too, for the state hash, flagged set and events
    my $hot = 'sk-t30-HOT-raw-key-0005';
    my @st = map { post($short, '/hot/x', $hot, templated($_))->{status} }
        1 .. 3;
    note("hot key statuses: @st");
    sleep 0.3;          # state writes are not waited for

    my @raw = ('sk-t30-', 'HOT-raw-key', 'fields-0001', 'workers-0002',
        'nodes-0003', 'slide-0004');
    for my $prefix (qw(t30 t30s)) {
        my $d = redis_dump($redis, $prefix);
        # a key that expired between SCAN and PTTL (short-window fan-out
        # buckets do) had a TTL: PTTL -2 is "no such key", not "no TTL"
        my @gone = grep { $d->{$_}{pttl} eq '-2' } keys %$d;
        note("$prefix: expired while dumped: @gone") if @gone;
        delete @$d{@gone};
        my @keys = sort keys %$d;
        cmp_ok(scalar @keys, '>', 0, "$prefix: keys exist");
        my @odd = grep {
            !/^\Q$prefix\E:\{[0-9a-f]{16}\}:[a-z]+$/
            && !/^\Q$prefix\E:\{[htn]:[^{}]+\}:\d+$/
            && !/^\Q$prefix\E:(?:flagged|events)$/
        } @keys;
        is_deeply(\@odd, [], "$prefix: every key name has the documented "
            . 'form') or diag(join "\n", @keys);
        my @nottl = grep { $d->{$_}{pttl} !~ /^\d+$/ || $d->{$_}{pttl} <= 0 }
            @keys;
        is_deeply(\@nottl, [], "$prefix: every key has a TTL")
            or diag(join "\n", map { "$_ pttl=$d->{$_}{pttl}" } @nottl);
        my @leak;
        for my $k (@keys) {
            for my $r (@raw) {
                push @leak, "$k ($d->{$k}{type})"
                    if index($k, $r) >= 0 || index($d->{$k}{value}, $r) >= 0;
            }
        }
        is_deeply(\@leak, [], "$prefix: no key name or value holds a raw "
            . 'API key');
        my %types;
        $types{ $d->{$_}{type} }++ for @keys;
        note("$prefix: " . join ', ', map { "$_ x$types{$_}" } sort keys %types);
    }

    my $d = redis_dump($redis, 't30');
    my $id = key_id('sk-t30-workers-0002');
    ok($d->{"t30:{$id}:w"}, "per-key window t30:{<key id>}:w exists")
        or diag(join "\n", sort keys %$d);
    ok((grep { /^t30:\{n:198\.51\.100\}:\d+$/ } keys %$d),
        'client network counter t30:{n:198.51.100}:<bucket>')
        or diag(join "\n", sort keys %$d);
    ok(!(grep { /^t30:\{n:(?:127|10|192\.168)\./ } keys %$d),
        'no counter for loopback or private networks')
        or diag(join "\n", sort keys %$d);
    ok((grep { /^t30:\{h:[0-9a-f]+\}:\d+$/ } keys %$d),
        'template head counter t30:{h:<fp>}:<bucket>');
    ok((grep { /^t30:\{t:[0-9a-f]+\}:\d+$/ } keys %$d),
        'template tail counter t30:{t:<fp>}:<bucket>');
    my $wttl = $d->{"t30:{$id}:w"}{pttl} // 0;
    cmp_ok($wttl, '<=', 60_000, 'window key TTL <= the window (60 s)');
    cmp_ok($wttl, '>', 30_000, 'window key TTL > 30 s');

    my $s = redis_dump($redis, 't30s');
    my $hid = key_id($hot);
    ok($s->{"t30s:{$hid}:s"}, 'the throttled key has its state hash')
        or diag(join "\n", sort keys %$s);
    is($s->{"t30s:{$hid}:s"}{type}, 'hash', 'state is a hash')
        if $s->{"t30s:{$hid}:s"};
    ok($s->{'t30s:flagged'}, 't30s:flagged exists');
    ok($s->{'t30s:events'}, 't30s:events exists');
};

subtest 'an idle key leaves nothing behind (2 s window)' => sub {
    # wait out window + TTL: window 2 s, penalty 2 s (the default: the
    # window), fan-out buckets 2 windows
    my $idle = 'sk-t30-idle-0006';
    post($short, '/v1/x', $idle, templated($_)) for 1 .. 3;
    my $id = key_id($idle);
    my $hid = key_id('sk-t30-HOT-raw-key-0005');
    my $d = redis_dump($redis, 't30s');
    ok($d->{"t30s:{$id}:w"}, 'the key has a window') or return;
    sleep 5.5;
    $d = redis_dump($redis, 't30s');
    my @left = grep { !/^t30s:(?:flagged|events)$/ && !/\{$hid\}/ }
        sort keys %$d;
    is_deeply(\@left, [], 'after 2 windows + 1.5 s: no per-key, template '
        . 'or network key remains') or diag(join "\n",
            map { "$_ pttl=$d->{$_}{pttl}" } @left);
    # the throttled key of the previous subtest: its last request was
    # longer ago still
    my @hot = grep { /\{$hid\}/ } sort keys %$d;
    is_deeply(\@hot, [], 'nothing of the throttled key remains either '
        . '(window 2 s + penalty 2 s)') or diag(join "\n",
            map { "$_ pttl=$d->{$_}{pttl} $d->{$_}{value}" } @hot);
    my @mon = grep { /^t30s:(?:flagged|events)$/ } sort keys %$d;
    for (@mon) {
        cmp_ok($d->{$_}{pttl}, '>', 0, "$_ still has a TTL");
    }
};

logs_clean($_->[1], "node $_->[0]", errors => 1)
    for [a => $ngx], [b => $ngx2], [short => $short];

done_testing();
