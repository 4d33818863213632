#!/usr/bin/perl
# The module reads the request body in the preaccess phase: whatever it
# does with it, the upstream must still receive the body byte-for-byte,
# for bodies in memory, in a temporary file, chunked, slow, pipelined,
# larger than distill_guard_body_max, and for requests without a body.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();

DG::Harness::watchdog(90);

my $KEY = 'sk-test-body-0001';
my %AUTH = (Authorization => "Bearer $KEY");

my $up = DG::Harness::Upstream->start;

# default distill_guard_body_max (64k); bodies over 8k go to a temp file
my $ngx = DG::Harness::Nginx->start(upstream => $up, http => <<'EOF');
distill_guard_secret "t20-secret";
server {
    listen 127.0.0.1:%%PORT%%;
    client_body_buffer_size 8k;
    client_max_body_size 10m;
    location /v1/ {
        distill_guard on;
        proxy_pass http://%%UPSTREAM%%;
        %%PROXY_VARS%%
    }
}
EOF

# distill_guard_body_max 1k
my $small = DG::Harness::Nginx->start(upstream => $up, http => <<'EOF');
distill_guard_secret "t20-secret";
distill_guard_body_max 1k;
server {
    listen 127.0.0.1:%%PORT%%;
    location /v1/ {
        distill_guard on;
        proxy_pass http://%%UPSTREAM%%;
        %%PROXY_VARS%%
    }
}
EOF

# POSTs $body and checks the upstream got it whole; returns the vars.
sub post_ok {
    my ($n, $body, $name, %h) = @_;
    my $res = $n->request(POST => '/v1/chat/completions', {
        headers => { %AUTH, 'Content-Type' => 'application/json', %h },
        content => $body });
    return check_echo($res, $body, $name);
}

