package DG::Harness;
# Integration test harness: real nginx, real redis-server and the mock LLM
# upstream (tools/mock_llm.pl), each on a free 127.0.0.1 port, in its own
# temporary directory, stopped when its object goes away, at END, or when
# the test is interrupted.
#
#   use FindBin; use lib "$FindBin::Bin/lib"; use DG::Harness;
#
#   my $redis = DG::Harness::Redis->start(password => 'pw');
#   my $up    = DG::Harness::Upstream->start;
#   my $ngx   = DG::Harness::Nginx->start(upstream => $up, redis => $redis,
#                   http => $conf_text);
#   my $res   = $ngx->request(POST => '/v1/chat/completions',
#                   { headers => {...}, content => $body });
#
# Functions (DG::Harness::...):
#   module_path, have_module, root, free_port, port_open($port),
#   watchdog($seconds), fixture($name) (t/fixtures), slurp, spit,
#   json_decode, sha256($bytes) (hex),
#   echo($res)   the mock upstream's _echo object of a response
#   vars($res)   the module variables the upstream received through
#                %%PROXY_VARS%%: {features (hash), features_raw, action,
#                score, signals, key_id, echo}
#   raw_request($port, $bytes | [@parts], pause => s, timeout => s)
#   parse_response($raw) / parse_responses($raw)
#   nginx_test(%nginx_start_options) -> ($ok, $output)
# Classes: DG::Harness::Redis, ::Upstream, ::Nginx (see each below), all
# DG::Harness::Server; every object has port, pid, dir, stop, restart and
# is stopped by DESTROY/END.  Test helpers on top: DG::Util.
# A guardian process kills what is left if the test dies without END.
#
# Environment: DG_MODULE (module .so), DG_NGINX (nginx binary),
# DG_REDIS_SERVER / DG_REDIS_CLI, DG_KEEP=1 (keep the temporary
# directories and print where they are), DG_NO_GUARDIAN=1.
use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA qw(sha256_hex);
use File::Basename qw(dirname);
use File::Spec;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Scalar::Util qw(weaken refaddr);
use Time::HiRes qw(sleep time);

our $ROOT = abs_path(dirname(abs_path(__FILE__)) . '/../../..');
our $NGINX = $ENV{DG_NGINX} || (-x '/usr/sbin/nginx' ? '/usr/sbin/nginx'
    : 'nginx');
our $REDIS_SERVER = $ENV{DG_REDIS_SERVER} || 'redis-server';
our $REDIS_CLI    = $ENV{DG_REDIS_CLI}    || 'redis-cli';

# proxy_set_header lines that hand every module variable to the upstream,
# each wrapped in [...] so that an empty value still arrives; the http
# placeholder %%PROXY_VARS%% expands to them and vars() reads them back.
our $PROXY_VARS = join '', map { "proxy_set_header $_->[0] \"[$_->[1]]\";\n" }
    ['X-DG-Features', '$distill_guard_features'],
    ['X-DG-Action',   '$distill_guard_action'],
    ['X-DG-Score',    '$distill_guard_score'],
    ['X-DG-Signals',  '$distill_guard_signals'],
    ['X-DG-Key-Id',   '$distill_guard_key_id'];

my $OWNER = $$;
my %LIVE;           # refaddr => weak ref of every running process object
my %PORTS_GIVEN;

my %SIGNUM = (HUP => 1, INT => 2, TERM => 15);
for my $sig (sort keys %SIGNUM) {
    next if $SIG{$sig} && $SIG{$sig} ne 'DEFAULT';
    $SIG{$sig} = sub {
        print STDERR "# caught SIG$sig, cleaning up\n";
        exit 128 + $SIGNUM{$sig};       # END stops the servers
    };
}

# A write to a closed socket (or stdout) returns an error instead of
# killing the test before END could stop the servers.
$SIG{PIPE} = 'IGNORE' if !$SIG{PIPE} || $SIG{PIPE} eq 'DEFAULT';

