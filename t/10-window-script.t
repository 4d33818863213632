#!/usr/bin/perl
# The Redis scripts against a real redis-server: src/dg_window.lua (the
# per-key sliding window) and src/dg_fanout.lua (distinct keys per
# template or network).  The window script's replies are decoded by the
# engine as the module does (src/dg_profile.c, through the test tool
# build/unit/window_client), so known sequences give known profiles; the
# window slides; every key has a TTL and is gone after the window; one
# key's memory stays under 2 KB after 1,000 requests.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use List::Util qw(sum);
use Time::HiRes qw(sleep time);
use File::Temp;

DG::Harness::watchdog(60);

my $ROOT = DG::Harness::root();
my $BUILD = $ENV{BUILD} || "$ROOT/build";
my $out = `make -s -C $ROOT test-tools BUILD=$BUILD 2>&1`;
die "make test-tools failed:\n$out" if $?;
my $redis = DG::Harness::Redis->start;

my @FIELDS = qw(requests sample topics topic_entropy templates top_template
                single_turn cot gap_mean_ms gap_cv bytes);
my @LIMITER = qw(state penalty_ms refused retry_ms remaining now_ms
                 verified fabricated prefix provenance scripted);
our $LIMITER_WANTED = 0;

sub lua { DG::Harness::slurp("$ROOT/src/$_[0]") }

# commands through the engine's decoder: one line of output per command
sub client {
    my $in = File::Temp->new;
    print $in "$_\n" for @_;
    close $in;
    my @out = split /\n/, `$BUILD/unit/window_client ${\ $redis->port} < $in`;
    die "window_client failed\n" if $?;
    return @out;
}

# a line of window_client's profile fields
sub fields {
    my ($line) = @_;
    my @v = split ' ', $line;
    die "window: unexpected reply: $line\n"
        if @v != @FIELDS + @LIMITER || grep { !/^-?\d+\z/ } @v;
    my %p;
    @p{@FIELDS, @LIMITER} = @v;
    return \%p;
}

my $WSHA = $redis->cli('SCRIPT', 'LOAD', lua('dg_window.lua'));
my $FSHA = $redis->cli('SCRIPT', 'LOAD', lua('dg_fanout.lua'));
like($WSHA, qr/^[0-9a-f]{40}\z/, 'window script loads') or diag($WSHA);
like($FSHA, qr/^[0-9a-f]{40}\z/, 'fan-out script loads') or diag($FSHA);

# window calls: each [key_id, window_ms, topic, head, tail, flags, bytes,
# now_ms or undef]; window_client packs them into the script's one
# argument; returns one hashref of the profile per call
sub window {
    my @lines = map {
        my ($id, @a) = @$_;
        pop @a unless defined $a[-1];
        join ' ', 'EVALSHA', $WSHA, 1, "dg:{$id}:w", @a;
    } @_;
    my @res;
    for my $line (client(@lines)) {
        # the profile, then the limiter's fields (tested on their own)
        my $p = fields($line);
        delete @$p{@LIMITER} unless $LIMITER_WANTED;
        push @res, $p;
    }
    return @res;
}

sub last_profile { (window(@_))[-1] }