sub check_echo {
    my ($res, $body, $name) = @_;
    is($res->{status}, 200, "$name: status 200")
        or diag(substr($res->{content} // '', 0, 500));
    my $v = DG::Harness::vars($res);
    ok($v, "$name: answered by the upstream") or return {};
    is($v->{echo}{length}, length $body, "$name: upstream got the length");
    is($v->{echo}{sha256}, DG::Harness::sha256($body),
        "$name: upstream got the body byte-for-byte");
    return $v;
}

# A chat body of about $size bytes.
sub chat_body {
    my ($size) = @_;
    my $prefix = '{"model":"gpt-4o","messages":[{"role":"user","content":"';
    my $suffix = '"}]}';
    my $words = 'please review this paragraph about tidal energy and wind '
        x (1 + int($size / 50));
    return $prefix . substr($words, 0, $size - length($prefix)
        - length($suffix)) . $suffix;
}

# A raw text body of exactly $size bytes.
sub text_body {
    my ($size) = @_;
    return substr('the quick brown fox jumps over the lazy dog ' x
        (1 + int($size / 44)), 0, $size);
}

subtest 'small JSON chat body' => sub {
    my $body = DG::Harness::fixture('chat_simple.json');
    my $v = post_ok($ngx, $body, 'small chat');
    is($v->{action}, 'pass', 'action pass');
    ok(ref $v->{features} eq 'HASH', 'features are JSON')
        or diag("features: " . ($v->{features_raw} // 'undef'));
    is($v->{features}{format}, 'openai_chat', 'format openai_chat');
    ok(!$v->{features}{truncated}, 'not truncated');
};

subtest 'body larger than distill_guard_body_max 1k' => sub {
    my $body = chat_body(5000);
    is(length $body, 5000, 'a 5000-byte body');
    my $v = post_ok($small, $body, 'over body_max');
    is($v->{action}, 'pass', 'action pass');
    ok($v->{features}{truncated}, 'features: truncated true')
        or diag("features: " . ($v->{features_raw} // 'undef'));
    cmp_ok($v->{features}{bytes} // 1e9, '<=', 1024,
        'no more than body_max bytes examined');
};

subtest 'body exactly distill_guard_body_max, and one byte over' => sub {
    my $exact = text_body(1024);
    my $v = post_ok($small, $exact, 'exactly 1024', 'Content-Type' =>
        'text/plain');
    ok(!$v->{features}{truncated}, '1024 bytes: not truncated')
        or diag("features: " . ($v->{features_raw} // 'undef'));
    is($v->{features}{bytes}, 1024, '1024 bytes: all examined');

    my $over = text_body(1025);
    $v = post_ok($small, $over, '1025 bytes', 'Content-Type' => 'text/plain');
    ok($v->{features}{truncated}, '1025 bytes: truncated')
        or diag("features: " . ($v->{features_raw} // 'undef'));
    cmp_ok($v->{features}{bytes} // 1e9, '<=', 1024, '1025 bytes: 1024 examined');
};

subtest '100k body through a temporary file (client_body_buffer_size 8k)'
    => sub {
    my $mark = $ngx->mark;
    my $body = chat_body(100_000);
    my $v = post_ok($ngx, $body, '100k');
    is($v->{action}, 'pass', 'action pass');
    ok($v->{features}{truncated}, 'truncated at the default 64k')
        or diag("features: " . ($v->{features_raw} // 'undef'));
    cmp_ok($v->{features}{bytes} // 1e9, '<=', 65536, 'at most 64k examined');
    like($ngx->error_log_since($mark), qr/buffered to a temporary file/,
        'nginx did buffer the body to a temporary file');
};

subtest 'chunked request body' => sub {
    my $body = DG::Harness::fixture('chat_multiturn.json');
    my @parts = (substr($body, 0, 40), substr($body, 40, 100),
        substr($body, 140));
    my $raw = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer $KEY\r\nContent-Type: application/json\r\n"
        . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        . join('', map { sprintf("%x\r\n%s\r\n", length, $_) } @parts)
        . "0\r\n\r\n";
    my $res = DG::Harness::parse_response(DG::Harness::raw_request(
        $ngx->port, $raw));
    ok($res, 'got a response') or return;
    my $v = check_echo($res, $body, 'chunked');
    is($v->{action}, 'pass', 'action pass');
    is($v->{features}{format}, 'openai_chat', 'whole body parsed: openai_chat')
        or diag("features: " . ($v->{features_raw} // 'undef'));
};

subtest 'large chunked body (temporary file)' => sub {
    my $body = chat_body(80_000);
    my @parts = unpack '(a4000)*', $body;
    my $raw = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer $KEY\r\nTransfer-Encoding: chunked\r\n"
        . "Connection: close\r\n\r\n"
        . join('', map { sprintf("%x\r\n%s\r\n", length, $_) } @parts)
        . "0\r\n\r\n";
    my $res = DG::Harness::parse_response(DG::Harness::raw_request(
        $ngx->port, $raw));
    ok($res, 'got a response') or return;
    my $v = check_echo($res, $body, 'large chunked');
    ok($v->{features}{truncated}, 'truncated at 64k');
};

subtest 'slow client: body arrives in pieces after the headers' => sub {
    my $body = DG::Harness::fixture('anthropic.json');
    my $head = "POST /v1/messages HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer $KEY\r\nContent-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\nConnection: close\r\n\r\n";
    my $raw = DG::Harness::raw_request($ngx->port, [$head,
        substr($body, 0, 50), substr($body, 50, 60), substr($body, 110)],
        pause => 0.15);
    my $res = DG::Harness::parse_response($raw);
    ok($res, 'got a response') or return;
    my $v = check_echo($res, $body, 'slow');
    is($v->{features}{format}, 'anthropic', 'whole body parsed: anthropic')
        or diag("features: " . ($v->{features_raw} // 'undef'));
};

subtest 'two pipelined requests on one keep-alive connection' => sub {
    my $b1 = DG::Harness::fixture('completions.json');
    my $b2 = DG::Harness::fixture('responses.json');
    my $raw = '';
    for ([$b1, 'keep-alive'], [$b2, 'close']) {
        $raw .= "POST /v1/x HTTP/1.1\r\nHost: localhost\r\n"
            . "Authorization: Bearer $KEY\r\nContent-Length: "
            . length($_->[0]) . "\r\nConnection: $_->[1]\r\n\r\n$_->[0]";
    }
    my @res = DG::Harness::parse_responses(
        DG::Harness::raw_request($ngx->port, $raw));
    is(scalar @res, 2, 'two responses') or return;
    my $v1 = check_echo($res[0], $b1, 'first');
    my $v2 = check_echo($res[1], $b2, 'second');
    is($v1->{features}{format}, 'openai_completions', 'first: completions');
    is($v2->{features}{format}, 'openai_responses', 'second: responses');
};

subtest 'GET without a body' => sub {
    my $res = $ngx->request(GET => '/v1/models', { headers => \%AUTH });
    my $v = check_echo($res, '', 'GET');
    is($v->{action}, 'pass', 'accounted: action pass');
    is($v->{features}{bytes}, 0, 'features bytes 0')
        or diag("features: " . ($v->{features_raw} // 'undef'));
    ok(!$v->{features}{truncated}, 'not truncated');
};

subtest 'POST with an empty body' => sub {
    my $v = post_ok($ngx, '', 'empty POST');
    is($v->{action}, 'pass', 'action pass');
    is($v->{features}{bytes}, 0, 'features bytes 0');
};

for ([$ngx, 'default'], [$small, 'body_max 1k']) {
    my @crash = $_->[0]->crash_lines;
    is_deeply(\@crash, [], "$_->[1] nginx: no crash or alert in the error log")
        or diag(join "\n", @crash);
}

subtest 'a truncated body is logged once per worker, counted always' => sub {
    post_ok($small, chat_body(5000), "over body_max, again $_") for 1 .. 3;
    my @lines = grep { /examined up to that size/ }
        split /\n/, $small->error_log;
    is(scalar @lines, 1, 'one notice for many truncated bodies')
        or diag(join "\n", @lines);
};

done_testing();
