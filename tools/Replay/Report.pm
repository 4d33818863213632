package Replay::Report;
# What replay.pl makes of the answers: per-key outcomes, the Markdown
# table, and the targets.
#
# A key's results are the list of its answers in order, each
#   { status, score, action, signals, late }
# "tagged" means some answer said action tag or throttle; "throttled"
# means some request was refused (action throttle, or status 429).
# "requests to first tag" is the 1-based index of that answer.
use strict;
use warnings;

use List::Util qw(sum0 max);

sub is_tagged    { my $r = shift; ($r->{action} // '') =~ /^(?:tag|throttle)$/ }
sub is_throttled { my $r = shift; ($r->{action} // '') eq 'throttle'
                       || ($r->{status} // 0) == 429 }

# Fills $key->{first_tag}, {first_throttle} (undef: never), {max_score},
# {signals} (name => count) from $key->{results}.
sub outcome {
    my ($key) = @_;
    my $res = $key->{results} || [];
    my ($tag, $thr, $max, %sig);
    for my $i (0 .. $#$res) {
        my $r = $res->[$i];
        $tag //= $i + 1 if is_tagged($r);
        $thr //= $i + 1 if is_throttled($r);
        $max = $r->{score} if defined $r->{score} && $r->{score} =~ /^[\d.]+$/
            && (!defined $max || $r->{score} > $max);
        $sig{$_}++ for grep { length } split /\s*,\s*/, $r->{signals} // '';
    }
    @$key{qw(first_tag first_throttle max_score signals)}
        = ($tag, $thr, $max, \%sig);
    return $key;
}

# Median of a list where undef means "never" (infinite); undef when the
# median itself is never.
sub median_never {
    my @v = sort { $a <=> $b } map { $_ // 9**9**9 } @_;
    return undef unless @v;
    my $m = @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
    return $m == 9**9**9 ? undef : $m;
}

sub pct { my ($n, $d) = @_; $d ? 100 * $n / $d : undef }

# Per-scenario numbers (attack and benign keys counted apart).
sub summarize {
    my ($sc) = @_;
    outcome($_) for @{ $sc->{keys} };
    my @att = grep { $_->{role} eq 'attack' } @{ $sc->{keys} };
    my @ben = grep { $_->{role} eq 'benign' } @{ $sc->{keys} };
    return {
        (map { $_ => $sc->{$_} } qw(name kind sweep hydra report_only
            tag_ok)),
        keys => scalar @{ $sc->{keys} },
        requests => sum0(map { scalar @{ $_->{results} || [] } }
            @{ $sc->{keys} }),
        attack => scalar @att, benign => scalar @ben,
        att_tagged => scalar(grep { defined $_->{first_tag} } @att),
        att_throttled => scalar(grep { defined $_->{first_throttle} } @att),
        ben_tagged => scalar(grep { defined $_->{first_tag} } @ben),
        ben_throttled => scalar(grep { defined $_->{first_throttle} } @ben),
        med_tag => median_never(map { $_->{first_tag} } @att),
        med_throttle => median_never(map { $_->{first_throttle} } @att),
        tag_within5 => scalar(grep { defined $_->{first_tag}
            && $_->{first_tag} <= 5 } @att),
        thr_within5 => scalar(grep { defined $_->{first_throttle}
            && $_->{first_throttle} <= 5 } @att),
        att_keys => \@att, ben_keys => \@ben,
    };
}

sub total {
    my (@s) = @_;
    my %t = (name => '**total**', keys => sum0(map { $_->{keys} } @s),
        requests => sum0(map { $_->{requests} } @s));
    for my $f (qw(attack benign att_tagged att_throttled ben_tagged
                  ben_throttled tag_within5 thr_within5)) {
        $t{$f} = sum0(map { $_->{$f} } @s);
    }
    my @att = map { @{ $_->{att_keys} } } @s;
    $t{med_tag} = median_never(map { $_->{first_tag} } @att);
    $t{med_throttle} = median_never(map { $_->{first_throttle} } @att);
    return \%t;
}

sub fmt_pct { my $v = shift; defined $v ? sprintf('%.1f', $v) : '' }
sub fmt_med {
    my ($s, $f) = @_;
    return '' unless $s->{attack};
    my $v = $s->{$f};
    return 'never' unless defined $v;
    return $v == int $v ? $v : sprintf('%.1f', $v);
}

# The Markdown table: one row per scenario and a total line.
sub table {
    my (@s) = @_;
    my @head = ('scenario', 'keys', 'attack keys tagged %',
        'attack keys throttled %', 'median requests to first tag',
        'median requests to first throttle', 'benign keys tagged %',
        'benign keys throttled %');
    my @rows;
    for my $s (@s, (@s > 1 ? total(@s) : ())) {
        push @rows, [ $s->{name}, $s->{keys},
            fmt_pct(pct($s->{att_tagged}, $s->{attack})),
            fmt_pct(pct($s->{att_throttled}, $s->{attack})),
            fmt_med($s, 'med_tag'), fmt_med($s, 'med_throttle'),
            fmt_pct(pct($s->{ben_tagged}, $s->{benign})),
            fmt_pct(pct($s->{ben_throttled}, $s->{benign})) ];
    }
    my @w = map { my $i = $_; max(map { length $_->[$i] } \@head, @rows) }
        0 .. $#head;
    my $line = sub {
        my @c = @_;
        '| ' . join(' | ', map { sprintf($_ ? "%*s" : "%-*s", $w[$_], $c[$_]) }
            0 .. $#c) . " |\n";
    };
    my $out = $line->(@head);
    $out .= '|' . join('|', map { ($_ ? '-' x ($w[$_] + 1) . ':'
        : ':' . '-' x ($w[$_] + 1)) } 0 .. $#w) . "|\n";
    $out .= $line->(@$_) for @rows;
    return $out;
}

# The targets that apply to the scenarios run: list of
#   { ok => 0|1, text => "...", info => 1 when it is reported only }
# in the order of the scenarios.  Attack scenarios: >= 95% of the attack
# keys throttled (report_only: reported, no target); sweep: every attack
# key throttled within 50 requests; hydra: median requests to the first
# throttle <= 5 (the share throttled within 5 is reported).  Benign
# scenarios, each: no key throttled, and at most 2% of the keys tagged
# (tag_ok: tagging is reported only).
sub targets {
    my (@s) = @_;
    my @t;
    for my $s (@s) {
        my $name = $s->{name};
        if ($s->{attack}) {
            my $p = pct($s->{att_throttled}, $s->{attack});
            if ($s->{report_only}) {
                push @t, { ok => 1, info => 1, text => sprintf(
                    '%s: %.1f%% of attack keys throttled, %.1f%% tagged '
                    . '(reported only, no target)', $name, $p,
                    pct($s->{att_tagged}, $s->{attack})) };
                next;
            }
            push @t, { ok => $p >= 95, text => sprintf(
                '%s: %.1f%% of attack keys throttled (target >= 95%%)',
                $name, $p) };
        }
        if ($s->{sweep} && $s->{attack}) {
            my @late = grep { !defined $_->{first_throttle}
                || $_->{first_throttle} > 50 } @{ $s->{att_keys} };
            my $first = join ', ', map { $_->{first_throttle} // 'never' }
                @{ $s->{att_keys} };
            push @t, { ok => !@late, text => sprintf(
                '%s: first throttle at request %s (target <= 50)',
                $name, $first) };
        }
        if ($s->{hydra} && $s->{attack}) {
            my $m = $s->{med_throttle};
            push @t, { ok => defined $m && $m <= 5, text => sprintf(
                '%s: median requests to first throttle %s (target <= 5); '
                . '%.1f%% of its keys throttled within 5 requests',
                $name, $m // 'never', pct($s->{thr_within5}, $s->{attack})) };
        }
        if ($s->{benign}) {
            my @ben = @{ $s->{ben_keys} };
            my @thr = grep { defined $_->{first_throttle} } @ben;
            my @tag = grep { defined $_->{first_tag} } @ben;
            my $p = pct(scalar @tag, scalar @ben);
            my $ok = !@thr && ($s->{tag_ok} || $p <= 2);
            push @t, { ok => $ok, text => sprintf(
                '%s: %d of %d keys throttled (target 0), %d tagged = %.1f%% '
                . '(%s)%s', $name, scalar @thr, scalar @ben, scalar @tag, $p,
                $s->{tag_ok} ? 'tagging allowed' : 'target <= 2%',
                names_of(@thr ? @thr : @tag)) };
        }
    }
    return @t;
}

sub names_of {
    my @k = @_;
    return '' unless @k;
    my @n = map { $_->{name} } @k;
    splice @n, 8, @n - 8, '...' if @n > 9;
    return ': ' . join ', ', @n;
}

1;
