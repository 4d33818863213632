#!/usr/bin/perl
# The module on one Redis and on a Redis Cluster of 3 masters and 3
# replicas (t/lib/DG/Cluster.pm), side by side in one run; then the
# failover timeline: a steady load, one master SIGKILLed, a row per
# second with the requests answered and the share that failed open.
#
#   perl bench/cluster.pl [--rounds 3] [--seconds 8] [--keys 1000]
#                         [--connections 32]
#                         [--only single,cluster,cluster-norepl,failover]
#                         [--kill-at 5] [--failover-seconds 20]
#
# The setup of bench/peers.pl (bench/peers.md): 2 vCPU, each nginx with
# 1 worker on CPU 1; wrk and every redis-server on CPU 0; wrk (-t1) POSTs
# 1 KB OpenAI chat bodies (97 different ones) from --keys API keys in
# turn to a location with distill_guard on, distill_guard_mode shadow,
# answered by empty_gif.  One nginx on each store, the same
# configuration but distill_guard_redis (timeout=200ms; cluster=on with
# a master as its seed); the stores: one Redis, the cluster, and
# (cluster-norepl) a cluster of 3 masters without replicas, which tells
# what replication costs.  Rounds interleave them; medians over the
# rounds, the best round in brackets.  CPU per request is utime + stime
# (/proc/<pid>/stat) over the requests wrk completed: of the nginx
# worker, of the one redis-server, of the cluster's processes together
# and of its three masters alone.
#
# Failover: wrk on the cluster's nginx for --failover-seconds; at
# --kill-at seconds a master (not the seed) gets SIGKILL.  The wrk script
# counts, per second of the wall clock, the answers, those whose
# X-Distill-Guard-Signals holds redis_unavailable (failed open) and the
# non-2xx; meanwhile CLUSTER NODES of a surviving master is read every
# 0.25 s for when the victim is flagged fail and when a replica serves
# its slots.  A benchmark: it asserts nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/lib";
use DG::Harness;
use DG::Cluster;
use DG::Bench;
use Getopt::Long;
use File::Temp qw(tempdir);
use POSIX qw(floor strftime);
use Time::HiRes qw(sleep time);

my %opt = (rounds => 3, seconds => 8, keys => 1000, connections => 32,
           warmup => 2, only => 'single,cluster,cluster-norepl,failover',
           'kill-at' => 5, 'failover-seconds' => 20);
GetOptions(\%opt, 'rounds=i', 'seconds=i', 'keys=i', 'connections=i',
           'warmup=i', 'only=s', 'kill-at=f', 'failover-seconds=i')
    or die "usage: $0 [--rounds N] [--seconds S] [--keys K] "
         . "[--connections C] [--only single,cluster,cluster-norepl,"
         . "failover] "
         . "[--kill-at S] [--failover-seconds S]\n";
my %only = map { $_ => 1 } split /,/, $opt{only};

die "wrk is missing: apt-get install wrk\n" unless `which wrk` =~ /\S/;
die "build the module first: make module\n" unless DG::Harness::have_module();

my $loadavg = (split ' ', DG::Harness::slurp('/proc/loadavg'))[0];

sub http { DG::Bench::guard_http(redis => "$_[0] timeout=200ms") }

my $dir = tempdir(CLEANUP => 1);
my $script = DG::Bench::wrk_script($dir, keys => $opt{keys});

my (%setup, @runs);

if ($only{single}) {
    my $redis = DG::Harness::Redis->start;
    my $ngx = DG::Harness::Nginx->start(redis => $redis, workers => 1,
        log_level => 'warn', http => http('%%REDIS%%'));
    my ($worker) = $ngx->workers;
    DG::Bench::pin(1, $ngx->pid, $worker);
    DG::Bench::pin(0, $redis->pid);
    $setup{single} = { ngx => $ngx, redis => [$redis],
        label => 'one Redis',
        wrk => DG::Bench::Wrk->new(script => $script, cpu => 0,
            connections => $opt{connections}, url => $ngx->url(''),
            procs => { nginx => $worker, m0 => $redis->pid }) };
    push @runs, 'single';
}

