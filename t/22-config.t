#!/usr/bin/perl
# `nginx -t` refuses bad distill_guard configurations with a message that
# names the directive or the bad value, and accepts good ones.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();

DG::Harness::watchdog(60);

# A server with one guarded location; %s is replaced by extra directives
# at [http], [server] and [location] level.
sub conf {
    my (%at) = @_;
    my $http = $at{http} // 'distill_guard_secret "t22-secret";';
    my $server = $at{server} // '';
    my $location = $at{location} // 'distill_guard on;';
    return <<"EOF";
$http
server {
    listen 127.0.0.1:%%PORT%%;
    $server
    location /v1/ {
        $location
        proxy_pass http://127.0.0.1:9;
    }
    location = /dg-stats {
        distill_guard_stats;
    }
}
EOF
}

# Without this, every "refused" case would pass on a module that does not
# even load.
my ($loads, $why) = DG::Harness::nginx_test(http => 'server { listen '
    . '127.0.0.1:%%PORT%%; location / { distill_guard off; } }');
ok($loads, 'the module loads (nginx -t of a minimal configuration)')
    or do { diag($why); done_testing(); exit };

sub refused {
    my ($name, $http, $want) = @_;
    my ($ok, $out) = DG::Harness::nginx_test(http => $http);
    ok(!$ok, "$name: nginx -t fails");
    unlike($out, qr/dlopen|unknown directive "distill_guard/,
        "$name: fails for the bad value, not for the module") or diag($out);
    like($out, qr/\[emerg\][^\n]*$want/, "$name: the message names it")
        or diag($out);
}

sub accepted {
    my ($name, $http) = @_;
    my ($ok, $out) = DG::Harness::nginx_test(http => $http);
    ok($ok, "$name: nginx -t passes") or diag($out);
    unlike($out, qr/\[(?:emerg|alert|crit|error)\]/,
        "$name: no error message") or diag($out);
}

refused('distill_guard maybe',
    conf(location => 'distill_guard maybe;'), qr/"maybe"/);

# the gateway's own path to the window (on by default) can be turned off
accepted('distill_guard_redis native=off',
    conf(http => 'distill_guard_secret "t22-secret"; '
         . 'distill_guard_redis 127.0.0.1:1 native=off;'));
refused('distill_guard_redis native=maybe',
    conf(http => 'distill_guard_secret "t22-secret"; '
         . 'distill_guard_redis 127.0.0.1:1 native=maybe;'),
    qr/native=maybe/);

refused('distill_guard on without a secret',
    conf(http => ''), qr/distill_guard_secret/);

refused('distill_guard on at server level without a secret',
    conf(http => '', server => 'distill_guard on;', location => ''),
    qr/distill_guard_secret/);

refused('distill_guard_body_max abc',
    conf(http => 'distill_guard_secret "s"; distill_guard_body_max abc;'),
    qr/"?abc"?/);

refused('distill_guard_body_max 0',
    conf(http => 'distill_guard_secret "s"; distill_guard_body_max 0;'),
    qr/"0"/);

refused('distill_guard_body_max 32m (over the 16m limit)',
    conf(http => 'distill_guard_secret "s"; distill_guard_body_max 32m;'),
    qr/"32m"/);

refused('distill_guard_cot_pattern "(" (bad regex)',
    conf(http => 'distill_guard_secret "s"; distill_guard_cot_pattern "(";'),
    qr/["']\(["']/);

refused('distill_guard_cot_pattern: a PCRE-only construct is compiled',
    conf(http => 'distill_guard_secret "s"; '
        . 'distill_guard_cot_pattern "(?<=a";'),
    qr/"\(\?<=a" in "distill_guard_cot_pattern"/);

# fixed-point values go through ngx_atofp: too many decimals is an error
refused('distill_guard_tag_threshold 0.5555 (four decimals)',
    conf(http => 'distill_guard_secret "s"; '
        . 'distill_guard_tag_threshold 0.5555;'), qr/"0\.5555"/);

refused('distill_guard_weight cot 1.0001 (four decimals)',
    conf(http => 'distill_guard_secret "s"; '
        . 'distill_guard_weight cot 1.0001;'), qr/"1\.0001"/);

refused('distill_guard_throttle_threshold 1.5 (over 1)',
    conf(http => 'distill_guard_secret "s"; '
        . 'distill_guard_throttle_threshold 1.5;'), qr/"1\.5"/);

refused('distill_guard_zone abc',
    conf(http => 'distill_guard_secret "s"; distill_guard_zone abc;'),
    qr/"abc" in "distill_guard_zone"/);

refused('distill_guard_zone 4k (too small)',
    conf(http => 'distill_guard_secret "s"; distill_guard_zone 4k;'),
    qr/"4k" in "distill_guard_zone" is too small/);

refused('distill_guard_zone in a location',
    conf(location => 'distill_guard on; distill_guard_zone 1m;'),
    qr/"distill_guard_zone" directive is not allowed here/);

refused('distill_guard_log_level loud',
    conf(location => 'distill_guard on; distill_guard_log_level loud;'),
    qr/"loud"/);

refused('distill_guard_secret in a location',
    conf(location => 'distill_guard on; distill_guard_secret "s";'),
    qr/"distill_guard_secret" directive is not allowed here/);

refused('distill_guard_stats with an argument',
    conf(server => 'location = /s2 { distill_guard_stats on; }'),
    qr/distill_guard_stats/);

refused('distill_guard without an argument',
    conf(location => 'distill_guard;'), qr/distill_guard/);

accepted('a good configuration', <<'EOF');
distill_guard_secret "t22-secret";
distill_guard_body_max 16k;
distill_guard_cot_pattern "show (all )?your (work|reasoning)";
distill_guard_cot_pattern "^think:";
distill_guard on;
server {
    listen 127.0.0.1:%%PORT%%;
    distill_guard_key $http_x_api_key;
    location /v1/ {
        distill_guard on;
        distill_guard_key $http_authorization;
        proxy_pass http://127.0.0.1:9;
    }
    location /health {
        distill_guard off;
        proxy_pass http://127.0.0.1:9;
    }
    location = /dg-stats {
        distill_guard off;
        distill_guard_stats;
    }
}
EOF

accepted('distill_guard off everywhere needs no secret', <<'EOF');
server {
    listen 127.0.0.1:%%PORT%%;
    location / {
        distill_guard off;
        proxy_pass http://127.0.0.1:9;
    }
}
EOF

accepted('distill_guard_key with a complex value',
    conf(location => 'distill_guard on; '
        . 'distill_guard_key "$http_x_tenant:$http_x_api_key";'));

accepted('distill_guard_cot_pattern: PCRE syntax (a lookbehind)',
    conf(http => 'distill_guard_secret "s"; '
        . 'distill_guard_cot_pattern "(?<!no )rationale\\b";'));

accepted('fixed-point values, zone size and log level',
    conf(http => 'distill_guard_secret "s"; distill_guard_zone 10m; '
        . 'distill_guard_tag_threshold 0.555; distill_guard_weight cot 2.5;'
        . ' distill_guard_throttle_threshold 1;',
        location => 'distill_guard on; distill_guard_log_level warn;'));

accepted('distill_guard_body_max 1m in a location',
    conf(location => 'distill_guard on; distill_guard_body_max 1m;'));

done_testing();
