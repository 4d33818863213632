#!/usr/bin/perl
# The module from 1 to 1 M active API keys: memory per active key in
# Redis, and Redis CPU, nginx CPU and gateway latency per request at each
# number of keys.
#
#   perl bench/scale.pl [--keys 1,1000,100000,1000000] [--seconds 8]
#                       [--connections 32]
#
# The setup of bench/peers.pl (nginx worker on CPU 1, wrk and
# redis-server on CPU 0, 1 KB OpenAI chat bodies, empty_gif, shadow
# mode).  The bodies continue a conversation (a history is claimed), so
# keys share no one-shot template and are not flagged: what an ordinary
# active key costs.  For each number of keys N: FLUSHALL; a fill run
# that sends every one of the N keys at least one request (keys in
# turn); the growth of used_memory over the keys then in Redis, per
# window key; then a measured run of --seconds with keys drawn at random
# among the N.
# A benchmark: it asserts nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/lib";
use DG::Harness;
use DG::Bench;
use Getopt::Long;
use File::Temp qw(tempdir);
use POSIX qw(ceil strftime);

my %opt = (keys => '1,1000,100000,1000000', seconds => 8,
           connections => 32);
GetOptions(\%opt, 'keys=s', 'seconds=i', 'connections=i')
    or die "usage: $0 [--keys LIST] [--seconds S] [--connections C]\n";

die "wrk is missing: apt-get install wrk\n" unless `which wrk` =~ /\S/;
die "build the module first: make module\n" unless DG::Harness::have_module();

my $redis = DG::Harness::Redis->start(conf => "maxmemory 0\n");
DG::Bench::pin(0, $redis->pid);

my $dir = tempdir(CLEANUP => 1);

# a fresh nginx for each number of keys: a worker that knew a key's
# window before the FLUSHALL finds it gone at the key's next request and
# leaves it to the script at the one after, which the fill (one request
# a key) would not send
my ($ngx, $w);
sub gateway {
    $ngx->stop if $ngx;
    $ngx = DG::Harness::Nginx->start(redis => $redis, workers => 1,
        log_level => 'warn', http => DG::Bench::guard_http(
            redis => '%%REDIS%% timeout=1s max_inflight=100000'));
    my ($worker) = $ngx->workers;
    DG::Bench::pin(1, $ngx->pid, $worker);
    $w = DG::Bench::Wrk->new(cpu => 0, connections => $opt{connections},
        url => $ngx->url(''), procs => { nginx => $worker,
                                         redis => $redis->pid });
}

sub info {
    my %s = map { /^(\w+):(\S+)/ ? ($1, $2) : () }
        split /\r?\n/, $redis->cli('INFO', 'all');
    return \%s;
}

# window keys: the module's per-key values, not the cross-key counters
sub window_keys {
    my $n = 0;
    my $cursor = 0;
    do {
        my @r = split /\n/, $redis->cli('SCAN', $cursor, 'MATCH',
                                        'dg:{*}:w', 'COUNT', 10000);
        $cursor = shift @r;
        $n += @r;
    } while ($cursor);
    return $n;
}

my $load;               # before the first run
my $rate = 5000;        # fill rate guess, corrected by every run
my @rows;
for my $n (split /,/, $opt{keys}) {
    $redis->cli('FLUSHALL');
    gateway();
    $load //= $w->{loadavg};
    my $base = info()->{used_memory};

    # keys in turn; a run that did not reach them all goes on where it
    # stopped (each wrk run starts its sequence anew)
    my $left = $n;
    my $fill_s = 0;
    while ($left > 0) {
        my $s = ceil(1.2 * $left / $rate) || 1;
        my $seq = DG::Bench::wrk_script($dir, keys => $n, history => 1,
                                        start => $n - $left);
        my $r = $w->run('/guard', $s, $seq);
        $rate = $r->{rps} if $r->{rps} > 100;
        $fill_s += $s;
        $left = $n - window_keys();
    }
    my $i = info();
    my $wk = window_keys();
    my $per_key = ($i->{used_memory} - $base) / $wk;

    my $r = $w->run('/guard', $opt{seconds},
                    DG::Bench::wrk_script($dir, keys => $n, random => 1,
                                          history => 1));
    die "$r->{non2xx} non-2xx answers\n" if $r->{non2xx};
    my ($keys) = ($i->{db0} // '') =~ /keys=(\d+)/;
    push @rows, [$n, $per_key, $r, $keys // 0];
    printf STDERR "%8d keys: fill %d s, %.0f B per key (%d Redis keys), "
        . "%.0f req/s, nginx %.1f us/req, redis %.1f us/req, latency p50 "
        . "%s p99 %s\n", $n, $fill_s, $per_key, $keys // 0, $r->{rps},
        $r->{cpu}{nginx}, $r->{cpu}{redis}, $r->{p50}, $r->{p99};
}

printf "%s, %s, %d s per point, %d connections, random keys among N\n\n",
    strftime('%Y-%m-%d %H:%M UTC', gmtime), DG::Bench::machine(),
    $opt{seconds}, $opt{connections};
print "| active keys | bytes per key (used_memory) | Redis keys | req/s "
    . "| nginx CPU µs/req | Redis CPU µs/req | latency p50 | p99 |\n";
print "|---:|---:|---:|---:|---:|---:|---:|---:|\n";
for my $row (@rows) {
    my ($n, $per_key, $r, $keys) = @$row;
    printf "| %s | %s | %s | %s | %.1f | %.1f | %s | %s |\n",
        DG::Bench::commify($n), DG::Bench::commify($per_key),
        DG::Bench::commify($keys), DG::Bench::commify($r->{rps}),
        $r->{cpu}{nginx}, $r->{cpu}{redis}, $r->{p50}, $r->{p99};
}
printf "\nload average before the run: %s\n", $load;
