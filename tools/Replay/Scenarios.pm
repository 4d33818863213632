package Replay::Scenarios;
# Labeled traffic scenarios for tools/replay.pl, built from the prompt
# corpora (../shared/data/prompts: JSON Lines {"prompt", "source"}).
#
#   my @sc = Replay::Scenarios::build(corpus => $dir, seed => 1,
#                scale => 1, hydra_nets => 20, only => [names]);
#
# Every scenario is
#   { name, kind => 'attack'|'benign', keys => [ KEY, ... ],
#     sweep | hydra | report_only | tag_ok => 1 (what Report.pm targets) }
# and every KEY
#   { name, key (the API key), role => 'attack'|'benign',
#     events => [ EVENT, ... ] }
# where an EVENT is one request at t (real seconds since the start) from
# the address ip, either
#   static:  { t, ip, body (JSON text of an OpenAI chat request), [path] }
#   dynamic: { t, ip, conv (a Replay::Conversation), user (the user turn) }
# A dynamic event's body is built when it is sent, from the history its
# conversation holds then: every earlier turn that was answered, with the
# answer the client actually got; a refused turn stays out of it.  Every
# client that holds a real conversation is dynamic; a fabricated history
# (the fabricated sweep, the few-shot app's examples) is static.
# Times are "real" seconds (a human types for minutes): replay.pl scales
# them down to the module's compressed window.
#
# Repeatable: each scenario seeds its own random stream from --seed and
# its id, and draws prompts from its own slice of each corpus (so the
# same prompt is never sent under two scenarios, and --only does not
# change what a scenario sends; see load_corpora).
#
# Client addresses (sent in X-Forwarded-For only, never contacted) come
# from 198.18.0.0/15, the benchmarking range of RFC 2544: the module
# leaves private and loopback addresses out of its client-network signal
# (/24 per IPv4 client), so the simulated clients need addresses it
# counts.  Each scenario has its own /24 networks:
#   198.18.1     single-key sweep        198.18.2    code sweep
#   198.18.3     fabricated sweep        198.18.4    conversation bot
#   198.18.5     mixed key               198.18.6-55 human users (one each)
#   198.18.56-255  low-and-slow (one /24 per key)
#   198.19.0-119   hydra: the first N with --hydra-nets N, one per key
#                  with --hydra-nets 0
#   198.19.120-209 paraphrased hydra (one /24 per key)
#   198.19.210-249 coding tool (one /24 per person)
#   198.19.250   product app             198.19.251  few-shot app
#   198.19.252   school class (all 30 students behind the school's NAT)
# With --scale > 1 the per-key blocks wrap around.

use strict;
use warnings;

use JSON::PP;
use List::Util qw(min max sum shuffle);
use Replay::Conversation;

our $SPAN = 2.5 * 3600;     # real seconds a full-size run covers

our @HUMAN_FILES = qw(arena_hard_prompts oasst_prompts dolly_subset
    awesome_chatgpt_prompts);
our @DISTILL_FILES = qw(alpaca_5000 codealpaca_2k);

