#!/usr/bin/perl
# mock_llm.pl: a small mock LLM upstream (OpenAI and Anthropic shaped).
#
#   tools/mock_llm.pl [--host 127.0.0.1] [--port 8081] [--delay MS]
#                     [--log FILE] [--verbose]
#
# HTTP/1.1 server, one forked child per connection.  Reads Content-Length
# and chunked request bodies, honours keep-alive / Connection: close and
# Expect: 100-continue.  Every request (any method, any URI) gets a 200
# JSON answer carrying an extra field
#
#   "_echo": {"sha256": hex of the body as received, "length": N,
#             "method": .., "uri": .., "proto": .., "chunked": 0|1,
#             "headers": {lower-cased request headers}}
#
# so tests can check that the body arrived byte-for-byte and see the
# headers a proxy added.
#
# The answer is request-specific: its text is derived from the request's
# last user turn (OpenAI or Anthropic messages, a completion prompt, a
# Responses input; else the body) and a nonce (hash of the body, pid,
# time and a counter), and ends in "[ref <12 hex digits of the nonce>]",
# so two requests never get the same answer.  Requests about code also
# get a short code block.  Shapes:
#   /v1/messages    Anthropic Messages: {"type":"message","role":
#                   "assistant","content":[{"type":"text","text":..}],..}
#   any other URI   OpenAI chat completion: choices[0].message.content
# A JSON body with "stream": true gets the same content as server-sent
# events (chat.completion.chunk deltas and "data: [DONE]"; for
# /v1/messages the Anthropic events message_start .. message_stop), with
# _echo in the first event.  A non-200 status (X-Mock-Status) answers
# JSON: the chat-completion shape with an "error" field, or for
# /v1/messages {"type":"error","error":{..}}; both carry _echo.
#
# Request headers that steer the answer (tests and demo):
#   X-Mock-Status: NNN   answer with that status instead of 200
#   X-Mock-Delay: MS     wait that long before answering
#
# --port 0 binds a free port.  When listening, prints "listening on PORT"
# (the only line ever written to stdout).  --log FILE appends one JSON
# line per request (the _echo object plus "time").  SIGTERM/SIGINT stop
# the server and its children.
use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use Fcntl qw(:flock);
use Getopt::Long;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(:sys_wait_h :signal_h);
use Time::HiRes qw(sleep time);

my %opt = (host => '127.0.0.1', port => 8081, delay => 0, idle => 30);
GetOptions(\%opt, 'host=s', 'port=i', 'delay=i', 'log=s', 'idle=i',
    'verbose') or die "usage: $0 [--host H] [--port N] [--delay MS] "
    . "[--log FILE] [--verbose]\n";

my $HEAD_MAX = 64 * 1024;
my $BODY_MAX = 64 * 1024 * 1024;
my $JSON = JSON::PP->new->canonical->utf8;

my %STATUS_TEXT = (
    200 => 'OK', 400 => 'Bad Request', 401 => 'Unauthorized',
    403 => 'Forbidden', 404 => 'Not Found', 413 => 'Payload Too Large',
    429 => 'Too Many Requests', 500 => 'Internal Server Error',
    502 => 'Bad Gateway', 503 => 'Service Unavailable',
    504 => 'Gateway Timeout',
);

# Pieces of the answers (make_answer).
my @OPENERS = ('Sure.', 'Good question.', 'Here is how I would approach it.',
    'Short answer: it depends on the details.', 'Of course.',
    'Let me walk you through it.', 'Here you go.', 'Happy to help.',
    'Great, let us look at this carefully.', 'There are a few parts to this.');
my @SENTENCES = (
    'The key idea behind {a} is to be precise about {b} before anything else.',
    'Start with {a}; once that is clear, {b} follows naturally.',
    'A common mistake with {a} is to ignore {c}, so check that first.',
    'If {b} changes, revisit {a} as well, because the two depend on each other.',
    'In practice, {c} matters more than most people expect.',
    'One way to think about {a} is as a series of small, checkable steps.',
    'For example, take {b}: apply the rule once, then verify the result.',
    'The trade-off is between {a} and {c}; choose based on your constraints.',
    'To summarise: clarify {a}, handle {b}, and keep an eye on {c}.',
    'You can test this quickly by trying {b} on a small case.',
    'Note that {c} is often the source of confusion here.',
    'Step by step: first {a}, then {b}, and finally {c}.',
    'Most sources agree that {a} is the right starting point.',
    'If anything about {b} is unclear, tell me which part and I will expand.',
);
my %STOP = map { $_ => 1 } qw(about above after again against because
    before being below between could doing during every their there these
    those through under until where which while would should without
    other thing things please really maybe might still just write
    tell explain using given);