# A cluster of 3 masters and $replicas replica(s) each, its own nginx
sub cluster_setup {
    my ($replicas, $label) = @_;
    my $cluster = DG::Cluster->start(replicas => $replicas);
    my @masters = $cluster->masters;
    my $ngx = DG::Harness::Nginx->start(workers => 1, log_level => 'warn',
        http => http($masters[0]->addr . ' cluster=on'));
    my ($worker) = $ngx->workers;
    DG::Bench::pin(1, $ngx->pid, $worker);
    DG::Bench::pin(0, map { $_->pid } $cluster->nodes);
    my %is_master = map { $_->port => 1 } @masters;
    my %procs = (nginx => $worker);
    for my $n ($cluster->nodes) {
        $procs{ ($is_master{ $n->port } ? 'm' : 'r') . $n->port } = $n->pid;
    }
    return { ngx => $ngx, cluster => $cluster, seed => $masters[0],
        label => $label,
        wrk => DG::Bench::Wrk->new(script => $script, cpu => 0,
            connections => $opt{connections}, url => $ngx->url(''),
            procs => \%procs) };
}

if ($only{cluster} || $only{failover}) {
    $setup{cluster} = cluster_setup(1,
        'Redis Cluster, 3 masters + 3 replicas');
    push @runs, 'cluster' if $only{cluster};
}
if ($only{'cluster-norepl'}) {
    $setup{'cluster-norepl'} = cluster_setup(0,
        'Redis Cluster, 3 masters, no replica');
    push @runs, 'cluster-norepl';
}

# CPU µs per request of the redis processes of a run: all, masters only
sub redis_cpu {
    my ($r) = @_;
    my ($all, $masters) = (0, 0);
    for my $p (keys %{ $r->{cpu} }) {
        next if $p eq 'nginx';
        $all += $r->{cpu}{$p};
        $masters += $r->{cpu}{$p} if $p =~ /^m/;
    }
    return ($all, $masters);
}

my %res;
if (@runs) {
    # each once, to load the scripts and open the connections
    $setup{$_}{wrk}->run('/guard', $opt{warmup}) for @runs;
    for my $round (1 .. $opt{rounds}) {
        for my $name (@runs) {
            my $r = $setup{$name}{wrk}->run('/guard', $opt{seconds});
            die "$name: $r->{non2xx} non-2xx answers, $r->{errors} errors\n"
                if $r->{non2xx} || $r->{errors};
            @$r{qw(redis_all redis_masters)} = redis_cpu($r);
            push @{ $res{$name} }, $r;
            printf STDERR "round %d %-14s %8.0f req/s  nginx %5.1f us/req  "
                . "redis %5.1f us/req (masters %5.1f)  latency p50 %s "
                . "p99 %s\n", $round, $name, $r->{rps}, $r->{cpu}{nginx},
                $r->{redis_all}, $r->{redis_masters}, $r->{p50}, $r->{p99};
        }
    }
}

printf "%s, %s, load average %s (1 min) before the run\n\n",
    strftime('%Y-%m-%d %H:%M UTC', gmtime), DG::Bench::machine(), $loadavg;

if (@runs) {
    printf "%d x %d s interleaved rounds, %d keys, %d connections\n\n",
        $opt{rounds}, $opt{seconds}, $opt{keys}, $opt{connections};
    print "| store | req/s | nginx CPU µs/req | Redis CPU µs/req, all "
        . "processes | of which masters | latency p50 / p99 |\n";
    print "|---|---:|---:|---:|---:|---:|\n";
    for my $name (@runs) {
        my $r = $res{$name};
        my @p = sort { $a->{rps} <=> $b->{rps} } @$r;
        my $mid = $p[$#p / 2];
        printf "| %s | %s | %s | %s | %s | %s / %s |\n", $setup{$name}{label},
            DG::Bench::commify(DG::Bench::median(map { $_->{rps} } @$r)),
            DG::Bench::cell([map { $_->{cpu}{nginx} } @$r]),
            DG::Bench::cell([map { $_->{redis_all} } @$r]),
            DG::Bench::cell([map { $_->{redis_masters} } @$r]),
            $mid->{p50}, $mid->{p99};
    }
    print "\n";
}

exit 0 unless $only{failover};

# The failover timeline.

my $tl = "$dir/timeline.lua";
DG::Harness::spit($tl, DG::Harness::slurp($script) . <<'LUA');

-- per second of the wall clock: answers, failed open, non-2xx; a
-- second's line is written when the next one starts (thread:get of a
-- table crashes wrk 4.1)
local sec, n, u, bad = 0, 0, 0, 0
response = function(status, headers, body)
    local s = os.time()
    if s ~= sec then
        if n > 0 then
            io.write(string.format("sec %d %d %d %d\n", sec, n, u, bad))
        end
        sec, n, u, bad = s, 0, 0, 0
    end
    n = n + 1
    for k, v in pairs(headers) do
        if k:lower() == "x-distill-guard-signals"
           and v:find("redis_unavailable", 1, true)
        then
            u = u + 1
        end
    end
    if status < 200 or status > 299 then
        bad = bad + 1
    end
