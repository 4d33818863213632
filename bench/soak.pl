#!/usr/bin/perl
# A fault soak: steady load on a guarded location of a real nginx (two
# workers) and redis-server while Redis goes wrong on a fixed schedule,
# every --period seconds (30):
#
#   +0 s   killed (SIGKILL) and started again on its port
#   +8 s   frozen (SIGSTOP) for 5 s
#   +16 s  filled: maxmemory set just above what it holds, for 5 s; the
#          window writes fill the rest, good and bad replies interleave
#   +24 s  SCRIPT FLUSH and CLIENT KILL TYPE normal (nginx's connections)
#
# The load: --clients keep-alive connections (4), each sending small chat
# requests one after the other (--pause-ms 2 between), over 300 keys.  It
# prints: worker restarts (worker pids sampled every second, and "exited
# on signal" in the error log), latency p50 / p99 / max and the requests
# over timeout= + 100 ms, the 5xx and failed requests, error-log lines per
# second (mean and worst second), and per kind of fault the time to
# recover: from the end of the fault to the first request started after
# it that Redis judged (no redis_unavailable).  A benchmark: it asserts
# nothing.  Run it on a quiet machine: it measures the machine too.
#
#   perl bench/soak.pl [--minutes 30] [--period 30] [--clients 4]
#                      [--pause-ms 2] [--timeout-ms 50] [--keep DIR]
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use DG::Harness;
use Getopt::Long;
use IO::Select;
use IO::Socket::INET;
use List::Util qw(max min sum);
use POSIX qw(_exit floor strftime);
use Time::HiRes qw(time sleep);

my %opt = (minutes => 30, period => 30, clients => 4, 'pause-ms' => 2,
    'timeout-ms' => 50);
GetOptions(\%opt, 'minutes=f', 'period=i', 'clients=i', 'pause-ms=f',
    'timeout-ms=i', 'keep=s')
    or die "usage: $0 [--minutes M] [--period S] [--clients N] "
        . "[--pause-ms MS] [--timeout-ms MS] [--keep DIR]\n";
die "build the module first: make module\n" unless DG::Harness::have_module();

$| = 1;
my $duration = $opt{minutes} * 60;
my $limit_ms = $opt{'timeout-ms'} + 100;

my $redis = DG::Harness::Redis->start;
my $ngx = DG::Harness::Nginx->start(redis => $redis, workers => 2,
    log_level => 'notice', http => <<"CONF");
    distill_guard_secret soak-secret;
    distill_guard_redis %%REDIS%% timeout=$opt{'timeout-ms'}ms;
    distill_guard_window 10m;
    access_log off;
    keepalive_requests 1000000;

    server {
        listen 127.0.0.1:%%PORT2%%;
        location / {
            return 200 '{"choices":[{"message":{"content":"ok"}}]}';
        }
    }

    server {
        listen 127.0.0.1:%%PORT%%;
        location /v1/ {
            distill_guard on;
            proxy_pass http://127.0.0.1:%%PORT2%%;
        }
        location = /dg-stats { distill_guard_stats; }
    }
CONF
my $port = $ngx->port;
my $dir = $opt{keep} // DG::Harness::tempdir_for('soak');
mkdir $dir;

my @topics = qw(tides volcanoes tariffs sonnets enzymes glaciers inflation
    recursion magnetism baroque mitochondria tectonics calculus feudalism);

sub request_bytes {
    my ($i, $c) = @_;
    # each key stays on its topic: honest traffic, not tagged
    my $key = ($i * 7 + $c) % 300;
    my $body = '{"model":"gpt-4o","messages":[{"role":"user","content":"'
        . "client $c question $i about $topics[$key % @topics], "
        . 'explain it briefly with an example please"}]}';
    return 'POST /v1/chat/completions HTTP/1.1' . "\r\nHost: localhost\r\n"
        . "Authorization: Bearer sk-soak-$key\r\n"
        . "Content-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
}

# one request on $s; returns (status, unavailable) or (0) on a failure
sub roundtrip {
    my ($s, $bytes) = @_;
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($s, $bytes, length($bytes) - $off, $off);
        return (0) unless defined $n && $n > 0;
        $off += $n;
    }
    my $sel = IO::Select->new($s);
    my $in = '';
    my $deadline = time + 10;
    while (1) {
        my $left = $deadline - time;
        return (0) if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, $in, 65536, length $in);
        return (0) unless $n;
        my $end = index($in, "\r\n\r\n");
        next if $end < 0;
        my $head = substr($in, 0, $end);
        my ($len) = $head =~ /Content-Length:\s*(\d+)/i;
        next if defined $len && length($in) < $end + 4 + $len;
        my ($st) = $head =~ m{^HTTP/1\.\d (\d+)};
        my $un = $head =~ /X-Distill-Guard-Signals:[^\r\n]*redis_unavailable/i
            ? 1 : 0;
        return ($st // 0, $un);
    }
}