END {
    my $rc = $?;
    if ($$ == $OWNER) {
        for my $obj (grep { defined } values %LIVE) {
            eval { $obj->stop };
        }
    }
    $? = $rc;
}


sub root        { $ROOT }
sub module_path { $ENV{DG_MODULE} ? abs_path($ENV{DG_MODULE})
                  // $ENV{DG_MODULE} : "$ROOT/build/ngx_distill_guard_module.so" }
sub have_module { -f module_path() }

# A TCP port on 127.0.0.1 that nothing listens on right now (and that this
# process has not handed out before).
sub free_port {
    for (1 .. 50) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => 0, Proto => 'tcp', Listen => 1, ReuseAddr => 1)
            or die "free_port: $@";
        my $port = $s->sockport;
        close $s;
        next if $PORTS_GIVEN{$port}++;
        return $port;
    }
    die "free_port: no free port found\n";
}

# True once something accepts TCP connections on 127.0.0.1:$port.
sub port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# Dies after $seconds (exiting through END, so processes are stopped).
sub watchdog {
    my ($seconds) = @_;
    $SIG{ALRM} = sub {
        print STDERR "# watchdog: test still running after ${seconds}s\n";
        exit 124;
    };
    alarm $seconds;
}

sub tempdir_for {
    my ($what) = @_;
    my $dir = tempdir("dg-$what-XXXXXX", TMPDIR => 1,
        CLEANUP => !$ENV{DG_KEEP});
    print STDERR "# $what dir: $dir\n" if $ENV{DG_KEEP};
    return $dir;
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    binmode $fh;
    local $/;
    my $text = <$fh>;
    return $text // '';
}

sub spit {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "write $file: $!";
    binmode $fh;
    print $fh $text;
    close $fh or die "write $file: $!";
}

# Text of a file under t/fixtures.
sub fixture {
    my ($name) = @_;
    my $file = "$ROOT/t/fixtures/$name";
    die "no fixture $file\n" unless -f $file;
    return slurp($file);
}

sub json_decode {
    my ($text) = @_;
    return eval { JSON::PP->new->utf8->allow_nonref->decode($text) };
}

sub sha256 { sha256_hex($_[0]) }

# The mock upstream's _echo object of an HTTP::Tiny response (hashref), or
# undef.  For a parse_response() hash as well.
sub echo {
    my ($res) = @_;
    my $j = json_decode($res->{content} // '');
    return ref $j eq 'HASH' ? $j->{_echo} : undef;
}

# What the upstream saw of the module variables sent by %%PROXY_VARS%%:
#   { features => hashref or undef, features_raw => text, action => ..,
#     score => .., signals => .., key_id => .., echo => _echo }
# A value is undef when its header did not arrive at all.
sub vars {
    my ($res) = @_;
    my $echo = echo($res) or return undef;
    my $h = $echo->{headers} || {};
    my %v = (echo => $echo);
    for (['features_raw', 'x-dg-features'], ['action', 'x-dg-action'],
         ['score', 'x-dg-score'], ['signals', 'x-dg-signals'],
         ['key_id', 'x-dg-key-id'])
    {
        my $val = $h->{ $_->[1] };
        $val =~ s/^\[(.*)\]$/$1/s if defined $val;
        $v{ $_->[0] } = $val;
    }
    $v{features} = defined $v{features_raw} && length $v{features_raw}
        ? json_decode($v{features_raw}) : undef;
    return \%v;
}

# Sends raw bytes to 127.0.0.1:$port and returns everything read back
# until the peer closes (or opt timeout, default 10s, passes).  $bytes may
# be an array ref of parts, sent with opt pause (seconds) between them.
sub raw_request {
    my ($port, $bytes, %opt) = @_;
    my $timeout = $opt{timeout} // 10;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 5) or die "raw_request: connect $port: $@";
    binmode $s;
    my @parts = ref $bytes ? @$bytes : ($bytes);
    for my $i (0 .. $#parts) {
        sleep $opt{pause} if $i && $opt{pause};
        my $data = $parts[$i];
        my $off = 0;
        while ($off < length $data) {
            my $n = syswrite($s, $data, length($data) - $off, $off);
            last unless defined $n && $n > 0;    # peer closed: read below
            $off += $n;
        }
    }
    my $sel = IO::Select->new($s);
    my $out = '';
    my $deadline = time + $timeout;
    while (1) {
        my $left = $deadline - time;
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, $out, 65536, length $out);
        last unless $n;
    }
    close $s;
    return $out;
}

