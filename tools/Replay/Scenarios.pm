package Replay::Scenarios;
# Labeled traffic scenarios for tools/replay.pl, built from the prompt
# corpora (../shared/data/prompts: JSON Lines {"prompt", "source"}).
#
#   my @sc = Replay::Scenarios::build(corpus => $dir, seed => 1,
#                scale => 1, hydra_nets => 20, only => [names]);
#
# Every scenario is
#   { name, kind => 'attack'|'benign', keys => [ KEY, ... ] }
# and every KEY
#   { name, key (the API key), role => 'attack'|'benign',
#     events => [ { t => real seconds since the start, ip, body } ] }
# where body is the JSON text of an OpenAI chat request.  Times are
# "real" seconds (a human types for minutes): replay.pl scales them down
# to the module's compressed window.
#
# Repeatable: each scenario seeds its own random stream from --seed and
# its index, and draws prompts from its own slice of each corpus (so the
# same prompt is never sent under two scenarios, and --only does not
# change what a scenario sends).
# Client addresses (sent in X-Forwarded-For only, never contacted) come
# from 198.18.0.0/15, the benchmarking range of RFC 2544: the module
# leaves private and loopback addresses out of its client-network signal,
# so the simulated clients need addresses it counts.  198.18.1-2: the
# sweeps; 198.18.10-29: the hydra's networks (198.19.N with --hydra-nets
# 0); 198.18.50: the mixed key; 198.18.60: the app; 198.18.100-249: one
# /24 per human user.

use strict;
use warnings;

use JSON::PP;
use List::Util qw(min max sum shuffle);

our $SPAN = 2.5 * 3600;     # real seconds a full-size run covers

our @HUMAN_FILES = qw(arena_hard_prompts oasst_prompts dolly_subset
    awesome_chatgpt_prompts);
our @DISTILL_FILES = qw(alpaca_5000 codealpaca_2k);

# The order matters: it seeds each scenario's random stream.
our @SCENARIOS = (
    { name => 'single-key sweep', kind => 'attack', build => \&single_sweep },
    { name => 'code sweep',       kind => 'attack', build => \&code_sweep },
    { name => 'hydra',            kind => 'attack', build => \&hydra },
    { name => 'mixed key',        kind => 'attack', build => \&mixed_key },
    { name => 'human users',      kind => 'benign', build => \&human_users },
    { name => 'product app',      kind => 'benign', build => \&product_app },
);

sub names { map { $_->{name} } @SCENARIOS }

# Templates a campaign wraps its generated instructions in ({x}).
our @TEMPLATES = (
    "Below is an instruction that describes a task. Write a response that "
        . "appropriately completes the request.\n\n### Instruction:\n{x}\n\n"
        . "### Response:",
    "You are a knowledgeable assistant. Complete the following task. Think "
        . "step by step and explain your reasoning before giving the final "
        . "answer.\n\nTask: {x}",
    "{x}\n\nLet's think step by step, then state the final answer clearly.",
    "Instruction: {x}\nGive a detailed, well-structured answer and explain "
        . "your reasoning step by step.",
    "Respond to the following request as accurately and completely as "
        . "possible.\n\n{x}\n\nShow your work.",
);

our @CODE_TEMPLATES = (
    "Answer the following programming task and explain your reasoning step "
        . "by step.\n\n{x}",
    "{x}\n\nWrite the code, then explain your reasoning step by step.",
    "You are an expert programmer. Solve the task below and explain your "
        . "reasoning step by step before giving the final code.\n\nTask: {x}",
);

