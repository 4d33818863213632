#!/usr/bin/perl
# A request is accounted once however nginx routes it: internal redirects
# (rewrite ... last, try_files to a named location, error_page after the
# upstream answered) and subrequests (mirror, auth_request) into guarded
# locations must not count it twice, and the variables must still hold
# its features after the redirect.  Counted with the distill_guard_stats
# "requests" counter.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use Digest::SHA qw(hmac_sha256_hex);
use Time::HiRes qw(sleep time);

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();

DG::Harness::watchdog(90);

my $SECRET = 't23-secret';
my $KEY    = 'sk-test-redirect-0042';
my $KEY_ID = substr(hmac_sha256_hex($KEY, $SECRET), 0, 16);
my $BODY   = DG::Harness::fixture('chat_multiturn.json');

my $up = DG::Harness::Upstream->start;
my $ngx = DG::Harness::Nginx->start(upstream => $up, http => <<"EOF");
distill_guard_secret "$SECRET";
server {
    listen 127.0.0.1:%%PORT%%;

    location = /dg-stats {
        distill_guard_stats;
    }

    location /v1/chat/ {
        distill_guard on;
        proxy_pass http://%%UPSTREAM%%;
        %%PROXY_VARS%%
    }

    # rewrite ... last: redirected before the preaccess phase
    location /v1/old/ {
        distill_guard on;
        rewrite ^/v1/old/(.*)\$ /v1/chat/\$1 last;
    }

    # try_files: preaccess ran here, then again in \@guarded
    location /v1/try/ {
        distill_guard on;
        try_files /no-such-file \@guarded;
    }
    location \@guarded {
        distill_guard on;
        proxy_pass http://%%UPSTREAM%%;
        %%PROXY_VARS%%
    }

    # error_page after the upstream answered 404
    location /v1/err/ {
        distill_guard on;
        proxy_pass http://%%UPSTREAM%%;
        proxy_intercept_errors on;
        error_page 404 = \@fallback;
    }
    location \@fallback {
        distill_guard on;
        proxy_pass http://%%UPSTREAM%%;
        proxy_set_header X-Mock-Status "";
        %%PROXY_VARS%%
    }

    # mirror subrequest into a guarded location
    location /v1/mirrored/ {
        distill_guard on;
        mirror /mirror;
        proxy_pass http://%%UPSTREAM%%;
        %%PROXY_VARS%%
    }
    location = /mirror {
        internal;
        distill_guard on;
        proxy_pass http://%%UPSTREAM%%/mirror-copy\$request_uri;
        %%PROXY_VARS%%
    }

    # auth_request subrequest into a guarded location
    location /v1/auth/ {
        distill_guard on;
        auth_request /auth;
        proxy_pass http://%%UPSTREAM%%;
        %%PROXY_VARS%%
    }
    location = /auth {
        internal;
        distill_guard on;
        proxy_pass http://%%UPSTREAM%%/auth-check;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
}
EOF

sub requests_count {
    my $s = $ngx->get_json('/dg-stats');
    return ref $s eq 'HASH' ? $s->{requests} : undef;
}

sub post {
    my ($path, %h) = @_;
    return $ngx->request(POST => $path, { headers => {
        Authorization => "Bearer $KEY", 'Content-Type' => 'application/json',
        %h }, content => $BODY });
}

# Runs $code (which sends one request) and checks it was counted once and
# that the final location saw the request's features.
sub counted_once {
    my ($name, $code) = @_;
    subtest $name => sub {
        my $before = requests_count();
        ok(defined $before, 'stats answer {"requests": N}') or return;
        my $res = $code->();
        is($res->{status}, 200, 'status 200')
            or diag(substr($res->{content} // '', 0, 500));
        my $v = DG::Harness::vars($res) || {};
        is($v->{echo}{sha256}, DG::Harness::sha256($BODY),
            'upstream got the body whole');
        is($v->{action}, 'pass', 'final location: action pass');
        is($v->{key_id}, $KEY_ID, 'final location: key_id');
        is(($v->{features} || {})->{format}, 'openai_chat',
            'final location: features of the request')
            or diag('features: ' . ($v->{features_raw} // 'undef'));
        is(($v->{features} || {})->{turns}, 3, 'final location: turns 3');
        sleep 0.1;
        is(requests_count() - $before, 1, 'requests counter grew by 1');
    };
}

subtest 'stats counter baseline' => sub {
    my $s = $ngx->get_json('/dg-stats');
    ok(ref $s eq 'HASH', 'stats answer a JSON object') or return;
    ok(exists $s->{$_}, "stats has $_") for qw(requests skipped);
    my $before = requests_count();
    post('/v1/chat/completions');
    post('/v1/chat/completions');
    is(requests_count() - $before, 2, 'two plain requests count 2');
    is(requests_count() - $before, 2, 'reading the stats counts nothing');
};

counted_once('plain request', sub { post('/v1/chat/completions') });

counted_once('rewrite ... last to a guarded location',
    sub { post('/v1/old/completions') });

counted_once('try_files to a guarded named location',
    sub { post('/v1/try/completions') });

counted_once('error_page 404 = @fallback after the upstream answered',
    sub { post('/v1/err/completions', 'X-Mock-Status' => 404) });

subtest 'mirror subrequest into a guarded location' => sub {
    my $before = requests_count();
    my $res = post('/v1/mirrored/completions');
    is($res->{status}, 200, 'status 200');
    my $v = DG::Harness::vars($res) || {};
    is($v->{echo}{sha256}, DG::Harness::sha256($BODY),
        'upstream got the body whole');
    is($v->{action}, 'pass', 'action pass');

    my ($copy) = (undef);
    my $deadline = time + 3;
    while (time < $deadline) {
        ($copy) = grep { $_->{uri} =~ m{^/mirror-copy/v1/mirrored/} }
            $up->requests;
        last if $copy;
        sleep 0.05;
    }
    ok($copy, 'the mirror copy reached the upstream') or return;
    is($copy->{sha256}, DG::Harness::sha256($BODY),
        'the mirror copy carried the body');
    sleep 0.1;
    is(requests_count() - $before, 1, 'requests counter grew by 1');
};

subtest 'auth_request subrequest into a guarded location' => sub {
    my $before = requests_count();
    my $res = post('/v1/auth/completions');
    is($res->{status}, 200, 'status 200')
        or diag(substr($res->{content} // '', 0, 500));
    my $v = DG::Harness::vars($res) || {};
    is($v->{echo}{sha256}, DG::Harness::sha256($BODY),
        'upstream got the body whole');
    is($v->{action}, 'pass', 'action pass');
    ok(scalar(grep { $_->{uri} eq '/auth-check' } $up->requests),
        'the auth subrequest reached the upstream');
    is(requests_count() - $before, 1, 'requests counter grew by 1');
};

my @crash = $ngx->crash_lines;
is_deeply(\@crash, [], 'no crash or alert in the error log')
    or diag(join "\n", @crash);
$ngx->stop;

subtest 'stats are instance-wide (2 workers)' => sub {
    my $two = DG::Harness::Nginx->start(upstream => $up, workers => 2,
        http => <<"EOF");
distill_guard_secret "$SECRET";
server {
    listen 127.0.0.1:%%PORT%%;
    location = /dg-stats { distill_guard_stats; }
    location /v1/ {
        distill_guard on;
        proxy_pass http://%%UPSTREAM%%;
    }
}
EOF
    is(scalar(() = $two->workers), 2, 'two workers run');
    my $s = $two->get_json('/dg-stats') || {};
    my $before = $s->{requests} // 0;
    my $ok = 0;
    for (1 .. 30) {
        my $res = $two->request(POST => '/v1/x', { headers => {
            Authorization => "Bearer $KEY" }, content => $BODY });
        $ok++ if $res->{status} == 200;
    }
    is($ok, 30, '30 requests answered');
    my @seen;
    for (1 .. 6) {       # fresh connections: likely to reach both workers
        my $st = $two->get_json('/dg-stats') || {};
        push @seen, ($st->{requests} // 0) - $before;
    }
    is_deeply(\@seen, [(30) x 6], 'every stats answer counts all 30');
    my @crash = $two->crash_lines;
    is_deeply(\@crash, [], 'no crash or alert') or diag(join "\n", @crash);
};

done_testing();
