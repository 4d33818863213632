#!/usr/bin/perl
# replay.pl: evaluation replay of labeled traffic scenarios through nginx
# with the distill-guard module.
#
#   tools/replay.pl [--corpus DIR] [--window SECONDS] [--seed N]
#                   [--scale F] [--only NAME,NAME] [--workers N]
#                   [--conf-extra 'directives;'] [--conf-drop NAME]
#                   [--headers-from-vars] [--hydra-nets N] [--module FILE]
#                   [--json FILE] [--check] [--keep] [--quiet] [--list]
#
# Starts its own redis-server, mock LLM upstream and nginx (t/lib/DG/
# Harness.pm), builds the scenarios (tools/Replay/Scenarios.pm) from the
# prompt corpora, compresses time so that the module's window of W
# seconds stands for an hour (real time x W/3600), replays every key's
# requests on one timeline, one at a time, and prints a Markdown table of
# what the module answered per scenario (tools/Replay/Report.pm) and the
# targets.  A conversation's next request is built when it is sent, from
# the answers its client actually got (tools/Replay/Conversation.pm): the
# mock upstream answers every request differently, and a refused turn
# stays out of the history.
#
# Options:
#   --corpus DIR      prompt corpora (default ../shared/data/prompts
#                     relative to the repository root)
#   --window W        distill_guard_window / _penalty in seconds: the
#                     compressed hour (default 60; a full run lasts about
#                     2.5 W)
#   --seed N          scenario seed (default 1): the same seed sends the
#                     same requests at the same times
#   --scale F         fraction of the scenario sizes (keys, requests,
#                     run length; default 1) for a quick run, e.g. 0.2
#   --only LIST       comma-separated scenario names (default: all of
#                     them; --list shows the names)
#   --conf-extra TXT  more http-level directives, e.g. for tuning:
#                     'distill_guard_weight coverage 0.5;'
#   --conf-drop NAME  leave the directive NAME out of the configuration
#                     (repeatable; for a module that does not know it)
#   --headers-from-vars  set the X-Distill-Guard-* headers with add_header
#                     from the module's variables (for a module without
#                     distill_guard_headers; implies --conf-drop of it)
#   --hydra-nets N    /24 networks the hydra's clients come from (default
#                     20, at most 120; 0: one per key)
#   --workers N       nginx worker processes (default 2)
#   --module FILE     the module .so (default build/ngx_distill_guard_
#                     module.so, or $DG_MODULE)
#   --json FILE       per-key details: every answer's status, score,
#                     action and signals
#   --check           exit 1 when a target is missed
#   --keep            leave redis, upstream and nginx running afterwards
#                     and print their ports and pids
#   --quiet           no progress lines on stderr
#   --list            print the scenario names and exit
#
# The table goes to stdout, then one PASS/FAIL line per target that
# applies to the scenarios run (INFO for a scenario reported without a
# target: low-and-slow); progress, timing, the conversations' refused
# turns and which signals fired go to stderr.  --json adds "history" to
# each answer of a conversation: the number of messages (user and
# assistant turns) it carried before its user turn, system prompt aside.
#
# Exit status: 0; 1 with --check when a target is missed; 2 when the
# servers cannot be set up (e.g. nginx -t refuses the configuration).
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use Getopt::Long;
use JSON::PP;
use List::Util qw(sum0);
use Time::HiRes qw(sleep time);
use sort 'stable';

my $TOOLS;
BEGIN { $TOOLS = dirname(abs_path(__FILE__)) }
use lib $TOOLS, "$TOOLS/../t/lib";
use Replay::Scenarios;
use Replay::Report;

my $ROOT = abs_path("$TOOLS/..");

# The http block; {{W}} is the window in seconds, {{EXTRA}} the
# --conf-extra text, {{HEADERS}} the add_header fallback.  %%...%% are
# DG::Harness placeholders.
my $HTTP_CONF = <<'EOF';
distill_guard_secret replay-secret;
distill_guard_redis %%REDIS%% timeout=200ms;
distill_guard_window {{W}}s;
distill_guard_penalty {{W}}s;
set_real_ip_from 127.0.0.1;
real_ip_header X-Forwarded-For;
{{EXTRA}}
server {
    listen 127.0.0.1:%%PORT%%;
    location /v1/ {
        distill_guard on;
        distill_guard_headers on;
{{HEADERS}}
        proxy_pass http://%%UPSTREAM%%;
    }
}
EOF