# Generic follow-ups a person types in a conversation.
our @FOLLOW_UPS = (
    'can you make it shorter?', 'why?', 'give me an example',
    'thanks! what about the other way around?', 'hmm, are you sure?',
    'ok. and if I only have 10 minutes?', 'explain that part again please',
    'can you put that in a table?', 'that is not what I meant',
    'what would you recommend?', 'shorter please', 'in simpler words?',
    'ok that works, thanks', 'and in python?', 'can you give sources?',
    'what are the downsides?', 'more detail on the second point',
    'translate it to french', 'make it sound less formal',
    'wait, why is that?', 'great. now a version for kids',
    'is there a faster way?', 'can you fix the typo in the first line',
    'what does that mean exactly?', 'list the steps only',
    'how long would that take?', 'and what if it fails?',
    'nice, one more example?', 'compare it with the previous option',
    'no, I meant for a beginner', 'can you rewrite it as bullet points?',
    'ok, summarize everything so far', 'why not the first one?',
    'is that still true in 2024?', 'sorry, I don\'t get it',
);

our @REPLY_OPENERS = ('Sure.', 'Good question.', 'Here is what I would do.',
    'Short answer: it depends.', 'Of course!', 'Let me explain.',
    'Here you go.', 'Happy to help.');
our @REPLY_FILLERS = (
    'The main point is to start from the basics and build up from there.',
    'There are a few options, and the best one depends on your situation.',
    'In most cases the simplest approach works well enough.',
    'A common mistake is to skip the first step, so check it carefully.',
    'If you want more detail on any part, just ask.',
    'Here is a short example that shows the idea.',
    'Keep in mind that this can vary a lot in practice.',
    'First, make sure the requirements are clear; then pick the tool.',
    'The second option is slower but easier to maintain.',
    'Overall, I would recommend trying the first approach.',
);

my $JSON = JSON::PP->new->canonical->utf8;


# ---------------------------------------------------------------- public