# count mode: the distinct keys of each call (the reply's first element)
sub fanout {
    my ($tag, $bucket, $window, @ids) = @_;
    my @out = $redis->cli_pipe(map {
        "EVALSHA $FSHA 3 dg:{$tag}:$bucket dg:{$tag}:" . ($bucket + 1)
            . " dg:{$tag}:c$bucket $_ $window"
    } @ids);
    return @out[grep { $_ % 2 == 0 } 0 .. $#out];
}

# the conversation count of the last call of fanout() with these ids
sub fanout_conv {
    my ($tag, $bucket, $window, @ids) = @_;
    my @out = $redis->cli_pipe(map {
        "EVALSHA $FSHA 3 dg:{$tag}:$bucket dg:{$tag}:" . ($bucket + 1)
            . " dg:{$tag}:c$bucket $_ $window"
    } @ids);
    return $out[-1];
}

# conv mode: these keys held conversations opened with the tag
sub fanout_add_conv {
    my ($tag, $bucket, $window, @ids) = @_;
    return $redis->cli_pipe(map {
        "EVALSHA $FSHA 2 dg:{$tag}:c$bucket dg:{$tag}:c" . ($bucket + 1)
            . " $_ $window conv"
    } @ids);
}

sub keys_like { sort split /\n/, $redis->cli('KEYS', $_[0]) }

my $T0 = 1_700_000_000_000;        # a fixed clock for exact timings
my $W  = 60_000;


subtest 'ten requests, two templates, five topics' => sub {
    my @calls;
    for my $i (0 .. 9) {
        my $tmpl = $i % 2 ? 0xaaaa0001 : 0xbbbb0002;
        my $flags = ($i < 4 ? 1 : 0) | ($i >= 7 ? 2 : 0);
        push @calls, ['known1', $W, $i % 5, $tmpl, $tmpl + 1, $flags,
                      100 + $i, $T0 + 100 * $i];
    }
    my @p = window(@calls);
    is(scalar @p, 10, 'ten replies');
    is_deeply($p[0], { requests => 1, sample => 1, topics => 1,
        topic_entropy => 0, templates => 1, top_template => 1000,
        single_turn => 1000, cot => 0, gap_mean_ms => 0, gap_cv => 0,
        bytes => 100 }, 'first request');
    # no request claims a history (prior 0): all are one-shot, whatever
    # bit 0 of the flags says (provenance decides; see the provenance
    # subtest for the shares)
    is_deeply($p[9], { requests => 10, sample => 10, topics => 5,
        topic_entropy => 2322, templates => 2, top_template => 500,
        single_turn => 1000, cot => 300, gap_mean_ms => 100, gap_cv => 0,
        bytes => 1045 }, 'after ten') or diag(explain($p[9]));
    is_deeply([map { $_->{requests} } @p], [1 .. 10], 'requests count up');
};

subtest 'topic entropy and distinct topics' => sub {
    my @cases = (
        [[(7) x 8],                   1, 0],
        [[1, 2, 1, 2],                2, 1000],
        [[0 .. 3],                    4, 2000],
        [[map { $_ * 500 } 0 .. 7],   8, 3000],
        [[5, 5, 5, 9],                2, 811],
        [[0 .. 99],                 100, 6644],
    );
    my $n = 0;
    for my $c (@cases) {
        my ($topics, $distinct, $ent) = @$c;
        $n++;
        my $i = 0;
        my $p = last_profile(map {
            ["ent$n", $W, $_, 0, 0, 0, 10, $T0 + 10 * $i++]
        } @$topics);
        is($p->{topics}, $distinct, "case $n: $distinct distinct topics");
        is($p->{topic_entropy}, $ent, "case $n: entropy $ent milli-bits");
        is($p->{templates}, 0, "case $n: no template");
        is($p->{top_template}, 0, "case $n: no template share");
    }
};

subtest 'templates: heads, tails, either end' => sub {
    # heads only (the tail is free text): 3 heads, the top one 4 of 6
    my @h = (1, 1, 2, 1, 3, 1);
    my $i = 0;
    my $p = last_profile(map { ['tpl1', $W, 0, $_, 0, 0, 1, $T0 + $i++] } @h);
    is($p->{templates}, 3, 'heads only: 3 templates');
    is($p->{top_template}, 667, 'heads only: top share 4/6');

    # one fixed head, three different fixed tails: min(1, 3)
    $i = 0;
    $p = last_profile(map { ['tpl2', $W, 0, 77, $_, 0, 1, $T0 + $i++] }
                      (5, 6, 7, 5));
    is($p->{templates}, 1, 'one head, three tails: 1 template');
    is($p->{top_template}, 1000, 'the head is in every request');

    # half the requests have no template at all
    $i = 0;
    $p = last_profile(map { ['tpl3', $W, 0, $_, $_, 0, 1, $T0 + $i++] }
                      (9, 0, 9, 0, 8, 0, 0, 0));
    is($p->{templates}, 2, 'untemplated requests: 2 templates');
    is($p->{top_template}, 250, 'top share over all requests: 2/8');

    # every request a new template
    $i = 0;
    $p = last_profile(map { ['tpl4', $W, 0, 1000 + $_, 5000 + $_, 0, 1,
                             $T0 + $i++] } 1 .. 50);
    is($p->{templates}, 50, '50 different templates');
    is($p->{top_template}, 20, 'top share 1/50');

    # uint32 extremes survive
    $p = last_profile(['tpl5', $W, 4095, 4294967295, 4294967295, 3,
                       4294967295, $T0]);
    is($p->{templates}, 1, 'fingerprint 2^32-1');
    is($p->{bytes}, 4294967295, 'bytes 2^32-1');
    is($p->{cot}, 1000, 'cot flag');
    is($p->{single_turn}, 1000, 'single-turn flag');
};

subtest 'inter-arrival gaps' => sub {
    my @t = (0, 100, 400, 500, 800, 900, 1200);      # 100, 300, 100, ...
    my $p = last_profile(map { ['gap1', $W, 0, 0, 0, 0, 1, $T0 + $_] } @t);
    is($p->{gap_mean_ms}, 200, 'gap mean 200 ms');
    is($p->{gap_cv}, 500, 'gap cv 0.5');

    # a clock that steps back (failover) is held at the newest record
    $p = last_profile(['gap1', $W, 0, 0, 0, 0, 1, $T0 + 1000]);
    is($p->{gap_mean_ms}, 171, 'a step back counts as a zero gap');
    is($p->{sample}, 8, 'and the request is counted');

    # timestamps are kept mod 2^32: crossing a multiple changes nothing
    my $wrap = 4294967296 * 400 - 150;
    $p = last_profile(map { ['gap2', $W, 0, 0, 0, 0, 1, $wrap + 100 * $_] }
                      0 .. 4);
    is($p->{gap_mean_ms}, 100, 'gap mean across a 2^32 ms boundary');
    is($p->{gap_cv}, 0, 'regular gaps');
    is($p->{requests}, 5, 'all five in the window');
};

subtest 'the window slides (script clock)' => sub {
    my $w = 2000;
    my @p = window(
        (map { ['slide1', $w, $_, 0, 0, 0, 10, $T0 + 100 * $_] } 0 .. 4),
        ['slide1', $w, 9, 0, 0, 0, 20, $T0 + 1500],
        ['slide1', $w, 9, 0, 0, 0, 20, $T0 + 2350],    # 0 .. 3 out
        ['slide1', $w, 9, 0, 0, 0, 20, $T0 + 4400]);   # all others out
    is($p[5]{requests}, 6, 'six inside');
    is($p[6]{requests}, 3, 'four aged out');
    is($p[6]{sample}, 3, 'sample follows');
    is($p[6]{topics}, 2, 'their topics left');
    is($p[6]{bytes}, 50, 'their bytes left');
    is($p[6]{gap_mean_ms}, 975, 'gaps of the remaining ones only');
    is($p[7]{requests}, 1, 'one left after a quiet spell');
    is($p[7]{topic_entropy}, 0, 'entropy of one');

    # a request exactly one window old is out
    @p = window(['slide2', 1000, 1, 0, 0, 0, 1, $T0],
                ['slide2', 1000, 2, 0, 0, 0, 1, $T0 + 999],
                ['slide2', 1000, 3, 0, 0, 0, 1, $T0 + 1000]);
    is($p[1]{requests}, 2, '999 ms old: inside');
    is($p[2]{requests}, 2, '1000 ms old: outside');
};

subtest 'more requests than the ring holds' => sub {
    # one request every 30 ms for 90 s, window 60 s: 2,000 inside once
    # full; the ring keeps 128, the 16 sub-windows (3,750 ms, 125
    # requests each) count the rest
    my @p = window(map {
        ['big1', $W, $_ % 4096, 0, 0, 0, 10, $T0 + 30 * $_]
    } 0 .. 2999);
    my ($worst, $sum) = (0, 0);
    for my $i (0 .. $#p) {
        my $exact = $i < 2000 ? $i + 1 : 2000;
        my $err = abs($p[$i]{requests} - $exact);
        $worst = $err if $err > $worst;
        $sum += $err;
    }
    cmp_ok($worst, '<=', 125, "error within one sub-window (worst $worst)");
    cmp_ok($sum / @p, '<', 1, 'and below one request on average');
    is_deeply([map { $_->{requests} } @p[0 .. 127]], [1 .. 128],
              'exact while the ring holds the whole window');
    is($p[127]{bytes}, 1280, 'bytes too');
    is($p[-1]{sample}, 128, 'statistics over the last 128');
    is($p[-1]{topics}, 128, '128 distinct topics in the sample');
    is($p[-1]{topic_entropy}, 7000, 'entropy log2(128)');
    is($p[-1]{gap_mean_ms}, 30, 'gap mean');
    cmp_ok(abs($p[-1]{bytes} - 10 * $p[-1]{requests}), '<=', 10,
           'bytes follow the same estimate');
};

subtest 'bursts and idle sub-windows' => sub {
    # bursts of 40 requests 10 ms apart, after 0 to 20 idle sub-windows
    # (3,750 ms each): sub-windows start, close and are emptied in every
    # pattern; beyond the ring the count may miss only the requests of
    # the sub-window holding the window's start
    srand(7);
    my ($t, @times) = ($T0);
    for my $burst (1 .. 60) {
        $t += int(rand(21)) * 3750 + int(rand(3750));
        push @times, map { $t + 10 * $_ } 0 .. 39;
        $t = $times[-1];
    }
    my @p = window(map { ['burst1', $W, 1, 0, 0, 0, 10, $_] } @times);
    my @bad;
    for my $i (0 .. $#times) {
        my $now = $times[$i];
        my $exact = grep { $_ > $now - $W } @times[0 .. $i];
        my $sw = int(($now - $W) / 3750);
        my $slack = grep { int($_ / 3750) == $sw } @times[0 .. $i];
        push @bad, "request $i: $p[$i]{requests} for $exact (slack $slack)"
            if abs($p[$i]{requests} - $exact) > $slack
               || ($exact <= 128 && $p[$i]{requests} != $exact);
    }
    is_deeply(\@bad, [], 'counts exact within the ring, else within the '
              . 'start\'s sub-window, over ' . @times . ' requests');
};

subtest 'the pending log: folded by the script and by the gateway alike' => sub {
    # the same requests made by the script one by one (keys fa, fc), and
    # by the script for the first and the last with the others appended
    # to the log between (fb, fd): the values must be the same bytes, and
    # the gateway's fold of the log (window_client FOLD) the same again.
    # Gaps of 0 to 20 sub-windows (3,750 ms), a record of the log older
    # than the window's newest (a gateway clock behind); one-shot
    # requests, follow-ups of a conversation of this key (verified; some
    # a message sent before in another: scripted), made-up histories on
    # a few openings (fabricated, then prefix).  The last request claims
    # a turn of request 10 (pushed out of the ring: fabricated) or 140
    # (verified)
    srand(11);
    my ($t, @req) = ($T0);
    for my $i (1 .. 150) {
        $t += int(rand(3)) ? int(rand(500)) : int(rand(21)) * 3750;
        # t head tail cot long bytes sent prior opening topic topic_last
        my %r = (t => $t, head => int(rand(4096)), tail => int(rand(4096)),
                 cot => int(rand(2)), long => int(rand(2)),
                 bytes => 100 + int(rand(5000)), sent => 1000 + $i,
                 prior => 0, opening => 1000 + $i,
                 topic => $i * 7 % 4096, topic_last => $i * 13 % 4096);
        if ($i % 6 == 0 && $i > 2) {
            my $j = $req[$i - 3];
            @r{qw(prior opening)} = ($j->{sent}, $j->{opening});
            $r{sent} = 1000 + $i - 6 if $i % 4 == 0;   # said before
        } elsif ($i % 6 == 3) {
            @r{qw(prior opening)} = (60000 + $i, 50000 + $i % 4);
        }
        push @req, \%r;
    }
    $req[70]{t} -= 5000;
    my $args = sub {
        my ($id, $r, $prior) = @_;
        my %r = (%$r, defined $prior ? (prior => $prior, opening => $prior)
                                     : ());
        my $flags = ($r{prior} ? 0 : 1) + 2 * $r{cot} + 4 * $r{long};
        # window topic head tail flags bytes now throttle rate burst
        # shadow topic_last sent prior opening
        return [$id, $W, @r{qw(topic head tail)}, $flags, @r{qw(bytes t)},
                0, 0, 0, 0, @r{qw(topic_last sent prior opening)}];
    };
    my $rec = sub {
        my ($r) = @_;
        # now u48, topic u16 (bit 12 cot, bit 13 a message), topic_last,
        # head and tail u24, sent, prior, opening, bytes u40
        return substr(pack('Q<', $r->{t}), 0, 6)
            . pack('vv', $r->{topic} + 4096 * $r->{cot} + 8192 * $r->{long},
                   $r->{topic_last})
            . substr(pack('V', $r->{head} + $r->{tail} * 4096), 0, 3)
            . pack('vvv', @$r{qw(sent prior opening)})
            . substr(pack('Q<', $r->{bytes}), 0, 5);
    };
    # binary values through redis-cli: in hex, made and read by Lua
    my $hex = sub {
        $redis->cli('EVAL', "return (string.gsub(redis.call('GET', KEYS[1])"
            . " or '', '.', function(c) return string.format('%02x',"
            . " c:byte()) end))", 1, $_[0]);
    };
    my $append = sub {
        $redis->cli('EVAL', "return redis.call('APPEND', KEYS[1],"
            . " (string.gsub(ARGV[1], '..', function(h) return"
            . " string.char(tonumber(h, 16)) end)))", 1, $_[0],
            unpack('H*', $_[1]));
    };
    # with the four keys the module sends: the log is KEYS[3]
    my $call4 = sub {
        my ($id, $r, $prior) = @_;
        my (undef, @a) = @{ $args->($id, $r, $prior) };
        return fields(client(join ' ', 'EVALSHA', $WSHA, 4,
                             map({ "dg:{$id}:$_" } qw(w s p t)), @a));
    };

    my $last = pop @req;
    my %seen;
    for my $case (['fa', 'fb', $req[9]{sent}, 2, 'fabricated'],
                  ['fc', 'fd', $req[139]{sent}, 1, 'verified'])
    {
        my ($one, $log, $prior, $prov, $name) = @$case;
        my @p = do {
            local $LIMITER_WANTED = 1;
            window(map { $args->($one, $_) } @req);
        };
        $seen{$_->{provenance}}++ for @p;
        window($args->($log, $req[0]));
        $append->("dg:{$log}:p", $rec->($_)) for @req[1 .. $#req];
        my ($c) = client("FOLD dg:{$log}:w dg:{$log}:p $W");
        is($c, $hex->("dg:{$one}:w"), "$log: the gateway's fold of "
           . $#req . ' records gives the value the script made of them');

        # the gateway's fold written back (the window script's commit):
        # as is; after a change of state (nothing written); with a
        # request appended since the read (it stays in the log)
        my %made;
        for my $how ('', 'touch', unpack('H*', $rec->($last))) {
            my $id = $log . ($how eq '' ? 'c' : $how eq 'touch' ? 's'
                                                                : 'a');
            window($args->($id, $req[0]));
            $append->("dg:{$id}:p", $rec->($_)) for @req[1 .. $#req];
            my $before = $hex->("dg:{$id}:w");
            my ($got) = client(join ' ', 'COMMIT', "dg:{$id}:w",
                               "dg:{$id}:p", $W, $WSHA, $how);
            $made{$id} = [$got, $hex->("dg:{$id}:w"),
                          $redis->cli('STRLEN', "dg:{$id}:p"),
                          $redis->cli('PTTL', "dg:{$id}:w"), $before];
        }
        # five records at a time: runs of the ring that wrap, sub-windows
        # started or not
        my $id = $log . 'r';
        window($args->($id, $req[0]));
        my @ok;
        for (my $i = 1; $i <= $#req; $i += 5) {
            my $j = $i + 4 < $#req ? $i + 4 : $#req;
            $append->("dg:{$id}:p", $rec->($_)) for @req[$i .. $j];
            push @ok, client(join ' ', 'COMMIT', "dg:{$id}:w", "dg:{$id}:p",
                             $W, $WSHA);
        }
        is_deeply([grep { $_ ne '1' } @ok], [],
                  "$log: " . @ok . ' commits of five records written');
        is($hex->("dg:{$id}:w"), $hex->("dg:{$one}:w"),
           "$log: five at a time, the script's value again");
        my ($as, $st, $ap) = @made{map { $log . $_ } qw(c s a)};
        is($as->[0], 1, "$log: the commit is written");
        is($as->[1], $hex->("dg:{$one}:w"),
           "$log: the committed value is the script's");
        is($as->[2], 0, "$log: the committed log is gone");
        ok($as->[3] > 0 && $as->[3] <= $W + $W / 16,
           "$log: the window's TTL is renewed ($as->[3] ms)");
        is($st->[0], 0, "$log: after a change of state the commit is not "
           . 'written');
        my $touched = $st->[4];
        substr($touched, 26, 2) = '0a';
        is($st->[1], $touched, "$log: the window as the change of state "
           . 'left it');
        is($st->[2], 24 * $#req, "$log: the log stays for the next fold");
        is($ap->[0], 1, "$log: with a request appended since, written");
        is($ap->[1], $hex->("dg:{$one}:w"),
           "$log: the same value");
        is($ap->[2], 24, "$log: the request appended since stays in the "
           . 'log');
        @p = map { $call4->($_, $last, $prior) } $one, $log;
        is($p[0]{provenance}, $prov, "$one: the prior turn is $name");
        is($p[1]{provenance}, $prov, "$log: the same after the log");
        is($hex->("dg:{$log}:w"), $hex->("dg:{$one}:w"),
           "$log: the script's fold and its own record: the same value");
        is($redis->cli('EXISTS', "dg:{$log}:p"), 0, "$log: the log is gone");
    }
    is_deeply([sort keys %seen], [0, 1, 2, 3],
              'the requests had every provenance')
        or diag(explain(\%seen));
};

subtest 'real clock: TIME, sliding, TTLs, expiry' => sub {
    my $w = 1000;
    $redis->cli('FLUSHALL');
    my @p = window(map { ['rt1', $w, $_, 11, 22, 1, 5, undef] } 1 .. 5);
    is($p[4]{requests}, 5, 'five requests on the Redis clock');
    my $ttl = $redis->cli('PTTL', 'dg:{rt1}:w');
    # set when a sub-window starts: a window and a sub-window (w / 16)
    ok($ttl > 0 && $ttl <= $w + $w / 16,
       "window key TTL $ttl ms <= a window and a sub-window");
    sleep 0.6;
    my $p = last_profile(['rt1', $w, 6, 11, 22, 1, 5, undef]);
    is($p->{requests}, 6, 'still six after 0.6 s');
    cmp_ok($p->{gap_mean_ms}, '>=', 100, 'the pause shows in the gaps');
    sleep 0.6;
    $p = last_profile(['rt1', $w, 7, 11, 22, 1, 5, undef]);
    is($p->{requests}, 2, 'the first five aged out after 1.2 s');

    my $b = int(time * 1000 / $w);
    my @f = fanout('h:0000abcd', $b, $w, 'rt1');
    is($f[0], 1, 'fan-out counts one key');

    my @keys = keys_like('dg:*');
    is_deeply(\@keys, ['dg:{h:0000abcd}:' . $b, 'dg:{h:0000abcd}:' . ($b + 1),
                       'dg:{rt1}:w'], 'the keys of one request')
        or diag(explain(\@keys));
    for my $k (@keys) {
        my $t = $redis->cli('PTTL', $k);
        ok($t > 0 && $t <= 2 * $w, "$k has a TTL ($t ms)");
    }

    sleep 1.1;
    is_deeply([keys_like('dg:{rt1}:*')], [], 'window key gone after window');
    sleep 1.0;
    is_deeply([keys_like('dg:*')], [], 'nothing left after two windows');
};

subtest 'fan-out counts distinct keys over two buckets' => sub {
    my $w = 60_000;
    my $b = 28_333_333;
    my @r = fanout('t:12345678', $b, $w, map { "key$_" } 1 .. 20, 1 .. 20);
    is($r[19], 20, '20 keys');
    is($r[-1], 20, 'repeats do not count');
    @r = fanout('t:12345678', $b + 1, $w, map { "key$_" } 15 .. 24);
    is($r[-1], 24, 'next bucket: the previous one still counts');
    @r = fanout('t:12345678', $b + 2, $w, 'key30');
    is($r[-1], 11, 'two buckets on: the previous bucket and this one');
    @r = fanout('n:192.0.2', $b, $w, 'key1');
    is($r[0], 1, 'another tag counts apart');

    is(fanout_conv('t:12345678', $b + 2, $w, 'key31'), 0,
       'no conversations yet');
    fanout_add_conv('t:12345678', $b + 2, $w, 'key31', 'key32', 'key31');
    is(fanout_conv('t:12345678', $b + 2, $w, 'key33'), 2,
       'two keys held conversations opened with the tag');
    fanout_add_conv('t:12345678', $b + 1, $w, 'key34');
    is(fanout_conv('t:12345678', $b + 2, $w, 'key33'), 3,
       'the previous bucket counts too');

    # add mode: the key is added, nothing counted (a gateway holding a
    # recent count)
    is(($redis->cli_pipe("EVALSHA $FSHA 3 dg:{t:abcdef01}:$b"
        . " dg:{t:abcdef01}:" . ($b + 1) . " dg:{t:abcdef01}:c$b"
        . " key40 $w add"))[0], 0, 'add mode answers 0');
    @r = fanout('t:abcdef01', $b, $w, 'key41');
    is($r[-1], 2, 'and the key is counted');

    my @n = fanout('n:10.0.0', $b, $w, map { sprintf 'k%05d', $_ } 1 .. 1000);
    cmp_ok(abs($n[-1] - 1000), '<=', 30, "1000 keys: $n[-1]");

    for my $k (keys_like('dg:{t:12345678}:*')) {
        my $t = $redis->cli('PTTL', $k);
        ok($t > 0 && $t <= 2 * $w, "$k has a TTL");
    }
};

subtest 'memory of one key after 1,000 requests' => sub {
    # the value (1,705 bytes) sits in jemalloc's 1,792-byte class
    srand(7);
    my @calls = map {
        ['mem1', $W, int(rand 4096), 1 + int(rand 4294967295),
         1 + int(rand 4294967295), int(rand 4), int(rand 20000), undef]
    } 1 .. 1000;
    my @p = window(@calls);
    is($p[-1]{requests}, 1000, '1000 requests in the window');
    cmp_ok($p[-1]{topics}, '>=', 120, 'random topics');
    # 12-bit templates: a few of 128 random ones share a value
    cmp_ok($p[-1]{templates}, '>=', 120, 'every request its own template');

    my @keys = keys_like('*{mem1}*');
    is(scalar @keys, 1, 'one Redis key per API key');
    my $bytes = sum(map { $redis->cli('MEMORY', 'USAGE', $_) } @keys);
    cmp_ok($bytes, q{<=}, 1900, "MEMORY USAGE $bytes bytes <= 1900");
    like($_, qr/^dg:\{mem1\}:/, "$_ carries the hash tag {mem1}") for @keys;
};

subtest 'bad input and old state' => sub {
    my ($out) = client("EVALSHA $WSHA 1 dg:{bad}:w 0 1 0 0 0 1");
    like($out, qr/bad window_ms/, 'window_ms 0 is an error');
    ($out) = client("EVALSHA $WSHA 1 dg:{bad}:w 2147483648 1 0 0 0 1");
    like($out, qr/bad window_ms/, 'window_ms 2^31 is an error');
    $out = $redis->cli('EVALSHA', $WSHA, 1, 'dg:{bad}:w', 60000, 1, 0, 0,
                       0, 1);
    like($out, qr/bad arguments/, 'unpacked arguments are an error');
    $out = $redis->cli('EVALSHA', $FSHA, 2, 'dg:{n:x}:1', 'dg:{n:x}:2',
                       'k', 0);
    like($out, qr/bad window_ms/, 'fan-out window_ms 0 is an error');

    # a value of another layout (an older version) starts afresh
    $redis->cli('SET', 'dg:{old}:w', 'something else');
    my $p = last_profile(['old', $W, 1, 0, 0, 0, 7, undef]);
    is($p->{requests}, 1, 'unknown state is replaced');
    is($redis->cli('STRLEN', 'dg:{old}:w'), 32 + 9 + 16 * 9 + 128 * 12,
       'with the fixed-size state');

    # a new window length changes the units of the value: afresh
    $p = last_profile(['old', 2 * $W, 1, 0, 0, 0, 7, undef]);
    is($p->{requests}, 1, 'window change starts afresh');
    $p = last_profile(['old', 2 * $W, 1, 0, 0, 0, 7, undef]);
    is($p->{requests}, 2, 'and counts on');
};

subtest 'provenance: verified, fabricated and repeated histories' => sub {
    # [topic, topic_last, flags, sent, prior, opening]: ARGV 2, 12, 5,
    # 13, 14, 15
    my @req = (
        [5, 5,  1, 111, 0,   111],      # one-shot
        [5, 50, 0, 222, 111, 111],      # continues request 1: verified
        [7, 60, 0, 333, 999, 7001],     # a history never sent: fabricated
        [8, 61, 0, 444, 888, 7002],     # fabricated
        [9, 62, 0, 555, 888, 7002],     # the same preamble again: prefix
        # continues request 5 with the message request 2 sent in another
        # conversation (flags bit 2: a message): a scripted follow-up
        [9, 63, 4, 222, 555, 7002],
        # a message sent in two conversations, claimed in a third one
        [4, 64, 0, 777, 222, 7003],
        # a trimmed conversation: its opening is gone, but the prior was
        # sent once, in request 3
        [7, 65, 0, 778, 333, 7009],
    );
    my $i = 0;
    my @p = map { fields($_) } client(map {
        my ($topic, $last, $flags, $sent, $prior, $open) = @$_;
        join ' ', 'EVALSHA', $WSHA, 2, 'dg:{prov1}:w', 'dg:{prov1}:s', $W,
            $topic, 0, 0, $flags, 10, $T0 + 1000 * $i++, 0, 0, 0, 0, $last,
            $sent, $prior, $open;
    } @req);
    is_deeply([map { $_->{provenance} } @p], [0, 1, 2, 2, 3, 1, 2, 1],
              'none, verified, fabricated, fabricated, prefix, verified, '
              . 'fabricated, verified');
    is($p[4]{scripted}, 0, 'no scripted follow-up yet');
    is($p[5]{scripted}, 167, 'a message resent in another conversation');
    my $q = $p[4];
    is($q->{verified}, 200, 'verified share');
    is($q->{fabricated}, 400, 'fabricated share');
    is($q->{prefix}, 200, 'prefix share');
    is($q->{single_turn}, 600, 'one-shot: no history or a fabricated one');
    is($q->{topics}, 4, 'first-turn topic when verified or fabricated, '
       . 'the last turn\'s otherwise');
};

subtest 'limiter: plain rate and the throttle of a penalised key' => sub {
    # four keys: the window, the state hash, the pending log and the
    # throttle; ARGV 7 is the clock
    my $call = sub {
        my ($id, $now, $throttle, $rate, $burst) = @_;
        return fields(client(join ' ', 'EVALSHA', $WSHA, 4, "dg:{$id}:w",
            "dg:{$id}:s", "dg:{$id}:p", "dg:{$id}:t", $W, 1, 0, 0, 1, 10,
            $now, $throttle, $rate, $burst, 0));
    };

    # 2 r/s with a burst of 1: two at once pass, the third waits 500 ms
    my @r = map { $call->('rate1', $T0, 0, 500, 1) } 1 .. 3;
    is_deeply([map { $_->{refused} } @r], [0, 0, 2], 'rate: third refused');
    is($r[2]{retry_ms}, 500, 'rate: retry after one period');
    is($r[0]{remaining}, 1, 'rate: one left in the burst');
    is($r[2]{now_ms}, $T0, 'the clock is returned');
    is($r[2]{requests}, 3, 'a refused request still counts in the window');
    my $p = $call->('rate1', $T0 + 500, 0, 500, 1);
    is($p->{refused}, 0, 'rate: passes again after the period');

    # a penalised key: one request per 10 s
    $redis->cli('HSET', 'dg:{thr1}:s', 'st', 2, 'pu', $T0 + 60_000);
    @r = map { $call->('thr1', $T0 + $_, 10_000, 0, 0) } 0, 100, 9_999;
    is_deeply([map { $_->{refused} } @r], [0, 1, 1], 'throttle: one passes');
    is($r[1]{retry_ms}, 9_900, 'throttle: retry when the next one passes');
    is($r[0]{state}, 2, 'the state is returned');
    is($r[0]{penalty_ms}, 60_000, 'the penalty left is returned');
    $p = $call->('thr1', $T0 + 10_000, 10_000, 0, 0);
    is($p->{refused}, 0, 'throttle: the next period passes');
    $p = $call->('thr1', $T0 + 60_001, 10_000, 0, 0);
    is($p->{penalty_ms}, 0, 'no penalty once it ends');
    is($p->{refused}, 0, 'and nothing refused');
    is($redis->cli('HGET', 'dg:{thr1}:s', 'tt'), '',
       'the throttle\'s time is not in the hash');
    is($redis->cli('GET', 'dg:{thr1}:t'), $T0 + 20_000,
       'but in the throttle key: the end of the last period started');
    ok($redis->cli('PTTL', 'dg:{thr1}:t') > 0, 'which has a TTL');
    ok($redis->cli('PTTL', 'dg:{thr1}:w') > 0, 'the window has a TTL');

    # no limit: no state hash written
    $call->('free1', $T0, 0, 0, 0);
    is($redis->cli('EXISTS', 'dg:{free1}:s'), 0, 'no limiter, no hash');

    # the state is read from the window's header (offset 13: the state
    # byte, pu, tt, rt), where the module writes it with the hash; the
    # hash is read for a new window only
    $redis->cli('HSET', 'dg:{free1}:s', 'st', 2, 'pu', $T0 + 60_000);
    $p = $call->('free1', $T0 + 1, 10_000, 0, 0);
    is($p->{state}, 0, 'a hash the header does not hold is not read');
    $redis->cli('SETRANGE', 'dg:{free1}:w', 13,
                pack('C', 8 + 2 * 2) . substr(pack('Q<', $T0 + 60_000), 0, 6));
    $p = $call->('free1', $T0 + 2, 10_000, 0, 0);
    is($p->{state}, 2, 'the header\'s state is the one');
    is($p->{penalty_ms}, 59_998, 'with its penalty');
    $p = $call->('free1', $T0 + 3, 10_000, 0, 0);
    is($p->{refused}, 1, 'and its throttle');
    $redis->cli('DEL', 'dg:{free1}:w');
    $p = $call->('free1', $T0 + 4, 10_000, 0, 0);
    is($p->{state}, 2, 'a new window reads the hash');
    is($p->{penalty_ms}, 59_996, 'and the penalty');
    is(unpack('C', substr($redis->cli('GETRANGE', 'dg:{free1}:w', 13, 13),
                          0, 1)), 12, 'into the header');
};

done_testing();