my @FALLBACK_TERMS = ('your question', 'the context', 'the details');
my $SEQ = 0;

$SIG{PIPE} = 'IGNORE';

my $srv = IO::Socket::INET->new(
    LocalAddr => $opt{host},
    LocalPort => $opt{port},
    Proto     => 'tcp',
    Listen    => 128,
    ReuseAddr => 1,
) or die "mock_llm: cannot listen on $opt{host}:$opt{port}: $@\n";

my $port = $srv->sockport;
$| = 1;
print "listening on $port\n";
logmsg("listening on $opt{host}:$port");

my %kids;
my $stopping = 0;

$SIG{CHLD} = sub {
    while ((my $pid = waitpid(-1, WNOHANG)) > 0) {
        delete $kids{$pid};
    }
};
$SIG{TERM} = $SIG{INT} = sub {
    $stopping = 1;
    kill 'TERM', keys %kids;
    exit 0;
};

my $sigset = POSIX::SigSet->new(SIGCHLD);

while (!$stopping) {
    my $conn = $srv->accept;
    next unless $conn;           # EINTR (SIGCHLD) or a transient error

    # block SIGCHLD so a fast child cannot be reaped before it is recorded
    sigprocmask(SIG_BLOCK, $sigset);
    my $pid = fork;
    if (!defined $pid) {
        sigprocmask(SIG_UNBLOCK, $sigset);
        logmsg("fork: $!");
        close $conn;
        sleep 0.05;
        next;
    }
    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(CHLD TERM INT);
        sigprocmask(SIG_UNBLOCK, $sigset);
        close $srv;
        eval { serve($conn); 1 } or logmsg("connection: $@");
        close $conn;
        POSIX::_exit(0);
    }
    $kids{$pid} = 1;
    sigprocmask(SIG_UNBLOCK, $sigset);
    close $conn;
}

exit 0;


sub logmsg {
    print STDERR "mock_llm[$$]: @_\n" if $opt{verbose};
}

# Reads more bytes into $$buf; false on EOF, error or idle timeout.
sub fill {
    my ($conn, $buf) = @_;
    my $sel = IO::Select->new($conn);
    return 0 unless $sel->can_read($opt{idle});
    my $n = sysread($conn, $$buf, 65536, length $$buf);
    return $n ? 1 : 0;
}

# Makes $$buf hold at least $n bytes.
sub need {
    my ($conn, $buf, $n) = @_;
    while (length $$buf < $n) {
        return 0 unless fill($conn, $buf);
    }
    return 1;
}

# Takes one CRLF-terminated line off $$buf (without the CRLF).
sub take_line {
    my ($conn, $buf) = @_;
    while (1) {
        my $i = index($$buf, "\r\n");
        return substr(substr($$buf, 0, $i + 2, ''), 0, $i) if $i >= 0;
        return undef if length $$buf > $HEAD_MAX;
        return undef unless fill($conn, $buf);
    }
}

sub write_all {
    my ($conn, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($conn, $data, length($data) - $off, $off);
        return 0 unless defined $n && $n > 0;
        $off += $n;
    }
    return 1;
}

