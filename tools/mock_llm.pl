#!/usr/bin/perl
# mock_llm.pl: a small mock LLM upstream (OpenAI chat-completion shaped).
#
#   tools/mock_llm.pl [--host 127.0.0.1] [--port 8081] [--delay MS]
#                     [--log FILE] [--verbose]
#
# HTTP/1.1 server, one forked child per connection.  Reads Content-Length
# and chunked request bodies, honours keep-alive / Connection: close and
# Expect: 100-continue.  Every request (any method, any URI) gets a 200
# JSON answer in chat-completion shape carrying an extra field
#
#   "_echo": {"sha256": hex of the body as received, "length": N,
#             "method": .., "uri": .., "proto": .., "chunked": 0|1,
#             "headers": {lower-cased request headers}}
#
# so tests can check that the body arrived byte-for-byte and see the
# headers a proxy added.  A JSON body with "stream": true gets the same
# content as server-sent events.
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

    # a little of the request, for a plausible answer
    my ($req, $model, $stream) = (undef, 'mock-llm', 0);
    if (($h->{'content-type'} // '') =~ /json/i || $body =~ /^\s*\{/) {
        $req = eval { JSON::PP->new->utf8->decode($body) };
    }
    if (ref $req eq 'HASH') {
        $model = $req->{model} if defined $req->{model} && !ref $req->{model};
        $stream = $req->{stream} ? 1 : 0;
    }
    my $prompt_tokens = int((length($body) + 3) / 4);
    my $text = sprintf('Mock answer to a %d-byte %s request.',
        length $body, $method);
    my $completion_tokens = 8;
    my $id = sprintf('chatcmpl-mock-%d-%d', $$, int(time * 1000) % 1000000);

    my ($ctype, $out);
    if ($stream && $status == 200 && $method ne 'HEAD') {
        $ctype = 'text/event-stream';
        my @events;
        my @words = split /(?<= )/, $text;
        for my $i (0 .. $#words) {
            push @events, {
                id => $id, object => 'chat.completion.chunk',
                created => int(time), model => $model,
                choices => [{ index => 0, finish_reason => undef,
                    delta => { ($i == 0 ? (role => 'assistant') : ()),
                        content => $words[$i] } }],
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