my $HEADER_FALLBACK = join '', map { "        add_header $_->[0] \"$_->[1]\" always;\n" }
    ['X-Distill-Guard-Score', '$distill_guard_score'],
    ['X-Distill-Guard-Action', '$distill_guard_action'],
    ['X-Distill-Guard-Signals', '$distill_guard_signals'];

my %opt = (corpus => "$ROOT/../shared/data/prompts", window => 60, seed => 1,
    scale => 1, workers => 2, 'hydra-nets' => 20,
    'conf-extra' => '', 'conf-drop' => []);
GetOptions(\%opt, 'corpus=s', 'window=i', 'seed=i', 'scale=f', 'only=s',
    'conf-extra=s', 'conf-drop=s@', 'headers-from-vars', 'hydra-nets=i',
    'workers=i', 'module=s', 'json=s', 'check', 'keep', 'quiet', 'list',
    'help') or usage(2);
usage(0) if $opt{help};
if ($opt{list}) { print "$_\n" for Replay::Scenarios::names(); exit 0 }
bad_option('--window must be at least 2 (seconds)') if $opt{window} < 2;
bad_option('--scale must be > 0') unless $opt{scale} > 0;
bad_option('--workers must be >= 1') unless $opt{workers} >= 1;
bad_option('--hydra-nets must be 0 to 120')
    unless $opt{'hydra-nets'} >= 0 && $opt{'hydra-nets'} <= 120;

# The comment block at the top of this file.
sub usage {
    open my $fh, '<', __FILE__ or exit $_[0];
    while (<$fh>) {
        last if /^use strict/;
        print STDERR $1 if $. > 1 && /^# ?(.*\n)/;
    }
    exit $_[0];
}

sub bad_option { print STDERR "replay.pl: $_[0]\n"; exit 2 }

sub note { print STDERR "# @_\n" unless $opt{quiet} }

$ENV{DG_MODULE} = $opt{module} if $opt{module};
# --keep: keep the directories, and no guardian process to stop the
# servers when this script exits
@ENV{qw(DG_KEEP DG_NO_GUARDIAN)} = (1, 1) if $opt{keep};
require DG::Harness;


# ------------------------------------------------------------------ plan

my @only = grep { length } split /\s*,\s*/, $opt{only} // '';
my %known = map { $_ => 1 } Replay::Scenarios::names();
for (@only) {
    bad_option("unknown scenario '$_'; known: "
        . join(', ', Replay::Scenarios::names())) unless $known{$_};
}

