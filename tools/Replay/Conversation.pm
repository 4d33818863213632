package Replay::Conversation;
# A simulated client's conversation for tools/replay.pl: the history it
# holds, the next request built from it at send time, and the answer it
# actually got appended afterwards.
#
#   my $conv = Replay::Conversation->new(system => TEXT, stream => 0|1,
#                  api => 'openai' | 'anthropic');
#   # one event per user turn: { t, ip, conv => $conv, user => TEXT }
#   my $body = $conv->body($user);       # history + this user turn
#   my $path = $conv->path;              # /v1/chat/completions or
#                                        # /v1/messages
#   $conv->record($user, $response);     # after the answer
#
# record() appends the user turn and the assistant's answer (taken from
# the real response: JSON or server-sent events, OpenAI or Anthropic
# shape) when the answer was a 200 with a readable text.  A refused or
# failed turn is not added: the client got an error, and its next turn
# goes on from the history it has.
use strict;
use warnings;

use JSON::PP;

my $JSON = JSON::PP->new->canonical->utf8;

sub new {
    my ($class, %a) = @_;
    return bless { system => $a{system}, api => $a{api} // 'openai',
        stream => $a{stream} ? 1 : 0, model => $a{model} // 'gpt-x',
        max_tokens => $a{max_tokens} // 512, history => [],
        turns => 0, refused => 0, unreadable => 0 }, $class;
}

sub path {
    $_[0]{api} eq 'anthropic' ? '/v1/messages' : '/v1/chat/completions';
}

# Number of messages the next request carries before its user turn.
sub depth { scalar @{ $_[0]{history} } }

# The JSON text of the request for the user turn $user.
sub body {
    my ($self, $user) = @_;
    my @msgs = (@{ $self->{history} }, { role => 'user', content => $user });
    my %req = (model => $self->{model}, max_tokens => $self->{max_tokens});
    if ($self->{api} eq 'anthropic') {
        $req{system} = $self->{system} if defined $self->{system};
    } else {
        unshift @msgs, { role => 'system', content => $self->{system} }
            if defined $self->{system};
    }
    $req{messages} = \@msgs;
    $req{stream} = JSON::PP::true if $self->{stream};
    return $JSON->encode(\%req);
}

# Appends the turn when $res (a DG::Harness::parse_response hash) is a
# 200 with an answer text; returns true when it did.
sub record {
    my ($self, $user, $res) = @_;
    $self->{turns}++;
    if (!$res || ($res->{status} // 0) != 200) {
        $self->{refused}++;
        return 0;
    }
    my $text = answer_text($res);
    unless (defined $text && length $text) {
        $self->{unreadable}++;
        return 0;
    }
    push @{ $self->{history} }, { role => 'user', content => $user },
        { role => 'assistant', content => $text };
    return 1;
}

# The assistant text of an answer: OpenAI chat completion (choices[0]
# message.content) or Anthropic message (content[].text), as JSON or as
# server-sent events; undef when there is none.
sub answer_text {
    my ($res) = @_;
    my $content = $res->{content} // '';
    my $ctype = ($res->{headers} || {})->{'content-type'} // '';
    if ($ctype =~ m{text/event-stream}i || $content =~ /\A(?:event|data):/) {
        my ($text, $any) = ('', 0);
        for my $line (split /\r?\n/, $content) {
            next unless $line =~ /^data:\s?(.*)$/;
            next if $1 eq '[DONE]';
            my $ev = eval { $JSON->decode($1) };
            next unless ref $ev eq 'HASH';
            if (ref $ev->{choices} eq 'ARRAY') {
                for my $c (@{ $ev->{choices} }) {
                    my $d = ref $c eq 'HASH' && $c->{delta};
                    next unless ref $d eq 'HASH' && defined $d->{content};
                    $text .= $d->{content};
                    $any = 1;
                }
            } elsif (($ev->{type} // '') eq 'content_block_delta'
                     && ref $ev->{delta} eq 'HASH'
                     && defined $ev->{delta}{text}) {
                $text .= $ev->{delta}{text};
                $any = 1;
            }
        }
        return $any ? $text : undef;
    }
    my $j = eval { $JSON->decode($content) };
    return undef unless ref $j eq 'HASH';
    if (ref $j->{choices} eq 'ARRAY' && ref $j->{choices}[0] eq 'HASH') {
        my $m = $j->{choices}[0]{message};
        return ref $m eq 'HASH' ? $m->{content} : $j->{choices}[0]{text};
    }
    if (ref $j->{content} eq 'ARRAY') {
        my @t = map { $_->{text} } grep { ref $_ eq 'HASH'
            && ($_->{type} // '') eq 'text' } @{ $j->{content} };
        return @t ? join('', @t) : undef;
    }
    return undef;
}

1;