# In the order of the report.  The id seeds the scenario's random
# stream: never change an id (new scenarios take new ones).  Flags for
# the targets (Report.pm): sweep (one key, throttled within 50 requests),
# hydra (throttled within 5 requests), report_only (no target),
# tag_ok (benign, may be tagged, never throttled).
our @SCENARIOS = (
    { id => 0, name => 'single-key sweep', kind => 'attack', sweep => 1,
      build => \&single_sweep },
    { id => 1, name => 'code sweep', kind => 'attack', sweep => 1,
      build => \&code_sweep },
    { id => 6, name => 'fabricated sweep', kind => 'attack', sweep => 1,
      build => \&fabricated_sweep },
    { id => 7, name => 'conversation bot', kind => 'attack', sweep => 1,
      build => \&conversation_bot },
    { id => 2, name => 'hydra', kind => 'attack', hydra => 1,
      build => \&hydra },
    { id => 8, name => 'paraphrased hydra', kind => 'attack', hydra => 1,
      build => \&paraphrased_hydra },
    { id => 3, name => 'mixed key', kind => 'attack', build => \&mixed_key },
    { id => 9, name => 'low-and-slow', kind => 'attack', report_only => 1,
      build => \&low_and_slow },
    { id => 4, name => 'human users', kind => 'benign',
      build => \&human_users },
    { id => 5, name => 'product app', kind => 'benign',
      build => \&product_app },
    { id => 10, name => 'coding tool', kind => 'benign',
      build => \&coding_tool },
    { id => 11, name => 'school class', kind => 'benign',
      build => \&school_class },
    { id => 12, name => 'few-shot app', kind => 'benign', tag_ok => 1,
      build => \&few_shot_app },
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
    for my $sc (@SCENARIOS) {
        next if %only && !$only{ $sc->{name} };
        srand($seed * 7919 + $sc->{id} * 104729 + 17);
        my @keys = $sc->{build}->($ctx);
        for my $k (@keys) {
            @{ $k->{events} } = sort { $a->{t} <=> $b->{t} } @{ $k->{events} };
        }
        push @out, { (map { $_ => $sc->{$_} } grep { exists $sc->{$_} }
            qw(name kind sweep hydra report_only tag_ok)), keys => \@keys };
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
    # Alpaca: each attack scenario gets its own part.
    my @al = @{ $raw{alpaca_5000} };
    my @cut = ([alpaca_sweep => 300], [alpaca_mixed => 300],
        [alpaca_hydra => 1600], [alpaca_fabricated => 300],
        [alpaca_bot => 300], [alpaca_para => 900], [alpaca_slow => 1300]);
    my $at = 0;
    for (@cut) {
        my ($name, $n) = @$_;
        $c{$name} = [ @al[$at .. min($at + $n, scalar @al) - 1] ];
        $at += $n;
    }
    $c{code} = $raw{codealpaca_2k};

    # Human: the Python questions go to the product app.  Of the other
    # code questions of arena_hard and oasst, the first 60% go to the
    # coding tool (the rest stay with the people).  Of what remains, the
    # first 15% of each source are the few-shot app's texts to label; of
    # the rest, the back quarter goes to the mixed key's chat users, the
    # front three quarters to the human users.
    my $py = qr/\b(?:python|pandas|numpy|django|flask|pytest|pip)\b/i;
    my $code = qr/\b(?:code|coding|coder|functions?|javascript|typescript|
        js|java|c\+\+|c\#|rust|golang|sql|regex|bash|shell\ script|implement|
        algorithm|html|css|reactjs|react\ native|react\ component|compiler?|
        debug|git|github|docker|kubernetes|linux|json|yaml|vba|powershell|
        kotlin|swift|php|ruby|haskell|lua|matlab|latex|unity|godot|api|
        programming|program\ in|script\ in|stack\ trace|exception|ffmpeg|
        glsl|shader)\b/xi;
    for my $src (@HUMAN_FILES) {
        my @all = @{ $raw{$src} };
        push @{ $c{product} }, grep { $_ =~ $py } @all;
        my @rest = grep { $_ !~ $py } @all;
        if ($src eq 'arena_hard_prompts' || $src eq 'oasst_prompts') {
            my @cq = grep { $_ =~ $code } @rest;
            my %take = map { $_ => 1 } @cq[0 .. int(@cq * 0.6) - 1];
            push @{ $c{coding} }, grep { $take{$_} } @rest;
            @rest = grep { !$take{$_} } @rest;
        }
        my $nf = int(@rest * 0.15);
        push @{ $c{fewshot} }, @rest[0 .. $nf - 1];
        @rest = @rest[$nf .. $#rest];
        my $cut = int(@rest * 3 / 4);
        $c{human}{$src} = [ @rest[0 .. $cut - 1] ];
        $c{human_mixed}{$src} = [ @rest[$cut .. $#rest] ];
        $c{human_weight}{$src} = scalar @rest;
    }
    @{ $c{$_} } = shuffle @{ $c{$_} } for qw(coding fewshot);
    die "no Python questions for the product app in $dir\n"
        unless @{ $c{product} || [] };
    die "no code questions for the coding tool in $dir\n"
        unless @{ $c{coding} || [] };
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

# One conversation from $start: an opening prompt and follow-ups, sent
# as dynamic events of one Replay::Conversation (each request carries
# the earlier turns with the answers actually received).  Options:
#   next_prompt  sub returning a new prompt (required)
#   system, stream, api   of the conversation
#   first        sub wrapping the opening prompt (default: as is)
#   follow_up    sub returning a follow-up (default: @FOLLOW_UPS)
#   new_share    share of follow-ups that are a new prompt (default 0.2)
#   turns        [min, max] user turns (default [2, 7])
#   gap          median seconds between turns (default 50; lognormal)
# Returns the events and the time of the last one.
sub conversation {
    my (%a) = @_;
    my $next = $a{next_prompt};
    my $conv = Replay::Conversation->new(system => $a{system},
        stream => $a{stream}, api => $a{api});
    my $t = $a{start};
    my @ev;
    my $turns = irand(@{ $a{turns} || [2, 7] });
    for my $turn (1 .. $turns) {
        my $text = $turn == 1
            ? ($a{first} ? $a{first}->($next->()) : $next->())
            : chance($a{new_share} // 0.2) ? $next->()
            : $a{follow_up} ? $a{follow_up}->() : pick(\@FOLLOW_UPS);
        push @ev, { t => $t, ip => $a{ip}, conv => $conv, user => $text };
        # reading the answer and typing the next message
        $t += lognormal($a{gap} // 50, 1.0, 15 * 60) if $turn < $turns;
    }
    return (\@ev, $t);
}

# A human key's day: 2-6 conversations (convs => [min, max]), minutes
# apart (heavy-tailed, median between => seconds, default 12 min).
sub human_key_events {
    my (%a) = @_;
    my @conv;
    my $t = 0;
    my $n = irand(@{ $a{convs} || [2, 6] });
    for my $i (1 .. $n) {
        my ($e, $end) = conversation(%a, start => $t);
        push @conv, $e;
        $t = $end + lognormal($a{between} // 12 * 60, 1.0, 60 * 60)
            if $i < $n;
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
#    clients from a few /24 networks (hydra_nets, at most 120; 0: one
#    /24 per key).
sub hydra {
    my ($ctx) = @_;
    my $nkeys = scaled($ctx, 120, 5);
    my $tpl = $TEMPLATES[ $ctx->{seed} % @TEMPLATES ];
    my $draw = drawer($ctx->{c}{alpaca_hydra});
    my $nets = $ctx->{hydra_nets};
    my @keys;
    for my $i (1 .. $nkeys) {
        my $net = sprintf '198.19.%d',
            $nets > 0 ? int rand min($nets, 120) : ($i - 1) % 120;
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
    my @ips = map { "198.18.5.$_" } 10, 11;
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
            ip => sprintf('198.18.%d.%d', 6 + ($i - 1) % 50, irand(2, 254)));
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
    my @ips = map { "198.19.250.$_" } 11 .. 13;
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

# ---------------------------------------------------------- more data

# Generic follow-ups a campaign appends to get more out of an answer.
our @CAMPAIGN_FOLLOW_UPS = (
    'Please elaborate on your previous answer in more detail.',
    'Explain your reasoning step by step.',
    'Can you provide another example?',
    'Summarize your answer in three bullet points.',
    'What are the limitations of this answer?',
    'Rewrite your answer so that a beginner can follow it.',
    'Are there any alternative approaches? Explain them.',
    'Give a more concise version of your answer.',
);

# One wrapper, written six ways ({x}: the instruction).
our @PARA_WRAPPERS = (
    "You are an expert assistant. Complete the task below and explain your "
        . "reasoning step by step.\n\nTask: {x}",
    "As an expert assistant, carry out the following task, explaining your "
        . "reasoning one step at a time.\n\nTask: {x}",
    "Task: {x}\n\nYou are an expert. Complete this task and walk through "
        . "your reasoning step by step.",
    "Act as a skilled assistant. Solve the task that follows and lay out "
        . "your thinking step by step.\n\n{x}",
    "Please complete the following task the way an expert would, and show "
        . "your reasoning in steps.\n\nThe task: {x}",
    "{x}\n\nComplete the task above as an expert assistant, reasoning step "
        . "by step before you answer.",
);

our $CODING_SYSTEM = <<'EOT';
You are CodeMate, an AI pair programmer running inside the user's code editor. You help the user write, understand, refactor and debug code.

Guidelines:
- Prefer small, focused changes. Do not rewrite code the user did not ask about.
- Show code in fenced code blocks tagged with the language name.
- If the request is ambiguous, state your assumption in one sentence and go on.
- Follow the conventions visible in the user's code: naming, formatting, error handling.
- Never invent APIs. If you are not sure a function or option exists, say so.
- For bugs, explain the cause first, then give the fix.
- Keep explanations short unless the user asks for more detail.
- Never put secrets, keys or credentials in examples; use placeholders.

The editor renders your answers as Markdown. The user may send follow-up messages about your previous answer; keep the context of the conversation.
EOT
chomp $CODING_SYSTEM;

# The coding tool's frame around the first request of a conversation.
our $CODING_FRAME = "<user_request>\n{x}\n</user_request>\n\nAnswer the "
    . "request above. If it involves code, give complete, runnable code.";

our @CODE_ERRORS = ("TypeError: 'NoneType' object is not subscriptable",
    'undefined is not a function', 'NullPointerException',
    "error: expected ';' before '}' token", 'Segmentation fault (core dumped)',
    'SyntaxError: Unexpected token', 'index out of range',
    'cannot borrow `x` as mutable more than once at a time',
    'ReferenceError: x is not defined', 'ORA-00942: table or view does not exist');

# Programming follow-ups ({n}: a number, {e}: an error message).
our @CODE_FOLLOW_UPS = (
    'that fails with "{e}" on line {n}, can you fix it?',
    'can you add unit tests for it?', 'explain the second part again',
    'rewrite it without recursion', 'can you make it faster?',
    'add comments please', 'what is the time complexity?',
    'now handle the empty input case', 'rename the variables, they are unclear',
    'refactor it into smaller functions', 'can you do it without a library?',
    'write the tests first, then the fix', 'why did you use a map there?',
    'it works, thanks. now make it async', 'can you add error handling?',
    'I get "{e}" when I run it', 'what does line {n} do exactly?',
    'shorter version?', 'can you add logging?', 'convert it to typescript',
    'make it work with {n} items without running out of memory',
    'explain it like I am new to this language', 'what edge cases am I missing?',
    'can you write a docstring for it?', 'ok and how do I deploy this?',
    'the test on line {n} still fails', 'is there a more idiomatic way?',
);

# "Explain it step by step" as students type it (some share one).
our @EXPLAIN_PHRASES = (
    "can you explain step by step? I don't get it",
    "Can you explain this step by step? I don't understand it.",
    "please explain step by step, i don't get how to do it",
    "explain it step by step pls, I'm lost",
    "I don't get this one. Can you go through it step by step?",
    "how do you solve this? explain each step please",
);

our @SCHOOL_FOLLOW_UPS = (
    'why did you divide there?', 'wait where did the {n} come from?',
    'I got {n}, is that wrong?', "ok what's the next step",
    'can you give me a similar one to practice?', 'so the answer is {n}?',
    'can you explain the second step again', 'why do we multiply by {k}?',
    'is there an easier way to do it?', 'i still dont get it',
    'thanks! what if it was {n} instead?', 'can you check my work: I got {n}',
    'why do you add them?', 'what does that mean',
    'ok I get it now. can you do the next one with me?',
);

our @NAMES = qw(Ana Ben Chloe David Emma Farid Grace Hugo Ines Jonas Kenji
    Lea Mateo Nora Omar Priya Quinn Rosa Sam Tara Umar Vera Will Yara Zoe);
our @CITIES = qw(Lyon Leeds Porto Graz Ghent Turin Bergen Tartu Brno Cork);
our @THINGS = qw(pencils stickers apples notebooks marbles cookies cards
    stamps);

our @FEWSHOT = (
    ["My flight to Lisbon got cancelled, can I still get a refund for the "
        . "hotel I booked?", 'travel'],
    ['Why does my sourdough bread always come out flat and dense?', 'food'],
    ["What's the difference between a Roth IRA and a traditional 401(k)?",
        'finance'],
);
our $FEWSHOT_SYSTEM = 'Label the topic of each text with exactly one word '
    . 'from: programming, science, health, writing, finance, travel, food, '
    . 'history, entertainment, other.';


# ---------------------------------------------------------- more helpers

sub fill_nk {
    my ($s) = @_;
    $s =~ s/\{n\}/irand(2, 120)/ge;
    $s =~ s/\{k\}/irand(2, 9)/ge;
    $s =~ s/\{e\}/pick(\@CODE_ERRORS)/ge;
    return $s;
}

# A math word problem, procedurally: one of several kinds, varied numbers.
sub math_problem {
    my @n = shuffle @NAMES;
    my ($A, $B) = @n[0, 1];
    my @kinds = (
        sub {
            my ($v, $h, $m) = (irand(6, 24) * 5, irand(1, 4), pick([15, 20, 30, 40, 45]));
            "A train leaves " . pick(\@CITIES) . " at " . irand(6, 11)
                . ":00 and travels at $v km/h. How far has it gone after $h "
                . "hours and $m minutes?";
        },
        sub {
            my ($p, $d) = (irand(12, 180), pick([10, 15, 20, 25, 30, 40]));
            "A jacket costs \$$p. It is on sale for $d% off. How much do you "
                . "pay, and how much do you save?";
        },
        sub {
            my ($b, $k, $y) = (irand(3, 14), irand(2, 4), irand(2, 10));
            my $sum = ($k + 1) * $b + 2 * $y;
            "$A is $k times as old as $B. In $y years the sum of their ages "
                . "will be $sum. How old are they now?";
        },
        sub {
            my $d = pick([6, 8, 10, 12]);
            my ($a, $b) = (irand(1, int($d / 2) - 1), irand(1, int($d / 2) - 1));
            "$A ate $a/$d of a pizza and $B ate $b/$d of it. What fraction "
                . "of the pizza is left?";
        },
        sub {
            my ($w, $l) = (irand(3, 25), irand(26, 60));
            "A rectangular garden is $w m wide and $l m long. How much "
                . "fencing do you need to go around it, and what is its area?";
        },
        sub {
            my ($x, $y) = (irand(2, 9), irand(3, 12));
            "$A can paint a fence in $x hours and $B can paint it in $y "
                . "hours. How long does it take if they work together?";
        },
        sub {
            my ($p, $r, $t) = (irand(5, 50) * 100, irand(2, 8), irand(2, 6));
            "$A puts \$$p in a savings account that pays $r% simple "
                . "interest per year. How much money is in the account after "
                . "$t years?";
        },
        sub {
            my ($a, $b) = (irand(2, 5), irand(2, 5));
            my $n = ($a + $b) * irand(3, 6);
            "The ratio of boys to girls in a class is $a:$b. There are $n "
                . "students. How many girls are there?";
        },
        sub {
            my $k = irand(5, 90);
            my $s = 3 * $k + 3;
            "The sum of three consecutive integers is $s. What are the "
                . "integers?";
        },
        sub {
            my ($n, $p, $m) = (irand(4, 12), irand(2, 15), irand(13, 40));
            my $t = pick(\@THINGS);
            "A pack of $n $t costs \$$p. How much do $m $t cost?";
        },
        sub {
            my ($x, $t) = (irand(3, 20), irand(30, 90) * 2);
            my $th = pick(\@THINGS);
            "$A has $x more $th than $B. Together they have $t. How many "
                . "does each of them have?";
        },
        sub {
            my @s = map { irand(55, 95) } 1 .. 4;
            my $avg = irand(70, 85);
            "${A}'s test scores are " . join(', ', @s[0 .. 2]) . " and $s[3]. "
                . "What score does $A need on the fifth test to get an "
                . "average of $avg?";
        },
    );
    return pick(\@kinds)->();
}


# ---------------------------------------------------------- new scenarios

# 7. One key, ~200 requests, each a new made-up history: a campaign
#    prompt (Alpaca), an assistant answer the API never gave, maybe a
#    second made-up exchange, and a generic follow-up as the last user
#    turn.  Static bodies; Poisson arrivals.
sub fabricated_sweep {
    my ($ctx) = @_;
    my $n = scaled($ctx, 200, 10);
    my $draw = drawer($ctx->{c}{alpaca_fabricated});
    my $mean = uniform(20, 40);
    my $ip = '198.18.3.' . irand(2, 254);
    my $t = uniform(0, 60);
    my @ev;
    for (1 .. $n) {
        my $p = $draw->();
        my @m = (user_msg($p), bot_msg(reply_to($p)));
        if (chance(0.5)) {
            my $f = pick(\@CAMPAIGN_FOLLOW_UPS);
            push @m, user_msg($f), bot_msg(reply_to($p));
        }
        push @m, user_msg(pick(\@CAMPAIGN_FOLLOW_UPS));
        push @ev, { t => $t, ip => $ip, body => body(@m) };
        $t += -$mean * log(1 - rand);
    }
    return { name => 'fabricated-1', key => api_key('fab'), role => 'attack',
        events => \@ev };
}

# 8. One key holding real conversations, over and over: a campaign
#    prompt (Alpaca), then 1-2 generic follow-ups that carry the answers
#    it got; machine-regular gaps; ~200 requests.
sub conversation_bot {
    my ($ctx) = @_;
    my $n = scaled($ctx, 200, 10);
    my $draw = drawer($ctx->{c}{alpaca_bot});
    my $iv = uniform(20, 40);
    my $ip = '198.18.4.' . irand(2, 254);
    my $t = uniform(0, 60);
    my @ev;
    while (@ev < $n) {
        my $conv = Replay::Conversation->new;
        my @turns = ($draw->(), map { pick(\@CAMPAIGN_FOLLOW_UPS) }
            1 .. irand(1, 2));
        for my $u (@turns) {
            last if @ev >= $n;
            push @ev, { t => $t, ip => $ip, conv => $conv, user => $u };
            $t += regular_gap($iv);
        }
    }
    return { name => 'convbot-1', key => api_key('bot'), role => 'attack',
        events => \@ev };
}

# 9. 90 keys x 8 one-shot requests, one wrapper written six ways (one
#    picked per request), staggered starts, one /24 per key.
sub paraphrased_hydra {
    my ($ctx) = @_;
    my $nkeys = scaled($ctx, 90, 5);
    my $draw = drawer($ctx->{c}{alpaca_para});
    my @keys;
    for my $i (1 .. $nkeys) {
        my @ev = regular_run(
            prompts => [ map { wrap(pick(\@PARA_WRAPPERS), $draw->()) } 1 .. 8 ],
            interval => uniform(20, 40),
            start => uniform(0, max(60, $ctx->{span} - 10 * 60)),
            ip => sprintf('198.19.%d.%d', 120 + ($i - 1) % 90, irand(2, 254)));
        push @keys, { name => sprintf('para-%03d', $i),
            key => api_key('para'), role => 'attack', events => \@ev };
    }
    return @keys;
}

# 10. 200 keys x 4 one-shot bare Alpaca instructions, one /24 per key,
#     sparse: the 4 requests at random times over the run.  No target.
sub low_and_slow {
    my ($ctx) = @_;
    my $nkeys = scaled($ctx, 200, 5);
    my $draw = drawer($ctx->{c}{alpaca_slow});
    my @keys;
    for my $i (1 .. $nkeys) {
        my $ip = sprintf('198.18.%d.%d', 56 + ($i - 1) % 200, irand(2, 254));
        my @ev = map { { t => rand $ctx->{span}, ip => $ip,
            body => body(user_msg($draw->())) } } 1 .. 4;
        push @keys, { name => sprintf('slow-%03d', $i),
            key => api_key('slow'), role => 'attack', events => \@ev };
    }
    return @keys;
}

# 11. A coding tool: 40 people, each own key and own /24.  The tool sends
#     one long system prompt and wraps the first request of every
#     conversation in one frame; real multi-turn conversations (human
#     code questions, programming follow-ups) that send back the answers
#     they got; streamed answers; human gaps.
sub coding_tool {
    my ($ctx) = @_;
    my $nkeys = scaled($ctx, 40, 5);
    my $next = drawer($ctx->{c}{coding});
    my @keys;
    for my $i (1 .. $nkeys) {
        my @ev = human_key_events(next_prompt => $next, span => $ctx->{span},
            system => $CODING_SYSTEM, stream => 1,
            first => sub { wrap($CODING_FRAME, $_[0]) },
            follow_up => sub { fill_nk(pick(\@CODE_FOLLOW_UPS)) },
            new_share => 0.1, gap => 90, convs => [2, 5],
            ip => sprintf('198.19.%d.%d', 210 + ($i - 1) % 40, irand(2, 254)));
        push @keys, { name => sprintf('coder-%03d', $i),
            key => api_key('dev'), role => 'benign', events => \@ev };
    }
    return @keys;
}

# 12. A school class: 30 students, own keys, all behind the school's
#     NAT (4 addresses of one /24), in one 50-minute lesson.  Each works
#     through 2-3 math word problems (generated), asking to have it
#     explained step by step (a favourite phrase, often shared), then
#     1-3 follow-ups.
sub school_class {
    my ($ctx) = @_;
    my $nkeys = scaled($ctx, 30, 5);
    my $lesson = min(50 * 60, $ctx->{span});
    my $begin = uniform(0, $ctx->{span} - $lesson);
    my @keys;
    for my $i (1 .. $nkeys) {
        # the first phrases are the popular ones
        my $fav = $EXPLAIN_PHRASES[ min(irand(0, 5), irand(0, 5)) ];
        my $ip = '198.19.252.' . (20 + ($i - 1) % 4);
        my $t = $begin + uniform(0, 4 * 60);
        my @ev;
        for my $k (1 .. irand(2, 3)) {
            my $phrase = chance(0.8) ? $fav : pick(\@EXPLAIN_PHRASES);
            my $ask = sub { my $p = math_problem();
                chance(0.7) ? "$p\n\n$phrase" : "$phrase\n\n$p" };
            my ($e, $end) = conversation(next_prompt => $ask, start => $t,
                ip => $ip, turns => [2, 4], new_share => 0, gap => 70,
                follow_up => sub { fill_nk(pick(\@SCHOOL_FOLLOW_UPS)) });
            push @ev, @$e;
            $t = $end + lognormal(150, 0.6, 10 * 60);
        }
        # the bell rings: what is left after the lesson is not sent
        @ev = grep { $_->{t} <= $begin + $lesson } @ev;
        push @keys, { name => sprintf('student-%02d', $i),
            key => api_key('edu'), role => 'benign', events => \@ev };
    }
    return @keys;
}

# 13. A product that labels texts: one key, the same few-shot pairs
#     (3 texts with their labels) before every text to label (human
#     prompts, cut at 1500 characters); Poisson arrivals; ~200 requests;
#     3 backend IPs.
sub few_shot_app {
    my ($ctx) = @_;
    my $n = scaled($ctx, 200, 10);
    my $draw = drawer($ctx->{c}{fewshot});
    my @shots = map { (user_msg("Text: $_->[0]\nTopic:"), bot_msg($_->[1])) }
        @FEWSHOT;
    my @ips = map { "198.19.251.$_" } 11 .. 13;
    my @times = sort { $a <=> $b } map { rand $ctx->{span} } 1 .. $n;
    my @ev;
    for my $t (@times) {
        my $text = substr($draw->(), 0, 1500);
        push @ev, { t => $t, ip => pick(\@ips), body => body(
            sys_msg($FEWSHOT_SYSTEM), @shots, user_msg("Text: $text\nTopic:")) };
    }
    return { name => 'fewshot-1', key => api_key('label'), role => 'benign',
        events => \@ev };
}

1;