sub connect_ngx {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 5) or return;
    binmode $s;
    return $s;
}

# the clients: each writes "start latency_ms status unavailable" lines
my $t_start = time;
my $t_end = $t_start + $duration;
my @clients;
for my $c (1 .. $opt{clients}) {
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $SIG{TERM} = sub { _exit(0) };
        open my $out, '>', "$dir/client-$c.log" or _exit(1);
        my $s = connect_ngx();
        my $i = 0;
        while (time < $t_end) {
            my $bytes = request_bytes($i++, $c);
            my $t0 = time;
            my ($st, $un) = $s ? roundtrip($s, $bytes) : (0);
            my $lat = (time - $t0) * 1000;
            printf $out "%.4f %.2f %d %d\n", $t0, $lat, $st, $un // 0;
            if (!$st) {
                close $s if $s;
                sleep 0.01;
                $s = connect_ngx();
            }
            sleep $opt{'pause-ms'} / 1000 if $opt{'pause-ms'};
        }
        close $out;
        _exit(0);
    }
    push @clients, $pid;
}

# the faults, on the schedule; each recorded with when Redis is whole again
my (@faults, %pids);
my %initial = map { $_ => 1 } $ngx->workers;
printf "soak: %.0f min, faults every %d s, %d clients, timeout=%d ms; "
    . "nginx workers %s; logs in %s\n", $opt{minutes}, $opt{period},
    $opt{clients}, $opt{'timeout-ms'}, join(',', sort keys %initial), $dir;

sub at {
    my ($t) = @_;
    while (time < $t) {
        $pids{$_} = 1 for $ngx->workers;
        sleep min(1, max(0, $t - time));
    }
}

sub fault {
    my ($kind, $t0, $t1) = @_;
    push @faults, { kind => $kind, start => $t0, end => $t1 };
    printf "%7.1f s  %-6s %.2f s\n", $t0 - $t_start, $kind, $t1 - $t0;
}

