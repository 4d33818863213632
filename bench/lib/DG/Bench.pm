package DG::Bench;
# Helpers of the benchmarks that drive nginx with wrk: CPU pinning, the
# wrk request script, CPU time per process from /proc, medians.
#
#   my $w = DG::Bench::Wrk->new(script => $file, url => $base, cpu => 0,
#               connections => 32, procs => { nginx => $pid, ... });
#   my $r = $w->run('/path', $seconds);
#   # $r: rps, requests, non2xx, errors, p50, p99 (wrk's text),
#   #     cpu => { name => us per request }, cpu_s => { name => seconds }
use strict;
use warnings;
use POSIX qw(sysconf);
use Time::HiRes qw(time);

my $TCK = sysconf(POSIX::_SC_CLK_TCK()) || 100;

# taskset each pid (and its threads) onto one CPU
sub pin {
    my ($cpu, @pids) = @_;
    for my $pid (@pids) {
        system("taskset -a -pc $cpu $pid >/dev/null") == 0
            or die "taskset $cpu $pid failed\n";
    }
}

# utime + stime of a process, in seconds
sub cpu_seconds {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or die "/proc/$pid/stat: $!\n";
    my $stat = <$fh>;
    close $fh;
    $stat =~ s/^.*\)\s+//s;             # the name may hold spaces
    my @f = split ' ', $stat;
    return ($f[11] + $f[12]) / $TCK;    # fields 14 and 15 of stat(5)
}

# A wrk script: POSTs of 1 KB OpenAI chat bodies (97 different ones, so
# that topics and templates vary), API keys 0 .. keys-1 in turn, or at
# random with random => 1, from key start => N on.  With history => 1
# the last user turn follows
# an earlier exchange (a conversation: no one-shot template to count
# across keys).  Returns its path.
sub wrk_script {
    my ($dir, %o) = @_;
    my $keys = $o{keys} // 1000;
    my $pick = $o{random} ? "math.random(0, $keys - 1)" : "n % $keys";
    my $turns = $o{history}
        ? '{"role":"user","content":"Can you help me with a question?"},'
          . '{"role":"assistant","content":"Of course, what is it?"},'
        : '';
    my $start = $o{start} // 0;
    my $path = "$dir/chat-$keys-$start" . ($o{random} ? '-random' : '')
        . ($o{history} ? '-history' : '') . '.lua';
    open my $fh, '>', $path or die "$path: $!\n";
    print $fh <<LUA;
-- 1 KB OpenAI chat bodies, 97 of them; $keys API keys
local words = { 'river', 'matrix', 'protein', 'sonnet', 'ledger',
    'compiler', 'glacier', 'tariff', 'enzyme', 'orbit', 'harvest',
    'dialect', 'voltage', 'mortgage', 'fresco', 'cipher', 'monsoon',
    'ligament', 'auction', 'quartz', 'sermon', 'vaccine', 'turbine' }
local bodies = {}
for b = 1, 97 do
    local t = {}
    local i = b
    while #table.concat(t, ' ') < 900 do
        i = (i * 7 + 3) % #words + 1
        t[#t + 1] = words[i] .. (b * 31 + #t) % 1000
    end
    bodies[b] = '{"model":"gpt-4o-mini","messages":[{"role":"system",'
        .. '"content":"You are a helpful assistant."},${turns}{"role":"user",'
        .. '"content":"Question ' .. b .. ': ' .. table.concat(t, ' ')
        .. '"}],"max_tokens":256}'
end
local n = $start - 1
request = function()
    n = n + 1
    return wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer sk-bench-" .. ($pick)
    }, bodies[n % 97 + 1])
end
LUA
    close $fh;
    return $path;
}

# The http{} text of the benchmarks' guarded server: one location
# /guard in shadow mode (every request scored, nothing refused) answered
# by empty_gif (a POST gets 405, which discards the body and is turned
# into the GIF).  $redis: the arguments of distill_guard_redis (default
# %%REDIS%%, the harness's Redis); extra => text inside server{}.
sub guard_http {
    my (%o) = @_;
    my $redis = $o{redis} // '%%REDIS%% timeout=200ms';
    my $extra = $o{extra} // '';
    return <<"CONF";
    distill_guard_secret bench-secret;
    distill_guard_redis $redis;
    distill_guard_window 1h;
    access_log off;
    client_body_buffer_size 16k;
    client_max_body_size 1m;

    server {
        listen 127.0.0.1:%%PORT%%;

        # empty_gif answers GET and HEAD only: a POST gets 405, which
        # discards the body and is turned into the GIF
        error_page 405 =200 /gif;

        location = /gif {
            empty_gif;
        }

        location /guard {
            distill_guard on;
            distill_guard_mode shadow;
            empty_gif;
        }
$extra    }
CONF
}

sub median {
    my @v = sort { $a <=> $b } @_;
    return 0 unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

# "median (best)" of CPU figures: the best is the lowest
sub cell {
    my ($v) = @_;
    my @s = sort { $a <=> $b } @$v;
    return sprintf '%.1f (%.1f)', median(@s), $s[0];
}

sub commify {
    my $n = sprintf '%.0f', shift;
    1 while $n =~ s/^(\d+)(\d{3})/$1,$2/;
    return $n;
}

sub machine {
    my $cpus = `nproc` + 0;
    my ($model) = (`grep -m1 'model name' /proc/cpuinfo` =~ /:\s*(.*)/);
    return "$cpus vCPU" . ($model ? " $model" : '');
}


package DG::Bench::Wrk;

sub new {
    my ($class, %o) = @_;
    my $self = bless { %o }, $class;
    $self->{connections} //= 32;
    $self->{loadavg} = (split ' ', DG::Harness::slurp('/proc/loadavg'))[0]
        . ' (1 min)';
    return $self;
}

sub run {
    my ($self, $path, $seconds, $script) = @_;
    $script //= $self->{script};
    my %c0 = map { $_ => DG::Bench::cpu_seconds($self->{procs}{$_}) }
        keys %{ $self->{procs} };
    my $cmd = "taskset -c $self->{cpu} wrk -t1 -c$self->{connections} "
            . "-d${seconds}s --latency -s $script $self->{url}$path";
    my $out = `$cmd 2>&1`;
    my %c1 = map { $_ => DG::Bench::cpu_seconds($self->{procs}{$_}) }
        keys %{ $self->{procs} };
    my ($requests) = $out =~ /(\d+) requests in/;
    my ($rps) = $out =~ /Requests\/sec:\s*([\d.]+)/;
    die "wrk failed:\n$out" unless defined $rps && $requests;
    my ($p50) = $out =~ /^\s+50%\s+(\S+)/m;
    my ($p99) = $out =~ /^\s+99%\s+(\S+)/m;
    my ($non2xx) = $out =~ /Non-2xx or 3xx responses:\s*(\d+)/;
    my ($errors) = $out =~ /Socket errors:.*?read (\d+)/;
    my %r = (rps => $rps, requests => $requests, non2xx => $non2xx // 0,
             errors => $errors // 0, p50 => $p50, p99 => $p99, out => $out);
    for my $p (keys %c0) {
        $r{cpu_s}{$p} = $c1{$p} - $c0{$p};
        $r{cpu}{$p} = 1e6 * $r{cpu_s}{$p} / $requests;
    }
    return \%r;
}

1;