end
LUA

my $cluster = $setup{cluster}{cluster};
my $seed = $setup{cluster}{seed};
my ($victim) = grep { $_ != $seed } $cluster->masters;
my @vslots = $cluster->slots_of($victim);
my ($observer) = grep { $_ != $victim } $cluster->masters;
my $ngx = $setup{cluster}{ngx};

my $secs = $opt{'failover-seconds'};
my $t_start = time;
my $wpid = open(my $wrk, '-|', 'taskset', '-c', 0, 'wrk', '-t1',
    "-c$opt{connections}", "-d${secs}s", '--latency', '-s', $tl,
    $ngx->url('/guard')) // die "wrk: $!\n";
sleep 0.05 while time < $t_start + $opt{'kill-at'};
my $t_kill = time;
$cluster->kill($victim);

# CLUSTER NODES of a surviving master: when the victim is flagged fail,
# when a replica serves its first slot
my ($t_fail, $t_promoted, $promoted);
while (time < $t_start + $secs) {
    for my $e (@{ $cluster->view($observer) }) {
        $t_fail //= time if $e->{id} eq $victim->id && $e->{flags}{fail};
        next if $e->{id} eq $victim->id || !$e->{flags}{master};
        if (grep { $_->[0] <= $vslots[0][0] && $_->[1] >= $vslots[0][0] }
            @{ $e->{slots} })
        {
            $t_promoted //= time;
            $promoted //= $e->{port};
        }
    }
    last if $t_promoted;
    sleep 0.25;
}
my $out = do { local $/; <$wrk> };
close $wrk;

my %sec;
for (split /\n/, $out) {
    my ($s, $n, $u, $bad) = /^sec (\d+) (\d+) (\d+) (\d+)$/ or next;
    $sec{$s} = [$n, $u, $bad];
}
my ($rps) = $out =~ /Requests\/sec:\s*([\d.]+)/;
my ($p99) = $out =~ /^\s+99%\s+(\S+)/m;
my ($max) = $out =~ /^\s+Latency\s+\S+\s+\S+\s+(\S+)/m;

printf "Failover: %d connections for %d s, master %d (slots %s) "
    . "SIGKILLed at %.1f s; the nginx's seed is %d\n\n",
    $opt{connections}, $secs, $victim->port,
    join(',', map { "$_->[0]-$_->[1]" } @vslots), $t_kill - $t_start,
    $seed->port;
printf "- flagged fail by %d at %+.2f s after the kill\n", $observer->port,
    $t_fail - $t_kill if $t_fail;
printf "- replica %d serving the slots at %+.2f s\n", $promoted,
    $t_promoted - $t_kill if $t_promoted;
print "- no promotion seen\n" unless $t_promoted;

my $k = floor($t_kill);
my @s = sort { $a <=> $b } keys %sec;
# the first and the last second are partial: left out
shift @s;
pop @s;
my $resumed;
for my $s (@s) {
    next if $s <= $k;
    if (!$sec{$s}[1]) { $resumed = $s; last }
}
printf "- first whole second without a request failed open: %+d s\n",
    $resumed - $k if defined $resumed;
printf "- over the run: %s req/s, latency p99 %s, max %s\n\n",
    DG::Bench::commify($rps // 0), $p99 // '?', $max // '?';

print "| second (kill in 0) | requests | failed open | non-2xx |\n";
print "|---:|---:|---:|---:|\n";
for my $s (@s) {
    my ($n, $u, $bad) = @{ $sec{$s} };
    printf "| %+d | %s | %.1f %% | %d |\n", $s - $k, DG::Bench::commify($n),
        $n ? 100 * $u / $n : 0, $bad;
}
