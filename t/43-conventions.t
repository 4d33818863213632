#!/usr/bin/perl
# nginx conventions: the fallback limiter's zone is sized by
# distill_guard_zone and says so in the log when it is full;
# distill_guard_log_level sets the level of refusals and state changes.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use DG::Util qw(chat blast key_id logs_clean);

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();

DG::Harness::watchdog(90);

my $SECRET = 't43-secret';
my $up = DG::Harness::Upstream->start;

# Without Redis every key of a location with distill_guard_rate takes a
# node in the zone: 8 pages (the smallest zone) hold a few hundred.
my $ngx = DG::Harness::Nginx->start(upstream => $up, log_level => 'info',
    http => <<"EOF");
distill_guard_secret "$SECRET";
distill_guard_zone 32k;
server {
    listen 127.0.0.1:%%PORT%%;
    location /rate/ {
        distill_guard on;
        distill_guard_rate 1r/m burst=0;
        proxy_pass http://%%UPSTREAM%%;
    }
    location /warn/ {
        distill_guard on;
        distill_guard_rate 1r/m burst=0;
        distill_guard_log_level warn;
        proxy_pass http://%%UPSTREAM%%;
    }
    location /shadow/ {
        distill_guard on;
        distill_guard_mode shadow;
        distill_guard_rate 1r/m burst=0;
        distill_guard_log_level error;
        proxy_pass http://%%UPSTREAM%%;
    }
    location = /dg-stats {
        distill_guard_stats;
    }
}
EOF

sub post_key {
    my ($path, $key) = @_;
    return $ngx->request(POST => $path, { headers => {
        Authorization => "Bearer $key" }, content => chat('hello') });
}

subtest 'distill_guard_log_level: refusals at the level set' => sub {
    my $mark = $ngx->mark;
    is(post_key('/warn/x', 'sk-t43-warn')->{status}, 200, 'first: 200');
    is(post_key('/warn/x', 'sk-t43-warn')->{status}, 429,
        'second within the minute: 429');
    my $id = key_id('sk-t43-warn', $SECRET);
    my $log = $ngx->error_log_since($mark);
    like($log, qr/\[warn\][^\n]*distill_guard: refusing key $id by distill_guard_rate/,
        'one [warn] line names the key and the limit') or diag($log);
    my @n = $log =~ /refusing key $id/g;
    is(scalar @n, 1, 'logged once for the one refusal');

    $mark = $ngx->mark;
    is(post_key('/rate/x', 'sk-t43-notice')->{status}, 200, 'first: 200');
    is(post_key('/rate/x', 'sk-t43-notice')->{status}, 429, 'second: 429');
    $id = key_id('sk-t43-notice', $SECRET);
    like($ngx->error_log_since($mark),
        qr/\[notice\][^\n]*refusing key $id/, 'default level: [notice]');

    $mark = $ngx->mark;
    is(post_key('/shadow/x', 'sk-t43-shadow')->{status}, 200, 'shadow: 200');
    is(post_key('/shadow/x', 'sk-t43-shadow')->{status}, 200,
        'shadow: the second passes too');
    $id = key_id('sk-t43-shadow', $SECRET);
    like($ngx->error_log_since($mark),
        qr/\[error\][^\n]*would refuse \(shadow\) key $id/,
        'shadow: [error] "would refuse"');
};

subtest 'distill_guard_zone: a full zone evicts and says so' => sub {
    my $mark = $ngx->mark;
    my $before = $ngx->get_json('/dg-stats') || {};
    is($before->{limit_evicted}, 0, 'limit_evicted 0 at first');
    my @res = blast($ngx->port, 10, 60, sub {
        my ($c, $i) = @_;
        return ['/rate/x', "sk-t43-fill-$c-$i", chat('hello')];
    });
    is(scalar(grep { $_->{status} == 200 } @res), 600,
        '600 keys, one request each: all 200');
    my $st = $ngx->get_json('/dg-stats') || {};
    cmp_ok($st->{limit_evicted} // 0, '>', 0,
        'limit_evicted ' . ($st->{limit_evicted} // 0)
        . ': keys were evicted');
    my $log = $ngx->error_log_since($mark);
    my @full = $log =~ /(\[warn\][^\n]*zone "distill_guard" of 32K is full[^\n]*raise "distill_guard_zone")/g;
    is(scalar @full, 1, 'one [warn] line, naming the zone, its size and '
        . 'the directive') or diag($log);

    # a larger zone holds them all
    my $big = DG::Harness::Nginx->start(upstream => $up, http => <<"EOF");
distill_guard_secret "$SECRET";
distill_guard_zone 1m;
server {
    listen 127.0.0.1:%%PORT%%;
    location /rate/ {
        distill_guard on;
        distill_guard_rate 1r/m burst=0;
        proxy_pass http://%%UPSTREAM%%;
    }
    location = /dg-stats {
        distill_guard_stats;
    }
}
EOF
    blast($big->port, 10, 60, sub {
        my ($c, $i) = @_;
        return ['/rate/x', "sk-t43-fill-$c-$i", chat('hello')];
    });
    is(($big->get_json('/dg-stats') || {})->{limit_evicted}, 0,
        'distill_guard_zone 1m: no eviction for 600 keys');
    unlike($big->error_log, qr/is full/, 'and no "full" line');
    $big->stop;
};

subtest 'conf-examples/json-log.conf: every line is a JSON object' => sub {
    my $j = DG::Harness::Nginx->start(upstream => $up, http => <<"EOF");
distill_guard_secret "$SECRET";
include %%ROOT%%/conf-examples/json-log.conf;
server {
    listen 127.0.0.1:%%PORT%%;
    access_log %%DIR%%/json.log distill_guard_json;
    location /v1/ {
        distill_guard on;
        proxy_pass http://%%UPSTREAM%%;
    }
}
EOF
    my $body = chat("Say \"hi\"\\ step by step\n\x01");
    is($j->request(POST => '/v1/x', { headers => {
        Authorization => 'Bearer sk-t43-json' }, content => $body })
        ->{status}, 200, 'a guarded request: 200');
    is($j->request(POST => '/v1/x', { content => 'no key' })->{status}, 200,
        'no key: 200');
    $j->stop;
    my @l = grep { length } split /\n/,
        DG::Harness::slurp($j->dir . '/json.log');
    is(scalar @l, 2, 'two lines');
    my @o = map { DG::Harness::json_decode($_) } @l;
    ok(ref $o[0] eq 'HASH' && ref $o[1] eq 'HASH', 'both decode as JSON')
        or return diag(join "\n", @l);
    is($o[0]{key_id}, key_id('sk-t43-json', $SECRET), 'key_id');
    is($o[0]{action}, 'pass', 'action pass');
    is($o[0]{status}, 200, 'status a number');
    like($o[0]{score}, qr/^\d\.\d{3}$/, 'score');
    my $f = DG::Harness::json_decode($o[0]{features} // '');
    is(ref $f, 'HASH', 'features: a JSON object inside the string');
    cmp_ok($f->{cot} // 0, '>=', 1, 'features.cot counted "step by step"');
    is($o[1]{action}, 'skip', 'no key: action skip');
    is($o[1]{score}, '0.000', 'no key: score "0.000"');
    is($o[1]{features}, '', 'no key: features ""');
};

done_testing();
