#!/usr/bin/perl
# How long other connections of a worker wait while large bodies are
# examined: one nginx worker, a loader sending 12 MB chat bodies back to
# back to a location with distill_guard_body_max 16m, and a probe sending
# small guarded requests one after the other on a keep-alive connection,
# timing each.  The probe's worst latency is the worst stall a request
# saw (its own Redis round trip included).  Three locations for the
# loader: the module off (nginx's own cost of receiving 12 MB), the
# module on.  A benchmark: it asserts nothing.
#
#   perl bench/stall.pl [--seconds 20] [--mb 12] [--loaders 1]
#   DG_MODULE=/path/to/other.so perl bench/stall.pl   (another build)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use DG::Harness;
use Getopt::Long;
use IO::Socket::INET;
use List::Util qw(max sum);
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);

my %opt = (seconds => 20, mb => 12, loaders => 1);
GetOptions(\%opt, 'seconds=i', 'mb=i', 'loaders=i')
    or die "usage: $0 [--seconds S] [--mb N] [--loaders N]\n";
die "build the module first: make module\n" unless DG::Harness::have_module();

my $redis = DG::Harness::Redis->start;

# the upstream: another nginx, without the module, that drops the body
my $sink = DG::Harness::Nginx->start(module => 0, http => <<'CONF');
    access_log off;
    client_max_body_size 0;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 "ok\n"; }
    }
CONF
my $sink_port = $sink->port;

my $ngx = DG::Harness::Nginx->start(redis => $redis, http => <<"CONF");
    distill_guard_secret bench-secret;
    distill_guard_redis %%REDIS%% timeout=50ms;
    distill_guard_window 1h;
    access_log off;
    client_max_body_size 20m;

    server {
        listen 127.0.0.1:%%PORT%%;
        location /big/ {
            distill_guard on;
            distill_guard_mode shadow;
            distill_guard_body_max 16m;
            proxy_pass http://127.0.0.1:$sink_port;
        }
        location /bigoff/ {
            proxy_pass http://127.0.0.1:$sink_port;
        }
        location /small/ {
            distill_guard on;
            distill_guard_mode shadow;
            proxy_pass http://127.0.0.1:$sink_port;
        }
        location = /dg-stats { distill_guard_stats; }
    }
CONF
my $port = $ngx->port;

sub chat {
    my ($size, $n) = @_;
    my $head = '{"model":"gpt-4o","messages":[{"role":"user","content":"'
        . "request $n: ";
    my $tail = '"}]}';
    my $w = 'please review this paragraph about tidal energy and wind '
        x (1 + int($size / 50));
    return $head . substr($w, 0, $size - length($head) - length($tail))
        . $tail;
}

sub request_bytes {
    my ($path, $key, $body) = @_;
    return "POST $path HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer $key\r\nContent-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
}

# one keep-alive request and its response; returns the status
sub roundtrip {
    my ($s, $bytes) = @_;
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($s, $bytes, length($bytes) - $off, $off);
        return 0 unless defined $n && $n > 0;
        $off += $n;
    }
    my $in = '';
    while (1) {
        my $n = sysread($s, $in, 65536, length $in);
        return 0 unless $n;
        my $end = index($in, "\r\n\r\n");
        next if $end < 0;
        my ($len) = substr($in, 0, $end) =~ /Content-Length:\s*(\d+)/i;
        return 0 unless defined $len;
        next if length($in) < $end + 4 + $len;
        my ($st) = $in =~ m{^HTTP/1\.\d (\d+)};
        return $st;
    }
}

sub connect_ngx {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp') or die "connect: $@";
    binmode $s;
    return $s;
}

# loaders send large bodies until $until; each prints its count
sub start_loaders {
    my ($path, $until) = @_;
    my @pids;
    for my $l (1 .. $opt{loaders}) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $bytes = request_bytes($path, "sk-stall-big-$l",
                chat($opt{mb} * 1024 * 1024, $l));
            my $s = connect_ngx();
            my $n = 0;
            while (time < $until) {
                if (roundtrip($s, $bytes) != 200) {
                    close $s;
                    $s = connect_ngx();
                    roundtrip($s, $bytes) == 200 or last;
                }
                $n++;
            }
            syswrite STDOUT, "    loader $l: $n bodies of $opt{mb} MB\n";
            _exit(0);
        }
        push @pids, $pid;
    }
    return @pids;
}

sub probe {
    my ($seconds) = @_;
    my $s = connect_ngx();
    my (@lat, $bad);
    my $until = time + $seconds;
    my $i = 0;
    while (time < $until) {
        my $bytes = request_bytes('/small/v1/chat/completions',
            'sk-stall-probe-' . ($i % 50), chat(600, $i));
        my $t0 = time;
        my $st = roundtrip($s, $bytes);
        if (!$st) {
            # keepalive_requests (1000) closed it: again on a new one
            close $s;
            $s = connect_ngx();
            $t0 = time;
            $st = roundtrip($s, $bytes);
        }
        push @lat, (time - $t0) * 1000;
        $bad++ if $st != 200;
        $i++;
        sleep 0.002;
    }
    @lat = sort { $a <=> $b } @lat;
    return { n => scalar @lat, bad => $bad // 0,
        p50 => $lat[int(@lat * 0.5)], p99 => $lat[int(@lat * 0.99)],
        max => $lat[-1] };
}

sub run {
    my ($label, $path) = @_;
    my $before = $ngx->get_json('/dg-stats') || {};
    my @pids = $path
        ? start_loaders($path, time + $opt{seconds}) : ();
    sleep 0.5 if @pids;
    my $r = probe($opt{seconds} - ($path ? 1 : 0));
    waitpid $_, 0 for @pids;
    my $after = $ngx->get_json('/dg-stats') || {};
    my %d = map { $_ => ($after->{redis}{$_} // 0)
        - ($before->{redis}{$_} // 0) } qw(timeouts unavailable);
    printf "%-34s probe %5d req  p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms"
        . "  non-200 %d  redis timeouts %d\n", $label, $r->{n}, $r->{p50},
        $r->{p99}, $r->{max}, $r->{bad}, $d{timeouts};
}

print "module: ", DG::Harness::module_path(), "\n";
printf "%d s per run, %d loader(s), %d MB bodies, 1 nginx worker\n",
    $opt{seconds}, $opt{loaders}, $opt{mb};
run('idle (no large bodies)', undef);
run('large bodies, module off', '/bigoff/v1/chat/completions');
run('large bodies, module on (16m)', '/big/v1/chat/completions');