at($t_start + 5);
for (my $base = $t_start + 5; $base + $opt{period} <= $t_end;
     $base += $opt{period})
{
    at($base);
    my $t0 = time;
    kill 'KILL', $redis->pid;
    $redis->restart;
    fault('kill', $t0, time);

    at($base + 8);
    $t0 = time;
    $redis->pause;
    at($t0 + 5);
    $redis->resume;
    fault('stop', $t0, time);

    at($base + 16);
    $t0 = time;
    my ($used) = $redis->cli('INFO', 'memory') =~ /^used_memory:(\d+)/m;
    $redis->cli('CONFIG', 'SET', 'maxmemory', ($used // 0) + 16 * 1024);
    at($t0 + 5);
    $redis->cli('CONFIG', 'SET', 'maxmemory', 0);
    fault('oom', $t0, time);

    at($base + 24);
    $t0 = time;
    $redis->cli('SCRIPT', 'FLUSH');
    $redis->cli('CLIENT', 'KILL', 'TYPE', 'normal');
    fault('flush', $t0, time);
}
at($t_end);
waitpid $_, 0 for @clients;
my $stats = $ngx->get_json('/dg-stats') || {};

# the requests
my @req;
for my $c (1 .. $opt{clients}) {
    open my $in, '<', "$dir/client-$c.log" or next;
    while (<$in>) {
        my ($t, $lat, $st, $un) = split;
        push @req, [$t, $lat, $st, $un];
    }
}
@req = sort { $a->[0] <=> $b->[0] } @req;
my @lat = sort { $a <=> $b } map { $_->[1] } @req;
my $n = @req;
my $pct = sub { $lat[min($#lat, floor(@lat * $_[0]))] // 0 };
my @slow = grep { $_->[1] > $limit_ms } @req;
my $s5xx = grep { $_->[2] >= 500 } @req;
my $failed = grep { $_->[2] == 0 } @req;
my $unavail = grep { $_->[3] } @req;

# the error log: lines per second
my (%per_sec, %err_sec);
my ($lines, $errs) = (0, 0);
for (split /\n/, $ngx->error_log) {
    my ($ts) = m{^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)} or next;
    $lines++;
    $per_sec{$ts}++;
    next unless /\[(?:warn|error|crit|alert|emerg)\]/;
    $errs++;
    $err_sec{$ts}++;
}
my ($worst_err) = sort { $err_sec{$b} <=> $err_sec{$a} } keys %err_sec;
my ($worst_ts) = sort { $per_sec{$b} <=> $per_sec{$a} } keys %per_sec;
DG::Harness::spit("$dir/error.log", $ngx->error_log) if $opt{keep};
my %kinds;
for (split /\n/, $ngx->error_log) {
    my ($m) = /\[\w+\] \d+#\d+: (?:\*\d+ )?(.*)/ or next;
    $m =~ s/, client: .*//;
    $m =~ s/\b[0-9a-f]{16}\b/<id>/g;
    $m =~ s/\d+/N/g;
    $kinds{ substr($m, 0, 110) }++;
}
my @crash = grep { /exited on signal|\[alert\]|\[emerg\]/ }
    split /\n/, $ngx->error_log;
my $restarts = grep { !$initial{$_} } keys %pids;

# time to recover, per fault
# (one walk: the faults and the requests are both in time order)
my %rec;
my $j = 0;
for my $f (@faults) {
    $j++ while $j < @req && ($req[$j][0] < $f->{end} || $req[$j][2] != 200
        || $req[$j][3]);
    my $r = $j < @req ? $req[$j][0] - $f->{end} : undef;
    push @{ $rec{ $f->{kind} } }, $r // 'never';
}

printf "\n== %s UTC, %.1f min, %d faults\n",
    strftime('%Y-%m-%d %H:%M', gmtime), (time - $t_start) / 60,
    scalar @faults;
printf "worker restarts: %d (workers seen %s; crash or alert lines: %d)\n",
    $restarts, join(',', sort keys %pids), scalar @crash;
print "  $_\n" for @crash[0 .. min(4, $#crash)];
printf "requests: %d (%.0f/s); 5xx: %d; failed (no answer): %d; "
    . "redis_unavailable: %d (%.1f %%)\n", $n, $n / $duration, $s5xx,
    $failed, $unavail, $n ? 100 * $unavail / $n : 0;
printf "latency ms: p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f; over "
    . "timeout+100 ms (%d ms): %d\n", $pct->(0.5), $pct->(0.99),
    $pct->(0.999), $lat[-1] // 0, $limit_ms, scalar @slow;
for my $s ((sort { $b->[1] <=> $a->[1] } @slow)[0 .. min(9, $#slow)]) {
    my ($near) = sort { abs($a->{start} - $s->[0])
        <=> abs($b->{start} - $s->[0]) } @faults;
    printf "  slow: %.1f ms at %.1f s (nearest fault %s at %.1f s)\n",
        $s->[1], $s->[0] - $t_start, $near ? $near->{kind} : '-',
        $near ? $near->{start} - $t_start : 0;
}
printf "error log: %d lines, %.2f per second, worst second %d (%s)\n",
    $lines, $lines / $duration, $worst_ts ? $per_sec{$worst_ts} : 0,
    $worst_ts // '-';
printf "  of them warn or worse: %d, %.2f per second, worst second %d\n",
    $errs, $errs / $duration, $worst_err ? $err_sec{$worst_err} : 0;
printf "  %6d  %s\n", $kinds{$_}, $_
    for (sort { $kinds{$b} <=> $kinds{$a} } keys %kinds)[0 .. 7];
for my $k (qw(kill stop oom flush)) {
    my @v = @{ $rec{$k} || [] } or next;
    my @num = sort { $a <=> $b } grep { $_ ne 'never' } @v;
    printf "recover after %-5s: %d faults, median %.2f s, max %.2f s, "
        . "never %d\n", $k, scalar @v, @num ? $num[int(@num / 2)] : 0,
        @num ? $num[-1] : 0, scalar(@v) - scalar(@num);
}
my $r = $stats->{redis} || {};
printf "module stats: requests %s, redis errors %s, timeouts %s, "
    . "unavailable %s, reconnects %s, latency p99 %s us\n",
    map { $_ // '?' } $stats->{requests}, $r->{errors}, $r->{timeouts},
    $r->{unavailable}, $r->{reconnects}, $r->{latency_p99_us};
