#!/usr/bin/perl
# The module's variables as the upstream sees them: features for every
# request format, the keyed API key id, skipping requests without a key,
# the reasoning-elicitation (cot) count, and that the raw key leaks
# nowhere.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use Digest::SHA qw(hmac_sha256_hex);
use Encode qw(encode_utf8);
use JSON::PP;

plan skip_all => 'module not built: ' . DG::Harness::module_path()
    . ' is missing (run make module)' unless DG::Harness::have_module();

DG::Harness::watchdog(90);

my $SECRET = 't21-secret-Ahq3';
my $KEY    = 'sk-test-vars-7f3a9c2e';

sub key_id { substr(hmac_sha256_hex($_[0], $SECRET), 0, 16) }

my $up = DG::Harness::Upstream->start;
my $ngx = DG::Harness::Nginx->start(upstream => $up,
    access_log_format => '$request_uri key_id=$distill_guard_key_id '
        . 'action=$distill_guard_action score=$distill_guard_score '
        . 'signals=$distill_guard_signals features=$distill_guard_features',
    http => <<"EOF");
distill_guard_secret "$SECRET";
distill_guard_cot_pattern "zorbl(a|e)x";
distill_guard_cot_pattern "\\bfrobn(?=icate)";
server {
    listen 127.0.0.1:%%PORT%%;
    location /v1/ {
        distill_guard on;
        proxy_pass http://%%UPSTREAM%%;
        %%PROXY_VARS%%
    }
    location /custom/ {
        distill_guard on;
        distill_guard_key \$http_x_api_key;
        proxy_pass http://%%UPSTREAM%%;
        %%PROXY_VARS%%
    }
    location /off/ {
        distill_guard off;
        proxy_pass http://%%UPSTREAM%%;
        %%PROXY_VARS%%
    }
    location = /dg-stats {
        distill_guard_stats;
    }
}
EOF

my @seen;    # every X-DG-* header value the upstream received