sub simple_answer {
    my ($conn, $status, $text) = @_;
    my $body = $JSON->encode({ error => { message => $text,
        type => 'mock_error' } });
    write_all($conn, "HTTP/1.1 $status " . ($STATUS_TEXT{$status} // 'X')
        . "\r\nContent-Type: application/json\r\nContent-Length: "
        . length($body) . "\r\nConnection: close\r\n\r\n$body");
}

sub serve {
    my ($conn) = @_;
    binmode $conn;
    my $buf = '';

    while (1) {
        # request head
        my $end;
        while (($end = index($buf, "\r\n\r\n")) < 0) {
            if (length $buf > $HEAD_MAX) {
                simple_answer($conn, 400, 'request head too large');
                return;
            }
            return unless fill($conn, \$buf);
        }
        my $head = substr($buf, 0, $end + 4, '');
        $head =~ s/^(?:\r\n)+//;          # stray CRLFs between requests
        my ($line, @lines) = split /\r\n/, $head;
        my ($method, $uri, $proto) =
            ($line // '') =~ m{^([A-Za-z]+) (\S+) (HTTP/1\.[01])$};
        unless ($method) {
            simple_answer($conn, 400, 'bad request line');
            return;
        }

        my %h;
        for my $l (@lines) {
            my ($name, $value) = $l =~ /^([^:\s]+):[ \t]*(.*?)[ \t]*$/
                or do { simple_answer($conn, 400, 'bad header'); return };
            $name = lc $name;
            $h{$name} = exists $h{$name} ? "$h{$name}, $value" : $value;
        }

        if (($h{expect} // '') =~ /^100-continue$/i) {
            write_all($conn, "HTTP/1.1 100 Continue\r\n\r\n") or return;
        }

        # request body
        my $body = '';
        my $chunked = ($h{'transfer-encoding'} // '') =~ /\bchunked\b/i;
        if ($chunked) {
            while (1) {
                my $size_line = take_line($conn, \$buf);
                return unless defined $size_line;
                my ($hex) = $size_line =~ /^\s*([0-9a-fA-F]+)/;
                unless (defined $hex && length $hex <= 8) {
                    simple_answer($conn, 400, 'bad chunk size');
                    return;
                }
                my $size = hex $hex;
                if ($size == 0) {
                    while (1) {       # trailers up to the empty line
                        my $t = take_line($conn, \$buf);
                        return unless defined $t;
                        last if $t eq '';
                    }
                    last;
                }
                if (length($body) + $size > $BODY_MAX) {
                    simple_answer($conn, 413, 'body too large');
                    return;
                }
                need($conn, \$buf, $size + 2) or return;
                $body .= substr($buf, 0, $size, '');
                unless (substr($buf, 0, 2, '') eq "\r\n") {
                    simple_answer($conn, 400, 'bad chunk end');
                    return;
                }
            }
        } elsif (defined $h{'content-length'}) {
            my $cl = $h{'content-length'};
            unless ($cl =~ /^\d{1,12}$/ && $cl <= $BODY_MAX) {
                simple_answer($conn, 400, 'bad content-length');
                return;
            }
            need($conn, \$buf, $cl) or return;
            $body = substr($buf, 0, $cl, '');
        }

        my $conn_hdr = lc($h{connection} // '');
        my $keep = $proto eq 'HTTP/1.1'
            ? $conn_hdr !~ /\bclose\b/
            : $conn_hdr =~ /\bkeep-alive\b/;

        answer($conn, $method, $uri, $proto, \%h, $body, $chunked, $keep)
            or return;
        return unless $keep;
    }
}

sub answer {
    my ($conn, $method, $uri, $proto, $h, $body, $chunked, $keep) = @_;

    my $echo = {
        sha256  => sha256_hex($body),
        length  => length $body,
        method  => $method,
        uri     => $uri,
        proto   => $proto,
        chunked => $chunked ? 1 : 0,
        headers => $h,
    };
    logmsg("$method $uri " . length($body) . " bytes");

    if ($opt{log}) {
        if (open my $fh, '>>', $opt{log}) {
            flock $fh, LOCK_EX;
            print $fh $JSON->encode({ %$echo, time => time }), "\n";
            close $fh;
        }
    }

    my $delay = $opt{delay};
    $delay = $1 if ($h->{'x-mock-delay'} // '') =~ /^(\d{1,6})$/;
    sleep($delay / 1000) if $delay;

    my $status = 200;
    $status = $1 if ($h->{'x-mock-status'} // '') =~ /^([1-5]\d\d)$/;
    $status = 200 if $status < 200;

    # the request, for a request-specific answer; a body over 1 MB is
    # answered from its first 4 KB (JSON::PP takes seconds on 12 MB,
    # which tests of large bodies would wait for)
    my ($req, $model, $stream) = (undef, 'mock-llm', 0);
    my $big = length($body) > 1024 * 1024;
    if (!$big
        && (($h->{'content-type'} // '') =~ /json/i || $body =~ /^\s*\{/))
    {
        $req = eval { JSON::PP->new->utf8->decode($body) };
    }
    if (ref $req eq 'HASH') {
        $model = $req->{model} if defined $req->{model} && !ref $req->{model};
        $stream = $req->{stream} ? 1 : 0;
    }
    my $anthropic = $uri =~ m{^/v1/messages(?:[?/]|$)};
    my $prompt_tokens = int((length($body) + 3) / 4);
    my $nonce = sha256_hex(join "\0", $body, $$, time, ++$SEQ, rand);
    my $text = make_answer(last_user_text($req,
        $big ? substr($body, 0, 4096) : $body), $nonce, $method,
        length $body);
    my $completion_tokens = int((length($text) + 3) / 4);
    my $id = ($anthropic ? 'msg_mock_' : 'chatcmpl-mock-')
        . substr($nonce, 0, 24);
    my @pieces = split /(?<= )/, $text;

    my ($ctype, $out);
    if ($stream && $status == 200 && $method ne 'HEAD' && $anthropic) {
        $ctype = 'text/event-stream';
        my @events = (
            [ message_start => { type => 'message_start', _echo => $echo,
                message => { id => $id, type => 'message',
                    role => 'assistant', model => $model, content => [],
                    stop_reason => undef, stop_sequence => undef,
                    usage => { input_tokens => $prompt_tokens,
                        output_tokens => 1 } } } ],
            [ content_block_start => { type => 'content_block_start',
                index => 0, content_block => { type => 'text', text => '' } } ],
            (map { [ content_block_delta => { type => 'content_block_delta',
                index => 0, delta => { type => 'text_delta', text => $_ } } ] }
                @pieces),
            [ content_block_stop => { type => 'content_block_stop',
                index => 0 } ],
            [ message_delta => { type => 'message_delta',
                delta => { stop_reason => 'end_turn', stop_sequence => undef },
                usage => { output_tokens => $completion_tokens } } ],
            [ message_stop => { type => 'message_stop' } ],
        );
        $out = join '', map { "event: $_->[0]\ndata: "
            . $JSON->encode($_->[1]) . "\n\n" } @events;
    } elsif ($stream && $status == 200 && $method ne 'HEAD') {
        $ctype = 'text/event-stream';
        my @events;
        for my $i (0 .. $#pieces) {
            push @events, {
                id => $id, object => 'chat.completion.chunk',
                created => int(time), model => $model,
                choices => [{ index => 0, finish_reason => undef,
                    delta => { ($i == 0 ? (role => 'assistant') : ()),
                        content => $pieces[$i] } }],
                ($i == 0 ? (_echo => $echo) : ()),
            };
        }
        push @events, {
            id => $id, object => 'chat.completion.chunk',
            created => int(time), model => $model,
            choices => [{ index => 0, delta => {}, finish_reason => 'stop' }],
        };
        $out = join('', map { 'data: ' . $JSON->encode($_) . "\n\n" }
            @events) . "data: [DONE]\n\n";
    } elsif ($anthropic) {
        $ctype = 'application/json';
        my $res = $status == 200 ? {
            id            => $id,
            type          => 'message',
            role          => 'assistant',
            model         => $model,
            content       => [{ type => 'text', text => $text }],
            stop_reason   => 'end_turn',
            stop_sequence => undef,
            usage => {
                input_tokens  => $prompt_tokens,
                output_tokens => $completion_tokens,
            },
            _echo => $echo,
        } : {
            type  => 'error',
            error => { type => 'mock_error', message => "mock status $status" },
            _echo => $echo,
        };
        $out = $JSON->encode($res);
    } else {
        $ctype = 'application/json';
        my $res = {
            id      => $id,
            object  => 'chat.completion',
            created => int(time),
            model   => $model,
            choices => [{
                index         => 0,
                message       => { role => 'assistant', content => $text },
                finish_reason => 'stop',
            }],
            usage => {
                prompt_tokens     => $prompt_tokens,
                completion_tokens => $completion_tokens,
                total_tokens      => $prompt_tokens + $completion_tokens,
            },
            _echo => $echo,
        };
        if ($status != 200) {
            $res->{error} = { message => "mock status $status",
                type => 'mock_error', code => $status };
        }
        $out = $JSON->encode($res);
    }

    my $head = "HTTP/1.1 $status " . ($STATUS_TEXT{$status} // 'Status')
        . "\r\nServer: mock-llm\r\nContent-Type: $ctype\r\n"
        . 'Content-Length: ' . length($out) . "\r\n"
        . 'Connection: ' . ($keep ? 'keep-alive' : 'close') . "\r\n\r\n";
    $out = '' if $method eq 'HEAD';
    return write_all($conn, $head . $out);
}


# ------------------------------------------------------------ the answer

# The text of the last user turn of a chat (OpenAI or Anthropic
# messages, content as a string or a list of parts), a completion
# prompt, a Responses API input; else the body itself.
sub last_user_text {
    my ($req, $body) = @_;
    return $body unless ref $req eq 'HASH';
    my $flat = sub {
        my ($c) = @_;
        return $c unless ref $c;
        return join "\n", map { ref $_ eq 'HASH' ? ($_->{text} // '')
            : ref $_ ? '' : $_ } @$c if ref $c eq 'ARRAY';
        return '';
    };
    if (ref $req->{messages} eq 'ARRAY') {
        for my $m (reverse @{ $req->{messages} }) {
            next unless ref $m eq 'HASH' && ($m->{role} // '') eq 'user';
            return $flat->($m->{content});
        }
        return '';
    }
    for my $f (qw(prompt input)) {
        next unless defined $req->{$f};
        my $v = $req->{$f};
        return $v unless ref $v;
        if (ref $v eq 'ARRAY') {
            my @parts = map { ref $_ eq 'HASH'
                ? $flat->($_->{content} // $_->{text} // '') : $_ } @$v;
            return $parts[-1] // '';
        }
    }
    return $body;
}


# A request-specific answer: derived from the last user turn and a nonce
# (a hash of the body, the pid, the time and a counter), so two requests
# never get the same answer.
sub make_answer {
    my ($user, $nonce, $method, $len) = @_;
    $user //= '';
    my $i = 0;
    my $h = $nonce;
    my $rnd = sub {     # deterministic draws from the nonce
        my ($n) = @_;
        $h = sha256_hex($h . ++$i) if $i % 6 == 0;
        my $v = hex substr($h, ($i++ % 6) * 8, 8);
        return $n ? $v % $n : $v;
    };
    my %seen;
    my @terms = grep { !$STOP{$_} && !$seen{$_}++ } map { lc }
        grep { length >= 5 }
        map { s/^[^\w]+|[^\w]+$//gr } split /\s+/, $user;
    @terms = sort { length $b <=> length $a || $a cmp $b } @terms;
    splice @terms, 8 if @terms > 8;
    @terms = @FALLBACK_TERMS unless @terms;
    push @terms, @FALLBACK_TERMS[0 .. 2 - $#terms] if @terms < 3;
    my @w = grep { length } split /\s+/, $user;
    my $topic = join ' ', @w[0 .. ($#w < 5 ? $#w : 5)];
    $topic =~ s/["\\]//g;
    my @s = ($OPENERS[ $rnd->(scalar @OPENERS) ]);
    push @s, length $topic ? "About \"$topic\": here is what matters."
        : sprintf('Answer to a %d-byte %s request.', $len, $method);
    my @pool = @SENTENCES;
    for (1 .. 2 + $rnd->(5)) {
        my $x = splice @pool, $rnd->(scalar @pool), 1;
        my @t = @terms;         # three different terms per sentence
        my %slot = map { $_ => splice(@t, $rnd->(scalar @t), 1) } qw(a b c);
        $x =~ s/\{([abc])\}/$slot{$1}/g;
        push @s, $x;
    }
    my $text = join ' ', @s;
    if ($user =~ /\b(?:code|function|script|program|implement|bug|error|
            compile|class|test|sql|regex|api)\b/xi) {
        my $name = $terms[0] =~ s/\W/_/gr;
        $text .= sprintf "\n\n```\n# %s\ndef %s_%s(data):\n    return "
            . "[x for x in data if x]\n```\n", $topic, $name,
            substr($nonce, 0, 6);
    }
    return $text . ' [ref ' . substr($nonce, 0, 12) . ']';
}