my @scenarios = eval { Replay::Scenarios::build(corpus => $opt{corpus},
    seed => $opt{seed}, scale => $opt{scale}, only => \@only,
    hydra_nets => $opt{'hydra-nets'}) } or bad_option($@ =~ s/\n\z//r);
srand();                # what follows need not repeat (temporary names)

my $factor = $opt{window} / 3600;       # compressed seconds per real second
my @timeline;
for my $sc (@scenarios) {
    for my $k (@{ $sc->{keys} }) {
        $k->{results} = [];
        push @timeline, map { { at => $_->{t} * $factor, key => $k,
            ev => $_ } } @{ $k->{events} };
    }
}
# stable: a conversation's turns keep their order
@timeline = sort { $a->{at} <=> $b->{at} } @timeline;
die "no requests to send\n" unless @timeline;
my $length = $timeline[-1]{at};
note(sprintf '%d scenarios, %d keys, %d requests over %.0fs '
    . '(window %ds = 1 h, x%.0f compression, seed %d, scale %g)',
    scalar @scenarios, sum0(map { scalar @{ $_->{keys} } } @scenarios),
    scalar @timeline, $length, $opt{window}, 1 / $factor, $opt{seed},
    $opt{scale});


# ------------------------------------------------------------------ servers

sub http_conf {
    my %drop = map { $_ => 1 } @{ $opt{'conf-drop'} };
    my $text = $HTTP_CONF;
    $text =~ s/\{\{W\}\}/$opt{window}/g;
    $text =~ s/\{\{EXTRA\}\}/$opt{'conf-extra'}/g;
    $drop{distill_guard_headers} = 1 if $opt{'headers-from-vars'};
    $text =~ s/\{\{HEADERS\}\}\n/$opt{'headers-from-vars'}
        ? $HEADER_FALLBACK : ''/e;
    $text = join '', grep { !(/^\s*(\w+)/ && $drop{$1}) }
        split /^/m, $text;
    return $text;
}

sub setup_error {
    print STDERR "replay.pl: $_[0]\n";
    exit 2;
}

setup_error('module not built: ' . DG::Harness::module_path()
    . " is missing (run 'make module', or pass --module FILE)")
    unless DG::Harness::have_module();

my $redis = eval { DG::Harness::Redis->start }
    or setup_error("redis-server: $@");
my $up = eval { DG::Harness::Upstream->start }
    or setup_error("mock upstream: $@");
my %ngx_opt = (http => http_conf(), redis => $redis, upstream => $up,
    workers => $opt{workers}, log_level => 'warn');

{
    my ($ok, $out) = DG::Harness::nginx_test(%ngx_opt);
    unless ($ok) {
        my $msg = "nginx -t refused the configuration:\n$out";
        while ($out =~ /unknown directive "(\w+)"/g) {
            $msg .= "\nThe module (" . DG::Harness::module_path()
                . ") does not know \"$1\": rebuild it (make module) or "
                . "leave the directive out with --conf-drop $1";
        }
        # show the lines the messages point at (the file is gone by now)
        my @conf = split /\n/,
            DG::Harness::Nginx->_prepare(%ngx_opt)->conf;
        my %seen;
        while ($out =~ /nginx\.conf:(\d+)/g) {
            next if $seen{$1}++ || $1 < 1 || $1 > @conf;
            $msg .= "\nnginx.conf line $1: $conf[$1 - 1]";
        }
        setup_error($msg);
    }
}
my $ngx = eval { DG::Harness::Nginx->start(%ngx_opt) }
    or setup_error("nginx: $@");
note('nginx on port ' . $ngx->port . ', redis ' . $redis->port
    . ', upstream ' . $up->port . ", $opt{workers} workers");


# ------------------------------------------------------------------ replay

my $port = $ngx->port;
my (%status, @late);
my $t0 = time + 0.5;
my $next_note = 10;
my $sent = 0;

# One connection per request, the request written at once (HTTP::Tiny's
# separate header and body writes meet delayed ACKs: 40 ms a request).
# A conversation event's body is built now, from the history its
# conversation holds (the answers it actually got).
sub post {
    my ($item) = @_;
    my $k = $item->{key};
    my $ev = $item->{ev};
    my ($path, $body) = $ev->{conv}
        ? ($ev->{conv}->path, $ev->{conv}->body($ev->{user}))
        : ($ev->{path} // '/v1/chat/completions', $ev->{body});
    my $req = join "\r\n", "POST $path HTTP/1.1",
        "Host: 127.0.0.1:$port", "Authorization: Bearer $k->{key}",
        "X-Forwarded-For: $ev->{ip}", 'Content-Type: application/json',
        'Content-Length: ' . length($body), 'Connection: close',
        'User-Agent: dg-replay/1', '', $body;
    my $raw = eval { DG::Harness::raw_request($port, $req, timeout => 10) };
    my $res = defined $raw ? DG::Harness::parse_response($raw) : undef;
    return $res || { status => 599, headers => {},
        content => $@ || 'no HTTP answer: ' . substr($raw // '', 0, 200) };
}

for my $ev (@timeline) {
    my $due = $t0 + $ev->{at};
    my $wait = $due - time;
    sleep $wait if $wait > 0;
    my $start = time;
    my $k = $ev->{key};
    my $res = post($ev);
    my $h = $res->{headers} || {};
    my $conv = $ev->{ev}{conv};
    my $depth = $conv ? $conv->depth : undef;
    $conv->record($ev->{ev}{user}, $res) if $conv;
    push @{ $k->{results} }, {
        at      => sprintf('%.3f', $ev->{at}),
        late    => sprintf('%.4f', $start - $due),
        ms      => sprintf('%.1f', 1000 * (time - $start)),
        status  => $res->{status},
        score   => $h->{'x-distill-guard-score'},
        action  => $h->{'x-distill-guard-action'},
        signals => $h->{'x-distill-guard-signals'},
        (defined $depth ? (history => $depth) : ()),
        ($res->{status} == 599 ? (error => $res->{content}) : ()),
        (defined $h->{'retry-after'} ? (retry_after => $h->{'retry-after'})
            : ()),
        (defined $h->{'x-distill-guard-features'}
            ? (features => $h->{'x-distill-guard-features'}) : ()),
    };
    $status{ $res->{status} }++;
    push @late, $start - $due;
    $sent++;
    if (!$opt{quiet} && time - $t0 >= $next_note) {
        note(sprintf 't=%3.0fs/%.0fs  %d/%d requests  %s', time - $t0,
            $length, $sent, scalar @timeline, status_text());
        $next_note += 10;
    }
}
my $elapsed = time - $t0;

sub status_text {
    join ' ', map { "$_:$status{$_}" } sort keys %status;
}

@late = sort { $a <=> $b } @late;
note(sprintf 'replayed %d requests in %.1fs; status %s; lateness median '
    . '%.1fms, p99 %.1fms, max %.1fms', scalar @timeline, $elapsed,
    status_text(), 1000 * $late[ $#late / 2 ], 1000 * $late[ $#late * 0.99 ],
    1000 * $late[-1]);
{
    my %conv = map { $_->{ev}{conv} ? ($_->{ev}{conv} => $_->{ev}{conv}) : () }
        @timeline;
    my @c = values %conv;
    note(sprintf '%d conversations sent %d turns built from their history; '
        . '%d refused turns left out of it, %d answers unreadable', scalar @c,
        sum0(map { $_->{turns} } @c), sum0(map { $_->{refused} } @c),
        sum0(map { $_->{unreadable} } @c)) if @c;
}
my @no_header = grep { !defined $_->{action} } map { @{ $_->{results} } }
    map { @{ $_->{keys} } } @scenarios;
note(scalar(@no_header) . ' answers carried no X-Distill-Guard-Action '
    . 'header (is distill_guard_headers on?)') if @no_header;
if (my @crash = $ngx->crash_lines) {
    note('nginx error log: ' . scalar(@crash) . " alert/crash lines, e.g.\n# "
        . join("\n# ", @crash[0 .. ($#crash < 4 ? $#crash : 4)]));
}


# ------------------------------------------------------------------ report

my @sum = map { Replay::Report::summarize($_) } @scenarios;

for my $s (@sum) {          # which signals fired, for tuning
    for my $role (qw(attack benign)) {
        my @k = @{ $s->{ $role eq 'attack' ? 'att_keys' : 'ben_keys' } };
        next unless @k;
        my %sig;
        for my $k (@k) { $sig{$_} += $k->{signals}{$_} for keys %{ $k->{signals} } }
        my $n = sum0(map { scalar @{ $_->{results} } } @k);
        note(sprintf '%-17s %s: %d requests; signals: %s', $s->{name}, $role,
            $n, join(', ', map { sprintf '%s %.0f%%', $_, 100 * $sig{$_} / $n }
                sort { $sig{$b} <=> $sig{$a} || $a cmp $b } keys %sig)
            || 'none');
    }
}

print Replay::Report::table(@sum);
print "\n";
my @targets = Replay::Report::targets(@sum);
my $missed = grep { !$_->{ok} } @targets;
my $ntargets = grep { !$_->{info} } @targets;
printf "- %s %s\n", $_->{info} ? 'INFO' : $_->{ok} ? 'PASS' : 'FAIL',
    $_->{text} for @targets;
printf "\n%s; window %ds, seed %d, scale %g, %d requests in %.0fs.\n",
    $missed ? "$missed of $ntargets targets missed"
        : "all $ntargets targets met",
    $opt{window}, $opt{seed}, $opt{scale}, scalar @timeline, $elapsed;

if ($opt{json}) {
    my @keys;
    for my $sc (@scenarios) {
        for my $k (@{ $sc->{keys} }) {
            push @keys, { scenario => $sc->{name}, name => $k->{name},
                key => $k->{key}, role => $k->{role},
                first_tag => $k->{first_tag},
                first_throttle => $k->{first_throttle},
                max_score => $k->{max_score}, signals => $k->{signals},
                ($k->{template} ? (template => $k->{template}) : ()),
                ($k->{source} ? (source => $k->{source}) : ()),
                requests => $k->{results} };
        }
    }
    open my $fh, '>', $opt{json} or die "$opt{json}: $!\n";
    print $fh JSON::PP->new->canonical->pretty->encode({
        options => { map { $_ => $opt{$_} } qw(window seed scale workers
            hydra-nets conf-extra conf-drop) },
        http_conf => $ngx_opt{http}, elapsed => sprintf('%.1f', $elapsed),
        status => \%status, keys => \@keys });
    close $fh;
    note("per-key details in $opt{json}");
}

if ($opt{keep}) {
    printf STDERR "# kept running: nginx port %d (pid %d, dir %s), redis "
        . "port %d (pid %d), upstream port %d (pid %d)\n# stop them with: "
        . "kill %d %d %d\n", $ngx->port, $ngx->pid, $ngx->dir, $redis->port,
        $redis->pid, $up->port, $up->pid, $ngx->pid, $redis->pid, $up->pid;
    for my $obj ($ngx, $redis, $up) {      # the harness must not stop them
        DG::Harness::_unregister($obj);
        $obj->{pid} = undef;
    }
}

exit($opt{check} && $missed ? 1 : 0);