# Parses one HTTP response off the front of $raw; returns the hash
# {status, reason, headers (lower-cased), content} and, in list context,
# also the bytes after it.  Handles Content-Length and chunked.
sub parse_response {
    my ($raw) = @_;
    my $end = index($raw, "\r\n\r\n");
    return unless $end >= 0;
    my ($line, @lines) = split /\r\n/, substr($raw, 0, $end);
    my $rest = substr($raw, $end + 4);
    my ($status, $reason) = $line =~ m{^HTTP/\d\.\d (\d{3}) ?(.*)$}
        or return;
    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $k = lc $k;
        $h{$k} = exists $h{$k} ? "$h{$k}, $v" : $v;
    }
    my $content = '';
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        while ($rest =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $size = hex $1;
            if ($size == 0) {
                $rest =~ s/^(?:[^\r\n]+\r\n)*\r\n//;
                last;
            }
            $content .= substr($rest, 0, $size, '');
            $rest =~ s/^\r\n//;
        }
    } elsif (defined $h{'content-length'}) {
        $content = substr($rest, 0, $h{'content-length'}, '');
    } else {
        ($content, $rest) = ($rest, '');
    }
    my $res = { status => $status, reason => $reason, headers => \%h,
        content => $content, success => $status =~ /^2/ ? 1 : 0 };
    return wantarray ? ($res, $rest) : $res;
}

# Every response in $raw (pipelined / keep-alive answers).
sub parse_responses {
    my ($raw) = @_;
    my @out;
    while (length $raw) {
        my ($res, $rest) = parse_response($raw);
        last unless $res;
        push @out, $res;
        $raw = $rest;
    }
    return @out;
}

# Runs `nginx -t` on the configuration Nginx->start would write for the
# same options; returns (success, combined output).
sub nginx_test {
    my (%opt) = @_;
    my $conf = DG::Harness::Nginx->_prepare(%opt);
    my $out = `$NGINX -t -p $conf->{dir}/ -c $conf->{dir}/nginx.conf 2>&1`;
    my $ok = $? == 0;
    return ($ok, $out);
}


# Process plumbing shared by the server classes.

sub _spawn {
    my (%a) = @_;
    my @cmd = @{ $a{cmd} };
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        eval {
            setpgrp(0, 0);                 # own group: killed as a whole
            $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP ALRM PIPE);
            open STDIN, '<', '/dev/null';
            if ($a{stdout_fh}) {
                open STDOUT, '>&', $a{stdout_fh} or die "dup: $!";
            } elsif ($a{stdout}) {
                open STDOUT, '>>', $a{stdout} or die "$a{stdout}: $!";
            }
            if ($a{stderr}) {
                open STDERR, '>>', $a{stderr} or die "$a{stderr}: $!";
            }
            exec { $cmd[0] } @cmd or die "exec $cmd[0]: $!\n";
        };
        print STDERR $@;
        POSIX::_exit(127);
    }
    _guard('+', $pid);
    return $pid;
}

# The guardian: a small process forked on the first spawn that outlives
# the test.  It learns the process group of every server started and
# stopped through a pipe; when the pipe closes (the test exited, even by
# SIGKILL) it kills the groups still listed.  DG_NO_GUARDIAN=1 disables it.
my $GUARD_W;

