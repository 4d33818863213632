package DG::Util;
# Helpers shared by the integration tests (t/3*.t, t/4*.t): request
# bodies, a guarded POST and what it tells, pipelined blasts, the http{}
# text of a typical guarded server, a Redis dump and the end-of-test log
# checks.  Any of them is exported on request:
#
#   use DG::Util qw(chat post window_of diag_res);
#
#   chat($text)                 chat-completions JSON body, one user turn
#   templated($n, @topics)      a templated prompt (fixed head and tail),
#                               about $topics[$n % @topics] or "topic $n"
#                               (@DG::Util::TOPICS: 20 topics)
#   key_id($key, $secret)       the key id the module derives (16 hex)
#   post($ngx, $path, $key, $body, %headers)
#                               POST as Bearer $key (none when undef); adds
#                               {elapsed} and {vars} (DG::Harness::vars)
#   window_of($res), requests_of($res), hdr($res, $name), signals_of($res)
#   diag_res($res)              diag() what a response tells of the module
#   stats($ngx)                 /dg-stats as a hash ({} if not JSON)
#   blast($port, $conns, $per, $make)
#                               pipelined keep-alive POSTs on many
#                               connections at once
#   http_conf(%o), guarded(%o), location($path, $body), @HOT, @TAG
#                               http{} text of a guarded server
#   redis_dump($redis, $prefix) every key under $prefix with type, TTL, value
#   xrange($redis, $stream)     a stream's entries as field hashes
#   logs_clean($ngx, $label, errors => 1)
#                               no crash / alert (and no [error]) lines
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256_hex);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Test::More ();
use Time::HiRes qw(time);

use DG::Harness;

use Exporter qw(import);
our @EXPORT_OK = qw(chat templated key_id post window_of requests_of hdr
    signals_of diag_res stats blast http_conf location guarded redis_dump
    xrange logs_clean);

my $J = JSON::PP->new->utf8->canonical;

# The default prompt of post() when no body is given.
our $DEFAULT_PROMPT = 'What is the capital of Portugal?';

sub chat {
    $J->encode({ model => 'gpt-4o',
        messages => [ { role => 'user', content => $_[0] } ] });
}

# Topics for templated(); a test may take the first N of them.
our @TOPICS = qw(photosynthesis volcanoes tariffs sonnets enzymes glaciers
    inflation recursion magnetism baroque mitochondria tectonics calculus
    feudalism entropy vaccines monsoons cryptography opera fermentation);

# One fixed template, a varying middle: head "Answer step by step:" and
# the tail sentence are the same every time.
sub templated {
    my ($n, @topics) = @_;
    my $topic = @topics ? $topics[$n % @topics] : "topic $n";
    return chat("Answer step by step: question $n about $topic. "
        . 'Then give a short summary of the key points.');
}

sub key_id { substr(hmac_sha256_hex($_[0], $_[1]), 0, 16) }

