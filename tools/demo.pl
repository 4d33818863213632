#!/usr/bin/perl
# The demo: Redis + a mock LLM upstream + nginx with distill_guard, then
# a human holding a conversation and a key sweeping topics through a
# reasoning template, and what the module saw of each request.
#
#   perl tools/demo.pl [--keep]      (make demo builds first)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use DG::Harness;
use Getopt::Long;
use HTTP::Tiny;
use JSON::PP;
use Time::HiRes qw(sleep);

my $keep = 0;
GetOptions('keep' => \$keep) or die "usage: $0 [--keep]\n";

die "build/ngx_distill_guard_module.so is missing: run 'make demo'\n"
    unless DG::Harness::have_module();

my $dir   = "$FindBin::Bin/demo";
my @sweep = read_lines("$dir/sweep.txt");
my @human = read_lines("$dir/human.txt");

my $redis = DG::Harness::Redis->start;
my $up    = DG::Harness::Upstream->start;
my $ngx   = DG::Harness::Nginx->start(redis => $redis, upstream => $up,
    http => <<'CONF');
    # as in conf-examples/gateway.conf, with a one-minute window for a demo
    distill_guard_secret demo-secret-change-me;
    distill_guard_redis %%REDIS%% timeout=100ms;
    distill_guard_window 60s;
    distill_guard_min_requests 15;

    # each simulated client brings its address in X-Forwarded-For
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;

    log_format dg '$remote_addr key=$distill_guard_key_id '
                  'action=$distill_guard_action score=$distill_guard_score '
                  'signals="$distill_guard_signals" $status';

    server {
        listen 127.0.0.1:%%PORT%%;
        access_log %%DIR%%/access.log dg;

        location /v1/ {
            distill_guard on;
            proxy_set_header X-Distill-Guard-Score $distill_guard_score;
            proxy_set_header X-Distill-Guard-Action $distill_guard_action;
            proxy_set_header X-DG-Features $distill_guard_features;
            proxy_pass http://%%UPSTREAM%%;
        }

        location = /distill-guard/status {
            distill_guard_stats;
        }
    }
CONF

my $http = HTTP::Tiny->new(timeout => 5);
my $url  = $ngx->url('/v1/chat/completions');

print "distill-guard demo: nginx on 127.0.0.1:", $ngx->port,
      ", redis on ", $redis->addr, ", mock LLM on ", $up->addr, "\n\n";

# a human: two conversations, the earlier turns carried along
print "== a human user holds two conversations\n";
my @conv;
for my $i (0 .. $#human) {
    @conv = () if $i == 3;
    push @conv, { role => 'user', content => $human[$i] };
    my $r = chat('sk-demo-human-7f3a', '198.51.100.23', [@conv]);
    show($r, $human[$i]);
    push @conv, { role => 'assistant', content => 'Here is what I suggest.' };
    sleep 0.4 + rand(1.5);
}

# a campaign: many topics, one reasoning template, no conversation,
# machine-regular timing
print "\n== a key sweeps topics through one template, one request every "
    . "150 ms\n";
my ($n, $last, %seen) = (0, '');
for my $p (@sweep) {
    $n++;
    my $body = "Answer the following and explain your reasoning step by "
             . "step.\n\n$p";
    my $r = chat('sk-demo-sweeper-01', '203.0.113.50',
                 [{ role => 'user', content => $body }]);
    my $action = $r->{headers}{'x-distill-guard-action'} // '-';
    $seen{$action}++;
    # every change of action, and a few requests besides
    show($r, "#$n $p") if $action ne $last || $n <= 2 || $n == @sweep;
    $last = $action;
    sleep 0.15;
}
print "   ", join(', ', map { "$seen{$_} $_" } sort keys %seen), "\n";

print "\n== the first request's features, as \$distill_guard_features "
    . "shows them\n";
my $r = chat('sk-demo-human-7f3a', '198.51.100.23',
             [{ role => 'user', content => $human[0] }], 1);
print "   ", $r->{features} // '(none)', "\n";

print "\n== the status endpoint (distill_guard_stats)\n";
my $st = $http->get($ngx->url('/distill-guard/status'));
print "   $st->{content}";

print "\n== what operators read in Redis\n";
print "   redis-cli ZREVRANGE dg:flagged 0 -1 WITHSCORES\n";
my @z = split /\n/, $redis->cli(qw(ZREVRANGE dg:flagged 0 -1 WITHSCORES));
print "     key_id $z[$_ * 2]  score $z[$_ * 2 + 1]\n" for 0 .. $#z / 2;
print "   redis-cli XRANGE dg:events - +\n";
my @e = split /\n/, $redis->cli(qw(XRANGE dg:events - +));
while (@e) {
    my $id = shift @e;
    my @f = splice @e, 0, 10;
    print "     $id ",
          join(' ', map { "$f[$_ * 2]=$f[$_ * 2 + 1]" } 0 .. $#f / 2), "\n";
}

if ($keep) {
    print "\nleft running (Ctrl-C ends it): nginx 127.0.0.1:", $ngx->port,
          "  redis ", $redis->addr, "\n";
    sleep 3600 while 1;
}

sub chat {
    my ($key, $ip, $messages, $echo) = @_;
    my $res = $http->post($url, {
        headers => {
            'Authorization'   => "Bearer $key",
            'X-Forwarded-For' => $ip,
            'Content-Type'    => 'application/json',
            $echo ? ('X-Demo-Echo' => 1) : (),
        },
        content => encode_json({ model => 'demo-model',
                                 messages => $messages,
                                 max_tokens => 256 }),
    });
    if ($echo && $res->{status} == 200) {
        my $j = eval { decode_json($res->{content}) };
        $res->{features} = $j->{_echo}{headers}{'x-dg-features'} if $j;
    }
    return $res;
}

sub show {
    my ($res, $prompt) = @_;
    my $h = $res->{headers};
    $prompt = substr($prompt, 0, 48) . '...' if length $prompt > 51;
    printf "   %3d %-8s score %s  %-24s %s\n", $res->{status},
        $h->{'x-distill-guard-action'} // '-',
        $h->{'x-distill-guard-score'} // '-',
        $h->{'x-distill-guard-signals'} || '-', $prompt;
    printf "       Retry-After: %s  RateLimit: %s\n", $h->{'retry-after'},
        $h->{'ratelimit'} // '' if $res->{status} == 429;
}

sub read_lines {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!\n";
    my @l = grep { length } map { chomp; $_ } <$fh>;
    return @l;
}