sub _guard {
    my ($op, $pgid) = @_;
    return if $ENV{DG_NO_GUARDIAN} || $$ != $OWNER;
    unless ($GUARD_W) {
        pipe(my $r, my $w) or return;      # close-on-exec: servers lack it
        my $pid = fork;
        return unless defined $pid;
        if ($pid == 0) {
            close $w;
            setpgrp(0, 0);
            $SIG{$_} = 'IGNORE' for qw(INT HUP PIPE ALRM);
            open STDIN, '<', '/dev/null';
            open STDOUT, '>', '/dev/null';
            open STDERR, '>', '/dev/null';
            my %live;
            while (my $l = <$r>) {
                $live{$1} = 1 if $l =~ /^\+(\d+)/;
                delete $live{$1} if $l =~ /^-(\d+)/;
            }
            my @groups = map { -$_ } keys %live;
            if (@groups) {
                kill 'TERM', @groups;
                kill 'CONT', @groups;
                my $deadline = time + 3;
                sleep 0.05 while time < $deadline && kill 0, @groups;
                kill 'KILL', @groups;
            }
            POSIX::_exit(0);
        }
        close $r;
        $GUARD_W = $w;
        select((select($w), $| = 1)[0]);
    }
    print $GUARD_W "$op$pgid\n";
}

# Stops a spawned process: $sig (TERM), SIGCONT in case it is stopped,
# waits up to $timeout seconds, then SIGKILLs its whole process group.
sub _reap {
    my ($pid, $sig, $timeout) = @_;
    return unless $pid;
    kill $sig || 'TERM', $pid;
    kill 'CONT', $pid;
    my $deadline = time + ($timeout // 5);
    my $gone = 0;
    while (time < $deadline) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid || $r == -1) { $gone = 1; last }
        sleep 0.02;
    }
    kill 'KILL', -$pid;        # stragglers in the group (e.g. workers)
    unless ($gone) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    _guard('-', $pid);
}

sub _alive {
    my ($pid) = @_;
    return 0 unless $pid;
    my $r = waitpid($pid, WNOHANG);
    return 0 if $r == $pid || $r == -1;
    return 1;
}

# pids whose parent is $pid (Linux /proc).
sub _children {
    my ($pid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = slurp($stat) or next;
        my ($ppid) = substr($s, rindex($s, ')') + 2) =~ /^\S+ (\d+)/ or next;
        push @kids, ($stat =~ m{/proc/(\d+)/})[0] if $ppid == $pid;
    }
    return @kids;
}

sub _register   { my $o = shift; $LIVE{ refaddr $o } = $o;
                  weaken $LIVE{ refaddr $o }; }
sub _unregister { delete $LIVE{ refaddr $_[0] } }


###########################################################################
package DG::Harness::Server;
# What the server classes share: pid, dir, stop (TERM, then KILL after
# _stop_timeout seconds), restart (launched again while the old socket
# lingers: _relaunch returns undef when up, else the error text) and
# DESTROY.  A subclass names itself in _what.
use strict;
use warnings;
use Time::HiRes qw(sleep);

sub pid { $_[0]{pid} }
sub dir { $_[0]{dir} }

sub _stop_timeout { 5 }
sub _busy         { qr/in use/i }

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    DG::Harness::_reap($self->{pid}, 'TERM', $self->_stop_timeout);
    $self->{pid} = undef;
    DG::Harness::_unregister($self);
}

sub restart {
    my ($self) = @_;
    $self->stop;
    my $err;
    for (1 .. 50) {             # the old socket may linger a moment
        $err = $self->_relaunch or last;
        last unless $err =~ $self->_busy;
        sleep 0.1;
    }
    die $self->_what . " did not restart:\n$err\n" if $err;
    DG::Harness::_register($self);
    return $self;
}

sub DESTROY { local ($?, $@); $_[0]->stop if $_[0]{pid} }