# POST with the key as a Bearer token; adds {vars} (what the upstream
# saw of the module variables) and {elapsed}.
sub post {
    my ($ngx, $path, $key, $body, %h) = @_;
    my $t0 = time;
    my $res = $ngx->request(POST => $path, { headers => {
        (defined $key ? (Authorization => "Bearer $key") : ()),
        'Content-Type' => 'application/json', %h },
        content => $body // chat($DEFAULT_PROMPT) });
    $res->{elapsed} = time - $t0;
    $res->{vars} = DG::Harness::vars($res) || {};
    return $res;
}

sub window_of {
    my ($res) = @_;
    my $f = $res->{vars}{features};
    return ref $f eq 'HASH' && ref $f->{window} eq 'HASH' ? $f->{window}
        : undef;
}

sub requests_of { my $w = window_of($_[0]); $w ? $w->{requests} : undef }

sub hdr { $_[0]{headers}{ lc $_[1] } }

# The signals the upstream saw, else those of the response header.
sub signals_of {
    my ($res) = @_;
    return $res->{vars}{signals} // hdr($res, 'x-distill-guard-signals')
        // '';
}

sub diag_res {
    my ($res) = @_;
    my $v = $res->{vars} || {};
    Test::More::diag("status $res->{status}"
        . (defined $res->{elapsed}
            ? sprintf(' in %.3f s', $res->{elapsed}) : '')
        . '; action '
        . ($v->{action} // hdr($res, 'x-distill-guard-action') // 'undef')
        . '; score '
        . ($v->{score} // hdr($res, 'x-distill-guard-score') // 'undef')
        . '; signals ' . signals_of($res)
        . '; header signals '
        . (hdr($res, 'x-distill-guard-signals') // 'undef')
        . '; policy ' . (hdr($res, 'ratelimit-policy') // 'undef')
        . '; features ' . ($v->{features_raw} // 'undef')
        . '; body ' . substr($res->{content} // '', 0, 200));
}

sub stats { $_[0]->get_json('/dg-stats') || {} }

# $conns connections opened at once, $per pipelined keep-alive requests
# on each (the last one closes); $make->($conn, $i) returns
# [path, key (undef: no Authorization), body].  Returns every parsed
# response.
sub blast {
    my ($port, $conns, $per, $make) = @_;
    my @c;
    for my $ci (0 .. $conns - 1) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $port, Proto => 'tcp', Timeout => 5)
            or die "connect $port: $@";
        binmode $s;
        my $data = '';
        for my $i (0 .. $per - 1) {
            my ($path, $key, $body) = @{ $make->($ci, $i) };
            $data .= "POST $path HTTP/1.1\r\nHost: localhost\r\n"
                . (defined $key ? "Authorization: Bearer $key\r\n" : '')
                . "Content-Type: application/json\r\n"
                . 'Content-Length: ' . length($body) . "\r\n"
                . ($i == $per - 1 ? "Connection: close\r\n" : '')
                . "\r\n$body";
        }
        push @c, { s => $s, out => $data, in => '' };
    }
    for my $c (@c) {
        my $off = 0;
        while ($off < length $c->{out}) {
            my $n = syswrite($c->{s}, $c->{out}, length($c->{out}) - $off,
                $off);
            die "write: $!" unless defined $n;
            $off += $n;
        }
    }
    my $sel = IO::Select->new(map { $_->{s} } @c);
    my %by = map { fileno($_->{s}) => $_ } @c;
    my $deadline = time + 30;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(1)) {
            my $c = $by{ fileno $s };
            my $n = sysread($s, $c->{in}, 65536, length $c->{in});
            unless ($n) {
                $sel->remove($s);
                close $s;
            }
        }
    }
    return map { DG::Harness::parse_responses($_->{in}) } @c;
}


# The http{} text of a guarded server:
#   secret => 's'             distill_guard_secret "s";
#   redis => 'ADDR OPTS'      distill_guard_redis ADDR OPTS;
#   prefix => 'p'             distill_guard_redis_prefix p;
#   window => '60s'           distill_guard_window 60s;
#   head => $text             more http-level text after those
#   reuseport => 1            listen 127.0.0.1:%%PORT%% reuseport
#   locations => [path => body, ...]   see location()
#   stats => 0                no "location = /dg-stats" (there by default)
# Each directive is left out when its option is undef.
sub http_conf {
    my (%o) = @_;
    my $t = '';
    $t .= qq{distill_guard_secret "$o{secret}";\n} if defined $o{secret};
    $t .= "distill_guard_redis $o{redis};\n" if defined $o{redis};
    $t .= "distill_guard_redis_prefix $o{prefix};\n" if defined $o{prefix};
    $t .= "distill_guard_window $o{window};\n" if defined $o{window};
    $t .= $o{head} if defined $o{head};
    $t .= "server {\n    listen 127.0.0.1:%%PORT%%"
        . ($o{reuseport} ? ' reuseport' : '') . ";\n";
    my @loc = @{ $o{locations} || [] };
    while (my ($path, $body) = splice @loc, 0, 2) {
        $t .= location($path, $body);
    }
    $t .= location('= /dg-stats', ['distill_guard_stats;'])
        if $o{stats} // 1;
    return "$t}\n";
}

# A location block; $body is text or an array ref of lines.
sub location {
    my ($path, $body) = @_;
    my @lines = ref $body ? @$body : split /\n/, $body;
    return "    location $path {\n"
        . join('', map { "        $_\n" } @lines) . "    }\n";
}

# The lines of a guarded location that proxies to the mock upstream:
#   before => [lines]   first (e.g. distill_guard_mode shadow;)
#   with => [lines]     after "distill_guard on;" (e.g. @HOT)
#   vars => 0           without %%PROXY_VARS%%
sub guarded {
    my (%o) = @_;
    return [@{ $o{before} || [] }, 'distill_guard on;',
        @{ $o{with} || [] }, 'proxy_pass http://%%UPSTREAM%%;',
        ($o{vars} // 1 ? '%%PROXY_VARS%%' : ())];
}

# One templated request alone saturates the score (min_requests 1, a
# template weight over 1); prompts without a template score 0.
our @HOT = ('distill_guard_min_requests 1;',
    'distill_guard_weight template 10;', 'distill_guard_weight coverage 0;');

# The template alone, weight 0.6: tagged, never throttled.
our @TAG = ('distill_guard_min_requests 1;',
    'distill_guard_weight template 0.6;',
    map { "distill_guard_weight $_ 0;" }
        qw(coverage fanout cot single_turn regular volume));


# Every key under $prefix: { name => {type, pttl, value} }, the value
# dumped with the command of its type.
sub redis_dump {
    my ($redis, $prefix) = @_;
    my %d;
    for my $k (grep { length } split /\n/,
        $redis->cli('--scan', '--pattern', "$prefix:*"))
    {
        my $type = $redis->cli('TYPE', $k);
        my @cmd = $type eq 'string' ? ('GET', $k)
            : $type eq 'hash'   ? ('HGETALL', $k)
            : $type eq 'zset'   ? ('ZRANGE', $k, 0, -1, 'WITHSCORES')
            : $type eq 'stream' ? ('XRANGE', $k, '-', '+')
            : $type eq 'list'   ? ('LRANGE', $k, 0, -1)
            : $type eq 'set'    ? ('SMEMBERS', $k)
            : ();
        $d{$k} = { type => $type, pttl => $redis->cli('PTTL', $k),
            value => @cmd ? $redis->cli(@cmd) : '' };
    }
    return \%d;
}

# XRANGE <stream> - + as a list of field hashes (with id).
sub xrange {
    my ($redis, $stream) = @_;
    my @lines = split /\n/, $redis->cli('XRANGE', $stream, '-', '+');
    my (@ev, $cur);
    for my $l (@lines) {
        if ($l =~ /^\d+-\d+$/) {
            push @ev, $cur = { id => $l };
            $cur->{_k} = undef;
            next;
        }
        next unless $cur;
        if (!defined $cur->{_k}) { $cur->{_k} = $l }
        else { $cur->{ $cur->{_k} } = $l; $cur->{_k} = undef }
    }
    delete $_->{_k} for @ev;
    return @ev;
}

# Tests "$label: no crash or alert" and, with errors => 1,
# "$label: no [error] line" on $ngx's error log ($label undef: no
# "$label: ").
sub logs_clean {
    my ($ngx, $label, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $l = defined $label ? "$label: " : '';
    my @crash = $ngx->crash_lines;
    Test::More::is_deeply(\@crash, [], "${l}no crash or alert")
        or Test::More::diag(join "\n", @crash);
    return unless $o{errors};
    my @err = grep { /\[error\]/ } split /\n/, $ngx->error_log;
    Test::More::is_deeply(\@err, [], "${l}no [error] line")
        or Test::More::diag(join "\n", @err[0 .. ($#err > 9 ? 9 : $#err)]);
}

1;
