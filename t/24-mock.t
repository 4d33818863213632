#!/usr/bin/perl
# The mock LLM upstream (tools/mock_llm.pl) on its own, no nginx: request-
# specific answers in the OpenAI and Anthropic shapes, as JSON and as
# server-sent events with the same text, _echo, X-Mock-Status; and the
# replay's reading of those answers (tools/Replay/Conversation.pm).
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../tools";
use DG::Harness;
use JSON::PP;
use Replay::Conversation;

DG::Harness::watchdog(60);

my $up = DG::Harness::Upstream->start;
my $J = JSON::PP->new->canonical->utf8;

sub post {
    my ($path, $body, %h) = @_;
    my $req = join "\r\n", "POST $path HTTP/1.1", 'Host: mock',
        'Content-Type: application/json', 'Content-Length: ' . length($body),
        (map { "$_: $h{$_}" } sort keys %h), 'Connection: close', '', $body;
    return DG::Harness::parse_response(
        DG::Harness::raw_request($up->port, $req));
}

my $Q = 'How do I reverse a linked list in place without recursion?';
my $chat = $J->encode({ model => 'gpt-x', messages => [
    { role => 'system', content => 'Be brief.' },
    { role => 'user', content => 'Hello there, general question' },
    { role => 'assistant', content => 'Hi.' },
    { role => 'user', content => $Q } ] });

# OpenAI JSON: about the last user turn, different every time
my $a = post('/v1/chat/completions', $chat);
my $b = post('/v1/chat/completions', $chat);
is($a->{status}, 200, 'chat: 200');
my $ja = DG::Harness::json_decode($a->{content});
is($ja->{object}, 'chat.completion', 'chat: chat.completion shape');
my $ta = Replay::Conversation::answer_text($a);
my $tb = Replay::Conversation::answer_text($b);
is($ta, $ja->{choices}[0]{message}{content}, 'chat: answer_text reads it');
like($ta, qr/How do I reverse a linked/, 'chat: the answer is about the last '
    . 'user turn');
unlike($ta, qr/general question/, 'chat: not about an earlier turn');
like($ta, qr/\[ref [0-9a-f]{12}\]\z/, 'chat: ends in a ref');
isnt($ta, $tb, 'chat: the same request twice gets two different answers');
is(DG::Harness::echo($a)->{sha256}, DG::Harness::sha256($chat),
    'chat: _echo has the body hash');

# OpenAI stream: the deltas make up an answer of the same kind
(my $sbody = $chat) =~ s/^\{/{"stream":true,/;
my $s = post('/v1/chat/completions', $sbody);
like($s->{headers}{'content-type'}, qr{text/event-stream}, 'stream: SSE');
like($s->{content}, qr/data: \[DONE\]\n\n\z/, 'stream: ends in [DONE]');
my $ts = Replay::Conversation::answer_text($s);
like($ts // '', qr/reverse a linked.*\[ref [0-9a-f]{12}\]\z/s,
    'stream: the deltas make up the answer');
my ($first) = $s->{content} =~ /^data: (.*)$/m;
ok(DG::Harness::json_decode($first)->{_echo}, 'stream: _echo in the first '
    . 'event');

# Anthropic Messages, JSON and stream
my $msg = $J->encode({ model => 'claude-x', max_tokens => 100,
    system => 'Be brief.', messages => [ { role => 'user', content => [
        { type => 'text', text => 'Explain photosynthesis to a child' } ] } ] });
my $m = post('/v1/messages', $msg);
my $jm = DG::Harness::json_decode($m->{content});
is($jm->{type}, 'message', 'messages: type message');
is($jm->{role}, 'assistant', 'messages: role assistant');
is($jm->{content}[0]{type}, 'text', 'messages: a text block');
like($jm->{content}[0]{text}, qr/photosynthesis/, 'messages: about the '
    . 'user turn');
ok($jm->{_echo}, 'messages: _echo');
is(Replay::Conversation::answer_text($m), $jm->{content}[0]{text},
    'messages: answer_text reads it');
(my $msgs = $msg) =~ s/^\{/{"stream":true,/;
my $ms = post('/v1/messages', $msgs);
like($ms->{content}, qr/\Aevent: message_start\n/, 'messages stream: '
    . 'message_start first');
like($ms->{content}, qr/event: message_stop\ndata: .*\n\n\z/,
    'messages stream: message_stop last');
like(Replay::Conversation::answer_text($ms) // '',
    qr/photosynthesis.*\[ref [0-9a-f]{12}\]\z/s,
    'messages stream: the text deltas make up the answer');

# X-Mock-Status still answers with _echo; the replay does not record it
my $e = post('/v1/chat/completions', $chat, 'X-Mock-Status' => 429);
is($e->{status}, 429, 'X-Mock-Status: 429');
ok(DG::Harness::echo($e), 'X-Mock-Status: _echo');
my $em = post('/v1/messages', $msg, 'X-Mock-Status' => 503);
is(DG::Harness::json_decode($em->{content})->{type}, 'error',
    'X-Mock-Status on /v1/messages: an Anthropic error');

# A conversation sends back what it got, and skips a refused turn
my $conv = Replay::Conversation->new(system => 'Be brief.');
my $r1 = post($conv->path, $conv->body('first question about gardens'));
ok($conv->record('first question about gardens', $r1), 'conv: turn 1 '
    . 'recorded');
my $r2 = post($conv->path, $conv->body('why?'), 'X-Mock-Status' => 429);
ok(!$conv->record('why?', $r2), 'conv: a refused turn is not recorded');
my $req3 = $J->decode($conv->body('give me an example'));
is_deeply([ map { $_->{role} } @{ $req3->{messages} } ],
    [qw(system user assistant user)], 'conv: history without the refused turn');
is($req3->{messages}[2]{content}, Replay::Conversation::answer_text($r1),
    'conv: the assistant turn is the answer actually received');

done_testing();