###########################################################################
package DG::Harness::Redis;
# redis-server in its own directory: --save '' --appendonly no.
#   start(password => 'pw')                     requirepass
#   start(user => 'dg', password => 'pw')       ACL user (all rights);
#                                               the default user is off
#   start(conf => "maxmemory 10mb\n")            extra redis.conf lines
#   cli(@args)            redis-cli with its login; stdout, chomped
#   cli_pipe(@lines)      many commands through one redis-cli; its lines
#   pause / resume        SIGSTOP / SIGCONT
use strict;
use warnings;
use File::Temp qw(tempfile);
use Time::HiRes qw(sleep time);
our @ISA = ('DG::Harness::Server');

sub _what     { 'redis-server' }
sub _relaunch { $_[0]->_launch }

sub start {
    my ($class, %opt) = @_;
    my $self = bless { opt => \%opt, dir => DG::Harness::tempdir_for('redis'),
        port => $opt{port} }, $class;
    for my $try (1 .. 5) {
        $self->{port} //= DG::Harness::free_port();
        my $err = $self->_launch;
        last unless $err;
        die "redis-server did not start: $err\n"
            if $try == 5 || $opt{port} || $err !~ /in use/i;
        $self->{port} = undef;
    }
    DG::Harness::_register($self);
    return $self;
}

sub port     { $_[0]{port} }
sub password { $_[0]{opt}{password} }
sub user     { $_[0]{opt}{user} }
sub addr     { '127.0.0.1:' . $_[0]{port} }
sub log      { DG::Harness::slurp("$_[0]{dir}/redis.log") }

sub _conf {
    my ($self) = @_;
    my $o = $self->{opt};
    my $conf = join "\n",
        'bind 127.0.0.1',
        "port $self->{port}",
        "dir $self->{dir}",
        'save ""',
        'appendonly no',
        'daemonize no',
        "logfile $self->{dir}/redis.log",
        'loglevel notice',
        '';
    if (defined $o->{user}) {
        $conf .= "user default off\n"
            . "user $o->{user} on >" . ($o->{password} // '')
            . " ~* &* +\@all\n";
    } elsif (defined $o->{password}) {
        $conf .= "requirepass $o->{password}\n";
    }
    $conf .= "$o->{conf}\n" if $o->{conf};
    return $conf;
}

# Returns undef when up, or the error text.
sub _launch {
    my ($self) = @_;
    DG::Harness::spit("$self->{dir}/redis.conf", $self->_conf);
    my $logpos = -s "$self->{dir}/redis.log" // 0;
    $self->{pid} = DG::Harness::_spawn(
        cmd => [$DG::Harness::REDIS_SERVER, "$self->{dir}/redis.conf"],
        stdout => "$self->{dir}/stdout.log",
        stderr => "$self->{dir}/stdout.log");
    my $deadline = time + 10;
    while (time < $deadline) {
        unless (DG::Harness::_alive($self->{pid})) {
            $self->{pid} = undef;
            return substr($self->log, $logpos)
                . DG::Harness::slurp("$self->{dir}/stdout.log");
        }
        return undef if $self->_ping;
        sleep 0.02;
    }
    DG::Harness::_reap($self->{pid}, 'KILL');
    $self->{pid} = undef;
    return 'timeout; log: ' . $self->log;
}

# Any RESP answer to PING (+PONG or -NOAUTH) means it serves.
sub _ping {
    my ($self) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $self->{port}, Proto => 'tcp', Timeout => 1) or return 0;
    syswrite $s, "PING\r\n";
    my $sel = IO::Select->new($s);
    my $line = '';
    sysread($s, $line, 256) if $sel->can_read(1);
    close $s;
    return $line =~ /^[+-]/ ? 1 : 0;
}