sub build {
    my (%o) = @_;
    my $seed = $o{seed} // 1;
    my $scale = $o{scale} // 1;
    my %only = map { $_ => 1 } @{ $o{only} || [] };
    my $c = load_corpora($o{corpus}, $seed);
    my $ctx = { c => $c, seed => $seed, scale => $scale,
        span => max(2400, $SPAN * min(1, $scale)),
        hydra_nets => $o{hydra_nets} // 20 };

    my @out;
    for my $i (0 .. $#SCENARIOS) {
        my $sc = $SCENARIOS[$i];
        next if %only && !$only{ $sc->{name} };
        srand($seed * 7919 + $i * 104729 + 17);
        my @keys = $sc->{build}->($ctx);
        for my $k (@keys) {
            @{ $k->{events} } = sort { $a->{t} <=> $b->{t} } @{ $k->{events} };
        }
        push @out, { name => $sc->{name}, kind => $sc->{kind},
            keys => \@keys };
    }
    return @out;
}


# ------------------------------------------------------------- corpora

sub read_jsonl {
    my ($file) = @_;
    open my $fh, '<:raw', $file or die "cannot read $file: $!\n";
    my @out;
    while (my $line = <$fh>) {
        next unless $line =~ /\S/;
        my $j = eval { $JSON->decode($line) };
        push @out, $j->{prompt} if ref $j eq 'HASH' && defined $j->{prompt}
            && length $j->{prompt};
    }
    return \@out;
}

# Loads the corpora and cuts them into per-scenario slices (a fixed
# shuffle by seed).
sub load_corpora {
    my ($dir, $seed) = @_;
    die "corpus directory $dir not found (use --corpus DIR)\n" unless -d $dir;
    srand($seed);
    my %raw;
    for my $name (@HUMAN_FILES, @DISTILL_FILES) {
        my $file = "$dir/$name.jsonl";
        die "corpus file $file is missing\n" unless -f $file;
        $raw{$name} = [ shuffle @{ read_jsonl($file) } ];
    }
    my %c;
    # Alpaca: sweep, mixed key and hydra each get their own part.
    my @al = @{ $raw{alpaca_5000} };
    $c{alpaca_sweep} = [ @al[0 .. 999] ];
    $c{alpaca_mixed} = [ @al[1000 .. 1499] ];
    $c{alpaca_hydra} = [ @al[1500 .. $#al] ];
    $c{code} = $raw{codealpaca_2k};

    # Human: the Python questions go to the product app; of the rest, the
    # back quarter of each source goes to the mixed key's chat users.
    my $py = qr/\b(?:python|pandas|numpy|django|flask|pytest|pip)\b/i;
    for my $src (@HUMAN_FILES) {
        my @all = @{ $raw{$src} };
        push @{ $c{product} }, grep { $_ =~ $py } @all;
        my @rest = grep { $_ !~ $py } @all;
        my $cut = int(@rest * 3 / 4);
        $c{human}{$src} = [ @rest[0 .. $cut - 1] ];
        $c{human_mixed}{$src} = [ @rest[$cut .. $#rest] ];
        $c{human_weight}{$src} = scalar @rest;
    }
    die "no Python questions for the product app in $dir\n"
        unless @{ $c{product} || [] };
    return \%c;
}


# ---------------------------------------------------------- randomness

sub uniform { my ($a, $b) = @_; $a + rand($b - $a) }
sub irand   { my ($a, $b) = @_; $a + int rand($b - $a + 1) }
sub pick    { $_[0][ int rand @{ $_[0] } ] }
sub chance  { rand() < $_[0] }

sub normal {
    my $u = 1 - rand();
    return sqrt(-2 * log $u) * cos(2 * 3.141592653589793 * rand());
}

# Lognormal with the given median (real seconds) and sigma, capped.
sub lognormal {
    my ($median, $sigma, $cap) = @_;
    my $x = $median * exp($sigma * normal());
    return defined $cap ? min($x, $cap) : $x;
}


# A fixed interval with +-5% jitter: machine-regular pacing.
sub regular_gap { my ($iv) = @_; $iv * (1 + uniform(-0.05, 0.05)) }

sub api_key {
    my ($tag) = @_;
    return sprintf 'sk-%s-%s', $tag,
        join '', map { sprintf '%04x', int rand 65536 } 1 .. 6;
}

# Draws prompts from a list in order, wrapping around when exhausted.
sub drawer {
    my ($list) = @_;
    die "empty prompt list\n" unless @$list;
    my $i = 0;
    return sub { $list->[ $i++ % @$list ] };
}

sub wrap { my ($tpl, $x) = @_; (my $s = $tpl) =~ s/\{x\}/$x/; $s }

# A scenario size times --scale, at least $min.
sub scaled {
    my ($ctx, $n, $min) = @_;
    return max($min // 1, int($n * $ctx->{scale} + 0.5));
}


# ---------------------------------------------------------- bodies

sub body {
    my (@messages) = @_;
    return $JSON->encode({ model => 'gpt-x', messages => \@messages,
        max_tokens => 512 });
}

sub user_msg { { role => 'user',      content => $_[0] } }
sub sys_msg  { { role => 'system',    content => $_[0] } }
sub bot_msg  { { role => 'assistant', content => $_[0] } }

# A plausible assistant reply that refers to the question.
sub reply_to {
    my ($question) = @_;
    my @w = grep { length } split /\s+/, $question;
    my $topic = join ' ', @w[0 .. min(6, $#w)];
    $topic =~ s/["\n]//g;
    my @s = (pick(\@REPLY_OPENERS),
        "About \"$topic\": " . lcfirst pick(\@REPLY_FILLERS));
    push @s, pick(\@REPLY_FILLERS) for 1 .. irand(1, 5);
    return join ' ', @s;
}


# ---------------------------------------------------------- building blocks

# Single-turn events at regular gaps from $start: one per prompt.
sub regular_run {
    my (%a) = @_;
    my $t = $a{start};
    my @ev;
    for my $p (@{ $a{prompts} }) {
        my @m = ($a{system} ? sys_msg($a{system}) : (), user_msg($p));
        push @ev, { t => $t, ip => $a{ip}, body => body(@m) };
        $t += regular_gap($a{interval});
    }
    return @ev;
}

# One human conversation from $start: an opening prompt and 1-6
# follow-ups, each request carrying the earlier turns.  Returns the
# events and the time of the last one.
sub conversation {
    my (%a) = @_;
    my $next = $a{next_prompt};
    my @hist = $a{system} ? (sys_msg($a{system})) : ();
    my $t = $a{start};
    my @ev;
    my $turns = 1 + irand(1, 6);
    for my $turn (1 .. $turns) {
        my $text = $turn == 1 ? $next->()
            : chance(0.2) ? $next->() : pick(\@FOLLOW_UPS);
        push @hist, user_msg($text);
        push @ev, { t => $t, ip => $a{ip}, body => body(@hist) };
        push @hist, bot_msg(reply_to($text));
        # reading the answer and typing the next message
        $t += lognormal(50, 1.0, 15 * 60) if $turn < $turns;
    }
    return (\@ev, $t);
}

# A human key's day: 2-6 conversations, minutes apart (heavy-tailed).
sub human_key_events {
    my (%a) = @_;
    my @conv;
    my $t = 0;
    my $n = irand(2, 6);
    for my $i (1 .. $n) {
        my ($e, $end) = conversation(%a, start => $t);
        push @conv, $e;
        $t = $end + lognormal(12 * 60, 1.0, 60 * 60) if $i < $n;
    }
    # longer than the run: drop late conversations (keep two), then
    # squeeze the rest
    pop @conv while @conv > 2 && $conv[-1][-1]{t} > $a{span};
    my @ev = map { @$_ } @conv;
    my $len = $ev[-1]{t};
    if ($len > $a{span}) {
        $_->{t} *= $a{span} / $len for @ev;
        $len = $a{span};
    }
    # place the day somewhere in the run
    my $shift = uniform(0, max(0, $a{span} - $len));
    $_->{t} += $shift for @ev;
    return @ev;
}

sub human_source {
    my ($c) = @_;
    my $total = sum(values %{ $c->{human_weight} });
    my $r = rand($total);
    for my $src (@HUMAN_FILES) {
        return $src if ($r -= $c->{human_weight}{$src}) < 0;
    }
    return $HUMAN_FILES[0];
}


# ---------------------------------------------------------- scenarios

# 1. One key, ~200 Alpaca instructions, bare, one after another.
sub single_sweep {
    my ($ctx) = @_;
    my $n = scaled($ctx, 200, 10);
    my $draw = drawer($ctx->{c}{alpaca_sweep});
    my @ev = regular_run(prompts => [ map { $draw->() } 1 .. $n ],
        interval => uniform(20, 40), start => uniform(0, 60),
        ip => '198.18.1.' . irand(2, 254));
    return { name => 'sweep-1', key => api_key('sweep'), role => 'attack',
        events => \@ev };
}

# 2. One key, ~200 Code Alpaca instructions in a fixed template.
sub code_sweep {
    my ($ctx) = @_;
    my $n = scaled($ctx, 200, 10);
    my $tpl = pick(\@CODE_TEMPLATES);
    my $draw = drawer($ctx->{c}{code});
    my @ev = regular_run(
        prompts => [ map { wrap($tpl, $draw->()) } 1 .. $n ],
        interval => uniform(20, 40), start => uniform(0, 60),
        ip => '198.18.2.' . irand(2, 254));
    return { name => 'code-1', key => api_key('code'), role => 'attack',
        template => $tpl, events => \@ev };
}

# 3. >= 100 keys, 8-14 requests each, one template, staggered starts,
#    clients from a few /24 networks (hydra_nets; 0: one /24 per key).
sub hydra {
    my ($ctx) = @_;
    my $nkeys = scaled($ctx, 120, 5);
    my $tpl = $TEMPLATES[ $ctx->{seed} % @TEMPLATES ];
    my $draw = drawer($ctx->{c}{alpaca_hydra});
    my $nets = $ctx->{hydra_nets};
    my @keys;
    for my $i (1 .. $nkeys) {
        my $net = $nets > 0 ? sprintf('198.18.%d', 10 + int rand $nets)
            : sprintf('198.19.%d', ($i - 1) % 256);
        my $n = irand(8, 14);
        my @ev = regular_run(
            prompts => [ map { wrap($tpl, $draw->()) } 1 .. $n ],
            interval => uniform(20, 40),
            start => uniform(0, max(60, $ctx->{span} - 10 * 60)),
            ip => "$net." . irand(2, 254));
        push @keys, { name => sprintf('hydra-%03d', $i),
            key => api_key('hydra'), role => 'attack', events => \@ev };
    }
    $keys[0]{template} = $tpl;
    return @keys;
}

# 4. One reseller key: its end users' chats and a campaign, half and half.
sub mixed_key {
    my ($ctx) = @_;
    my $c = $ctx->{c};
    my $span = $ctx->{span};
    my $n = scaled($ctx, 100, 5);
    # campaign: a template different from the hydra's, regular pacing
    my $tpl = $TEMPLATES[ ($ctx->{seed} + 2) % @TEMPLATES ];
    my $draw = drawer($c->{alpaca_mixed});
    my @ips = map { "198.18.50.$_" } 10, 11;
    my @camp = regular_run(
        prompts => [ map { wrap($tpl, $draw->()) } 1 .. $n ],
        interval => $span / $n, start => uniform(0, 120), ip => $ips[0]);
    # chat: conversations of several end users until ~$n requests
    my %drawers = map { $_ => drawer($c->{human_mixed}{$_}) } @HUMAN_FILES;
    my @chat;
    while (@chat < $n) {
        my $src = human_source($c);
        my ($e) = conversation(next_prompt => $drawers{$src},
            start => uniform(0, $span - 5 * 60), ip => $ips[1]);
        push @chat, @$e;
    }
    return { name => 'mixed-1', key => api_key('mixed'), role => 'attack',
        template => $tpl, events => [ @camp, @chat ] };
}

# 5. >= 50 people, each with 2-6 conversations on the topics of one
#    corpus, irregular gaps, each its own IP in its own /24.
sub human_users {
    my ($ctx) = @_;
    my $c = $ctx->{c};
    my $nkeys = scaled($ctx, 50, 5);
    my %drawers = map { $_ => drawer($c->{human}{$_}) } @HUMAN_FILES;
    my @keys;
    for my $i (1 .. $nkeys) {
        my $src = human_source($c);
        my @ev = human_key_events(next_prompt => $drawers{$src},
            span => $ctx->{span},
            system => chance(0.3) ? 'You are a helpful assistant.' : undef,
            ip => sprintf('198.18.%d.%d', 100 + ($i - 1) % 150,
                irand(2, 254)));
        push @keys, { name => sprintf('human-%03d', $i),
            key => api_key('user'), role => 'benign', source => $src,
            events => \@ev };
    }
    return @keys;
}

# 6. A product: one key, one system prompt, ~300 single-turn Python
#    questions, Poisson arrivals, a few backend IPs.
sub product_app {
    my ($ctx) = @_;
    my $n = scaled($ctx, 300, 10);
    my $sys = 'You are PyPal, the assistant inside the PyPal code editor '
        . 'plugin. Answer the user\'s Python question concisely, with a '
        . 'short code example when it helps. Politely decline questions '
        . 'that are not about programming.';
    my @qs = @{ $ctx->{c}{product} };
    my @ips = map { "198.18.60.$_" } 11 .. 13;
    # Poisson arrivals over the run: given their number, uniform times
    my @times = sort { $a <=> $b } map { rand $ctx->{span} } 1 .. $n;
    my @ev;
    for my $i (1 .. $n) {
        # popular questions come back: cycle through a reshuffled list
        @qs = shuffle @qs if ($i - 1) % @qs == 0;
        push @ev, { t => $times[$i - 1], ip => pick(\@ips),
            body => body(sys_msg($sys), user_msg($qs[ ($i - 1) % @qs ])) };
    }
    return { name => 'app-1', key => api_key('app'), role => 'benign',
        events => \@ev };
}

1;