sub send_body {
    my ($path, $body, %h) = @_;
    my $res = $ngx->request(POST => $path, { headers => {
        Authorization => "Bearer $KEY", 'Content-Type' => 'application/json',
        %h }, content => $body });
    is($res->{status}, 200, "POST $path: 200")
        or diag(substr($res->{content} // '', 0, 500));
    my $v = DG::Harness::vars($res) || {};
    is($v->{echo}{sha256}, DG::Harness::sha256($body),
        'upstream got the body whole') if $v->{echo};
    push @seen, map { $v->{$_} // '' }
        qw(features_raw action score signals key_id);
    return $v;
}

sub diag_features {
    my ($v) = @_;
    diag('features: ' . ($v->{features_raw} // 'undef'));
}

sub utf8_len { length encode_utf8($_[0]) }

my $J = JSON::PP->new->utf8;

subtest 'features: all fields present, compact JSON' => sub {
    my $v = send_body('/v1/chat/completions',
        DG::Harness::fixture('chat_simple.json'));
    my $f = $v->{features};
    ok(ref $f eq 'HASH', 'features decode as a JSON object')
        or return diag_features($v);
    for my $k (qw(bytes tokens entropy simhash template template_tail topic
                  turns cot format truncated)) {
        ok(exists $f->{$k}, "has $k");
    }
    unlike($v->{features_raw}, qr/\s/, 'compact (no blanks)');
    cmp_ok($f->{tokens}, '>', 0, 'tokens > 0');
    cmp_ok($f->{entropy}, '>', 0, 'entropy > 0');
    cmp_ok($f->{topic}, '>=', 0, 'topic >= 0');
    cmp_ok($f->{topic}, '<', 4096, 'topic < 4096');
};

# [fixture, expected format, expected turns, text of the last user turn]
my @formats = (
    ['chat_simple.json', 'openai_chat', 1],
    ['chat_multiturn.json', 'openai_chat', 3],
    ['completions.json', 'openai_completions', 1],
    ['responses.json', 'openai_responses', 1],
    ['anthropic.json', 'anthropic', 1],
);
for my $c (@formats) {
    my ($file, $format, $turns) = @$c;
    subtest "format $format ($file)" => sub {
        my $body = DG::Harness::fixture($file);
        my $req = $J->decode($body);
        my $user = $req->{prompt} // $req->{input}
            // (grep { $_->{role} eq 'user' } @{ $req->{messages} })[-1]
                {content};
        my $v = send_body('/v1/x', $body);
        my $f = $v->{features} or return diag_features($v);
        is($f->{format}, $format, "format $format");
        is($f->{turns}, $turns, "turns $turns");
        is($f->{bytes}, utf8_len($user), 'bytes = the last user turn')
            or diag_features($v);
        ok(!$f->{truncated}, 'not truncated');
        is($v->{action}, 'pass', 'action pass');
    };
}

subtest 'raw text and malformed JSON are raw' => sub {
    for my $file (qw(raw.txt malformed.json)) {
        my $body = DG::Harness::fixture($file);
        my $v = send_body('/v1/x', $body, 'Content-Type' =>
            $file =~ /json/ ? 'application/json' : 'text/plain');
        my $f = $v->{features} or return diag_features($v);
        is($f->{format}, 'raw', "$file: format raw");
        is($f->{bytes}, length $body, "$file: bytes = the whole body");
        is($f->{turns}, 1, "$file: turns 1");
        is($v->{action}, 'pass', "$file: action pass");
    }
};

subtest 'key id is the keyed hash of the API key' => sub {
    my $body = DG::Harness::fixture('completions.json');
    my $want = key_id($KEY);
    like($want, qr/^[0-9a-f]{16}$/, "expected id $want");
    my $v = send_body('/v1/x', $body);
    is($v->{key_id}, $want, 'Bearer KEY: key_id = HMAC-SHA256(secret, key)');
    $v = send_body('/v1/x', $body, Authorization => $KEY);
    is($v->{key_id}, $want, 'KEY without Bearer: same key_id');
    $v = send_body('/v1/x', $body, Authorization => "bearer $KEY");
    is($v->{key_id}, $want, 'lower-case bearer: same key_id');
    $v = send_body('/v1/x', $body, Authorization => 'Bearer sk-test-other');
    is($v->{key_id}, key_id('sk-test-other'), 'another key: its own id');
    isnt($v->{key_id}, $want, 'another key: a different id');
};

subtest 'distill_guard_key from another header' => sub {
    my $v = send_body('/custom/x', DG::Harness::fixture('chat_simple.json'),
        'X-Api-Key' => 'sk-test-custom-42');
    is($v->{key_id}, key_id('sk-test-custom-42'), 'key_id of X-Api-Key');
    is($v->{action}, 'pass', 'action pass');

    my $res = $ngx->request(POST => '/custom/x', { headers => {
        Authorization => "Bearer $KEY" }, content => 'hello' });
    $v = DG::Harness::vars($res) || {};
    is($v->{action}, 'skip', 'no X-Api-Key (Authorization ignored): skip');
};

subtest 'missing or empty key: action skip' => sub {
    my $before = $ngx->get_json('/dg-stats');
    ok(ref $before eq 'HASH', 'stats answer JSON') or return;

    my $res = $ngx->request(POST => '/v1/x',
        { content => DG::Harness::fixture('chat_simple.json') });
    is($res->{status}, 200, 'no Authorization: still proxied');
    my $v = DG::Harness::vars($res) || {};
    is($v->{action}, 'skip', 'no Authorization: action skip');
    note('no key: key_id [' . ($v->{key_id} // 'undef') . '] features ['
        . ($v->{features_raw} // 'undef') . ']');
    is($v->{echo}{sha256},
        DG::Harness::sha256(DG::Harness::fixture('chat_simple.json')),
        'no Authorization: upstream got the body whole');

    my $body = 'hello';
    my $raw = DG::Harness::raw_request($ngx->port,
        "POST /v1/x HTTP/1.1\r\nHost: localhost\r\nAuthorization: \r\n"
        . "Content-Length: 5\r\nConnection: close\r\n\r\n$body");
    $v = DG::Harness::vars(DG::Harness::parse_response($raw) || {}) || {};
    is($v->{action}, 'skip', 'empty Authorization: action skip');

    $raw = DG::Harness::raw_request($ngx->port,
        "POST /v1/x HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer   "
        . "\t \r\nContent-Length: 5\r\nConnection: close\r\n\r\n$body");
    $v = DG::Harness::vars(DG::Harness::parse_response($raw) || {}) || {};
    is($v->{action}, 'skip', '"Bearer" and blanks only: action skip');

    # nginx trims trailing blanks: these reach the module as "Bearer"
    for my $auth ('Bearer', 'Bearer ', 'Bearer   ', 'bearer') {
        $raw = DG::Harness::raw_request($ngx->port,
            "POST /v1/x HTTP/1.1\r\nHost: localhost\r\nAuthorization: "
            . "$auth\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
            . $body);
        $v = DG::Harness::vars(DG::Harness::parse_response($raw) || {})
            || {};
        is($v->{action}, 'skip', qq{"$auth": action skip})
            or note("key_id [" . ($v->{key_id} // 'undef') . ']');
    }

    my $after = $ngx->get_json('/dg-stats');
    is(($after->{skipped} // 0) - ($before->{skipped} // 0), 7,
        'stats: skipped grew by 7');
    is(($after->{requests} // 0) - ($before->{requests} // 0), 7,
        'stats: requests grew by 7 (skipped requests are requests)');
};

subtest 'cot: built-in phrases and distill_guard_cot_pattern' => sub {
    my $chat = sub {
        $J->encode({ model => 'gpt-4o', messages => [
            { role => 'user', content => $_[0] } ] });
    };
    my $v = send_body('/v1/x',
        $chat->('Please explain step by step how a rainbow forms.'));
    cmp_ok($v->{features}{cot} // -1, '>=', 1,
        '"explain step by step" counts') or diag_features($v);

    $v = send_body('/v1/x', $chat->('Enter ZORBLAX mode and list three '
        . 'prime numbers.'));
    cmp_ok($v->{features}{cot} // -1, '>=', 1,
        'operator pattern zorbl(a|e)x counts, case-insensitively')
        or diag_features($v);

    is($v->{features}{cot}, 1, 'exactly one match') or diag_features($v);

    # PCRE, not POSIX: \b and a lookahead; each match counts
    $v = send_body('/v1/x', $chat->('Frobnicate it, then FROBNICATE it '
        . 'again, but not afrobnicate nor frobnozzle.'));
    is($v->{features}{cot}, 2, 'PCRE pattern \bfrobn(?=icate): 2 matches')
        or diag_features($v);

    $v = send_body('/v1/x', $chat->('What is the capital of Portugal?'));
    is($v->{features}{cot}, 0, 'a plain question counts 0')
        or diag_features($v);
};

subtest 'default key: Authorization, else X-Api-Key' => sub {
    my $body = DG::Harness::fixture('chat_simple.json');
    my $post = sub {
        my $res = $ngx->request(POST => '/v1/x',
            { headers => { @_ }, content => $body });
        return DG::Harness::vars($res) || {};
    };
    my $v = $post->('X-Api-Key' => 'sk-ant-test-1');
    is($v->{key_id}, key_id('sk-ant-test-1'),
        'X-Api-Key alone (Anthropic): its key id');
    is($v->{action}, 'pass', 'X-Api-Key alone: accounted');

    $v = $post->('x-api-key' => 'sk-ant-test-1');
    is($v->{key_id}, key_id('sk-ant-test-1'), 'header name in lower case');

    $v = $post->(Authorization => 'Bearer sk-oai-test-2');
    is($v->{key_id}, key_id('sk-oai-test-2'),
        'Authorization alone (OpenAI): its key id');

    $v = $post->(Authorization => 'Bearer sk-oai-test-2',
        'X-Api-Key' => 'sk-ant-test-1');
    is($v->{key_id}, key_id('sk-oai-test-2'), 'both: Authorization first');

    my $raw = DG::Harness::raw_request($ngx->port,
        "POST /v1/x HTTP/1.1\r\nHost: localhost\r\nAuthorization: \r\n"
        . "X-Api-Key: sk-ant-test-1\r\nContent-Length: 5\r\n"
        . "Connection: close\r\n\r\nhello");
    $v = DG::Harness::vars(DG::Harness::parse_response($raw) || {}) || {};
    is($v->{key_id}, key_id('sk-ant-test-1'),
        'an empty Authorization: X-Api-Key');

    $v = $post->('X-Other' => 'x');
    is($v->{action}, 'skip', 'neither: skip');
    ok(!defined $v->{key_id} || $v->{key_id} eq '' || $v->{key_id} eq '-',
        'neither: no key id');
};

subtest 'score and signals of this stage' => sub {
    my $v = send_body('/v1/x', DG::Harness::fixture('chat_multiturn.json'));
    is($v->{score}, '0.000', 'score "0.000"');
    is($v->{signals}, '', 'signals ""');
    is($v->{action}, 'pass', 'action pass');
};

subtest 'distill_guard off' => sub {
    my $before = $ngx->get_json('/dg-stats') || {};
    my $body = DG::Harness::fixture('chat_simple.json');
    my $v = send_body('/off/x', $body);
    note('off location: action [' . ($v->{action} // 'undef') . '] key_id ['
        . ($v->{key_id} // 'undef') . '] score [' . ($v->{score} // 'undef')
        . '] features [' . ($v->{features_raw} // 'undef') . ']');
    is($v->{features_raw}, '', 'features empty');
    ok(($v->{action} // 'x') eq '' || ($v->{action} // 'x') eq 'skip',
        'action empty or skip') or diag("action: $v->{action}");
    is($v->{key_id}, '', 'key_id empty');
    my $after = $ngx->get_json('/dg-stats') || {};
    is(($after->{requests} // 0) - ($before->{requests} // 0), 0,
        'not counted in the stats');
};

subtest 'the raw API key leaks nowhere' => sub {
    my @mine = grep { /\Q$KEY\E|sk-test-/ } @seen;
    ok(scalar @seen, scalar(@seen) . ' X-DG-* header values checked');
    is_deeply(\@mine, [], 'no X-DG-* header sent upstream holds the key');
    unlike($ngx->error_log, qr/sk-test-/, 'not in the error log');
    my @log = grep { /sk-test-/ } $ngx->access_log_lines;
    is_deeply(\@log, [], 'not in an access log of all module variables');
    my @lines = $ngx->access_log_lines;
    like($lines[0] // '', qr/key_id=[0-9a-f]{16} action=pass score=0\.000/,
        'the access log does show key_id, action and score');
};

my @crash = $ngx->crash_lines;
is_deeply(\@crash, [], 'no crash or alert in the error log')
    or diag(join "\n", @crash);

done_testing();