sub cli_cmd {
    my ($self, @args) = @_;
    my @auth;
    if (defined $self->{opt}{user}) {
        @auth = ('--user', $self->{opt}{user},
                 '--pass', $self->{opt}{password} // '');
    } elsif (defined $self->{opt}{password}) {
        @auth = ('-a', $self->{opt}{password});
    }
    return ($DG::Harness::REDIS_CLI, '-h', '127.0.0.1', '-p', $self->{port},
        @auth, (@auth ? '--no-auth-warning' : ()), @args);
}

# redis-cli with authentication and @args; its stdout, chomped.
sub cli {
    my ($self, @args) = @_;
    my @cmd = $self->cli_cmd(@args);
    open my $fh, '-|', @cmd or die "redis-cli: $!";
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    $out =~ s/\n\z//;
    return $out;
}

# Many commands through one redis-cli, one a line (arguments without
# blanks); its output lines, chomped.
sub cli_pipe {
    my ($self, @lines) = @_;
    my ($tmp, $file) = tempfile(UNLINK => 1);
    print $tmp map { "$_\n" } @lines;
    close $tmp;
    my @cmd = $self->cli_cmd;
    my $pid = open(my $out, '-|') // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', $file or die "$file: $!";
        exec { $cmd[0] } @cmd or die "exec $cmd[0]: $!";
    }
    my @out = <$out>;
    close $out;
    chomp @out;
    return @out;
}

sub pause  { my $s = shift; kill 'STOP', $s->{pid} if $s->{pid}; $s }
sub resume { my $s = shift; kill 'CONT', $s->{pid} if $s->{pid}; $s }


###########################################################################
package DG::Harness::Upstream;
# tools/mock_llm.pl on a free port.  start(delay => MS) slows every answer.
# requests() lists what it received (one _echo hash each, with "time").
use strict;
use warnings;
use Time::HiRes qw(sleep time);
our @ISA = ('DG::Harness::Server');

sub _what { 'mock_llm.pl' }

# _launch dies when the mock does not start: no retry
sub _relaunch { $_[0]->_launch($_[0]{port}); undef }

sub start {
    my ($class, %opt) = @_;
    my $self = bless { opt => \%opt,
        dir => DG::Harness::tempdir_for('upstream') }, $class;
    $self->_launch(0);
    DG::Harness::_register($self);
    return $self;
}

sub port { $_[0]{port} }
sub addr { '127.0.0.1:' . $_[0]{port} }
sub log  { DG::Harness::slurp("$_[0]{dir}/mock.log") }

sub _launch {
    my ($self, $port) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my @cmd = ($^X, "$DG::Harness::ROOT/tools/mock_llm.pl", '--port', $port,
        '--log', "$self->{dir}/requests.jsonl", '--verbose',
        ($self->{opt}{delay} ? ('--delay', $self->{opt}{delay}) : ()));
    $self->{pid} = DG::Harness::_spawn(cmd => \@cmd, stdout_fh => $w,
        stderr => "$self->{dir}/mock.log");
    close $w;
    my $sel = IO::Select->new($r);
    my $line = '';
    my $deadline = time + 10;
    while (time < $deadline && $line !~ /\n/) {
        last unless $sel->can_read($deadline - time);
        sysread($r, $line, 256, length $line) or last;
    }
    close $r;
    if ($line =~ /^listening on (\d+)/) {
        $self->{port} = $1;
        return;
    }
    DG::Harness::_reap($self->{pid}, 'KILL');
    $self->{pid} = undef;
    die "mock_llm.pl did not start: $line " . $self->log . "\n";
}

sub requests {
    my ($self) = @_;
    my $text = DG::Harness::slurp("$self->{dir}/requests.jsonl");
    return map { DG::Harness::json_decode($_) } grep { length }
        split /\n/, $text;
}


###########################################################################
package DG::Harness::Nginx;
# nginx (master + workers, daemon off) with the module loaded.
#   start(http => $text, upstream => $up, redis => $redis, workers => 1,
#         log_level => 'info', main => $main_context_text,
#         events => $events_text, access_log_format => $log_format,
#         module => 0 (do not load the module), timeout => 10)
# Placeholders in http / main: %%PORT%% (listen port), %%PORT2%%,
# %%PORT3%%.. (more free ports: $ngx->port(2)), %%UPSTREAM%%, %%REDIS%%
# (127.0.0.1:port), %%REDIS_PORT%%, %%DIR%% (the nginx directory),
# %%ROOT%% (the repository), %%PROXY_VARS%% ($DG::Harness::PROXY_VARS).
use strict;
use warnings;
use Time::HiRes qw(sleep time);
our @ISA = ('DG::Harness::Server');

sub _what         { 'nginx' }
sub _stop_timeout { 10 }
sub _busy         { qr/Address already in use/ }
sub _relaunch     { $_[0]->_launch }

sub start {
    my ($class, %opt) = @_;
    my $self;
    for my $try (1 .. 4) {
        $self = $class->_prepare(%opt);
        my $err = $self->_launch;
        last unless $err;
        die "nginx did not start:\n$err\n"
            if $try == 4 || $err !~ /Address already in use/;
    }
    DG::Harness::_register($self);
    return $self;
}

# Makes the directory and writes nginx.conf; returns the (not yet
# running) object.
sub _prepare {
    my ($class, %opt) = @_;
    die "Nginx: http => text is required\n" unless defined $opt{http};
    my $self = bless { opt => \%opt, dir => DG::Harness::tempdir_for('nginx'),
        ports => { 1 => $opt{port} // DG::Harness::free_port() } }, $class;
    my $conf = $self->_conf;
    DG::Harness::spit("$self->{dir}/nginx.conf", $conf);
    return $self;
}

sub _subst {
    my ($self, $text) = @_;
    my $o = $self->{opt};
    $text =~ s{%%([A-Z_]+?)(\d*)%%}{
        my ($name, $n) = ($1, $2);
        if ($name eq 'PORT') {
            $n ||= 1;
            $self->{ports}{$n} //= DG::Harness::free_port();
        } elsif ($name eq 'UPSTREAM' && !length $n) {
            die "%%UPSTREAM%% used without upstream => \$up\n"
                unless $o->{upstream};
            $o->{upstream}->addr;
        } elsif ($name eq 'REDIS' && !length $n) {
            die "%%REDIS%% used without redis => \$redis\n" unless $o->{redis};
            $o->{redis}->addr;
        } elsif ($name eq 'REDIS_PORT' && !length $n) {
            die "%%REDIS_PORT%% used without redis => \$redis\n"
                unless $o->{redis};
            $o->{redis}->port;
        } elsif ($name eq 'DIR' && !length $n) {
            $self->{dir};
        } elsif ($name eq 'ROOT' && !length $n) {
            $DG::Harness::ROOT;
        } elsif ($name eq 'PROXY_VARS' && !length $n) {
            $DG::Harness::PROXY_VARS;
        } else {
            die "unknown placeholder %%$name$n%%\n";
        }
    }ge;
    return $text;
}

sub _conf {
    my ($self) = @_;
    my $o = $self->{opt};
    my $d = $self->{dir};
    my $module = DG::Harness::module_path();
    my $level = $o->{log_level} // 'info';
    my $workers = $o->{workers} // 1;
    my $format = $o->{access_log_format} // '$remote_addr "$request" $status '
        . '$request_length $body_bytes_sent "$http_user_agent"';
    $format =~ s/'/\\'/g;
    my $user = $> == 0 ? "user root root;\n" : '';
    my $main = $self->_subst($o->{main} // '');
    my $events = $o->{events} // '';
    my $http = $self->_subst($o->{http});
    my $load = ($o->{module} // 1) ? "load_module $module;\n" : '';
    mkdir "$d/$_" for qw(client_body proxy fastcgi uwsgi scgi);

    return <<"EOF";
# written by DG::Harness
${load}daemon off;
master_process on;
worker_processes $workers;
${user}pid $d/nginx.pid;
error_log $d/error.log $level;
$main

events {
    worker_connections 512;
    $events
}

http {
    client_body_temp_path $d/client_body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    log_format dg_harness '$format';
    access_log $d/access.log dg_harness;

$http
}
EOF
}

# Starts the processes; undef when nginx serves, else the error text.
sub _launch {
    my ($self) = @_;
    my $d = $self->{dir};
    my $logpos = -s "$d/error.log" // 0;
    $self->{pid} = DG::Harness::_spawn(
        cmd => [$DG::Harness::NGINX, '-p', "$d/", '-c', "$d/nginx.conf"],
        stdout => "$d/stderr.log", stderr => "$d/stderr.log");
    my $deadline = time + ($self->{opt}{timeout} // 10);
    my $why = 'timeout';
    while (time < $deadline) {
        unless (DG::Harness::_alive($self->{pid})) {
            $self->{pid} = undef;
            $why = 'nginx exited';
            last;
        }
        if (DG::Harness::port_open($self->port)
            && grep { $self->_is_worker($_) }
                DG::Harness::_children($self->{pid}))
        {
            return undef;
        }
        sleep 0.02;
    }
    DG::Harness::_reap($self->{pid}, 'KILL') if $self->{pid};
    $self->{pid} = undef;
    return "$why\n--- stderr:\n" . DG::Harness::slurp("$d/stderr.log")
        . "--- error.log:\n" . substr($self->error_log, $logpos);
}

sub _is_worker {
    my ($self, $pid) = @_;
    return DG::Harness::slurp("/proc/$pid/cmdline") =~ /worker process/;
}

sub port      { my ($s, $n) = @_; $s->{ports}{ $n || 1 } }
sub conf      { DG::Harness::slurp("$_[0]{dir}/nginx.conf") }
sub url       { my ($s, $path) = @_; "http://127.0.0.1:$s->{ports}{1}"
                    . ($path // '/') }
sub error_log { DG::Harness::slurp("$_[0]{dir}/error.log") }
sub workers   { my $s = shift; grep { $s->_is_worker($_) }
                    DG::Harness::_children($s->{pid}) }

# Length of the error log now; error_log_since($mark) is what came after.
sub mark            { -s "$_[0]{dir}/error.log" // 0 }
sub error_log_since { substr($_[0]->error_log, $_[1] // 0) }

sub access_log_lines {
    my ($self) = @_;
    return grep { length } split /\n/,
        DG::Harness::slurp("$self->{dir}/access.log");
}

# Error log lines telling of a crashed or killed worker, or of an alert.
sub crash_lines {
    my ($self) = @_;
    return grep { /exited on signal|\[alert\]|\[crit\]|core dumped/ }
        split /\n/, $self->error_log;
}

# HTTP::Tiny request to 127.0.0.1:port; returns its response hash.
sub request {
    my ($self, $method, $path, $args) = @_;
    my $http = HTTP::Tiny->new(timeout => $self->{opt}{request_timeout} // 10,
        max_redirect => 0, keep_alive => 0, agent => 'dg-harness/1');
    return $http->request($method, $self->url($path), $args || {});
}

# GET $path and decode the JSON answer (undef if it is not JSON).
sub get_json {
    my ($self, $path, $args) = @_;
    my $res = $self->request(GET => $path, $args);
    return $res->{status} == 200 ? DG::Harness::json_decode($res->{content})
        : undef;
}

sub raw { my ($s, @a) = @_; DG::Harness::raw_request($s->port, @a) }

# Rewrites nginx.conf (when given new options, e.g. http => ...) and
# reloads with SIGHUP; waits until only new workers run.  Dies when the
# new configuration is refused (the old one keeps running).
sub reload {
    my ($self, %opt) = @_;
    if (%opt) {
        $self->{opt} = { %{ $self->{opt} }, %opt };
        DG::Harness::spit("$self->{dir}/nginx.conf", $self->_conf);
    }
    my $mark = $self->mark;
    my %old = map { $_ => 1 } $self->workers;
    kill 'HUP', $self->{pid};
    my $deadline = time + 10;
    while (time < $deadline) {
        my $since = $self->error_log_since($mark);
        die "nginx refused the new configuration:\n$since\n"
            if $since =~ /\[emerg\]/;
        my @now = $self->workers;
        return $self if @now && !grep { $old{$_} } @now;
        sleep 0.05;
    }
    die "nginx reload timed out:\n" . $self->error_log_since($mark) . "\n";
}

1;
