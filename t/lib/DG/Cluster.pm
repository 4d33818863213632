package DG::Cluster;
# A local Redis Cluster for the tests and the cluster benchmark: masters
# and replicas, each a redis-server (DG::Cluster::Node, a
# DG::Harness::Redis) in its own temporary directory on free 127.0.0.1
# ports, with cluster-enabled yes, cluster-node-timeout 1500, its own
# nodes.conf, no persistence; joined by `redis-cli --cluster create`.
# Every node is stopped at END like any DG::Harness server, even when the
# test dies.
#
#   use DG::Cluster;
#   my $c = DG::Cluster->start;          # 3 masters, 1 replica each
#   my $c = DG::Cluster->start(masters => 3, replicas => 1,
#               password => 'pw', conf => "extra redis.conf lines");
#
#   $c->seed                 "127.0.0.1:port" of a live master
#   $c->nodes                every node started (dead ones too)
#   $c->masters / replicas   live nodes in that role now (CLUSTER NODES)
#   $c->slot($key)           its hash slot (CRC16 of the hash tag, local)
#   $c->keyslot($key)        the same asked of Redis (CLUSTER KEYSLOT)
#   $c->owner($slot)         the live master serving the slot
#   $c->node_for($key)       the live master serving the key
#   $c->slots_of($node)      [first, last] ranges the master serves
#   $c->scan($node, $pattern)   the node's keys matching $pattern
#   $c->kill($node)          SIGKILL (the node's pid is forgotten)
#   $c->wait_promotion($dead, $timeout)
#                            waits until a replica of $dead serves its
#                            slots and every live node agrees; the new
#                            master, or undef after $timeout s (20)
#   $c->migrate_slot($slot, $from, $to, half => 1 | keys => [..])
#                            moves the slot: SETSLOT IMPORTING on $to,
#                            MIGRATING on $from, MIGRATE of its keys,
#                            SETSLOT NODE on every master; with half => 1
#                            (half of the keys) or keys => [...] (those)
#                            it stops with the keys partly moved: the
#                            slot stays MIGRATING / IMPORTING and the
#                            nodes answer ASK.  Returns a migration
#                            hash {slot, from, to, moved, left};
#   $c->finish_migration($m) moves the rest and assigns the slot to $to
#   $c->wait_ok($timeout)    waits until every live node says
#                            cluster_state:ok and they agree on the slot
#                            map (replicas synchronised); dies on timeout
#   $c->view($node)          its CLUSTER NODES, parsed: [{id, port, flags
#                            => {..}, master, slots => [[a, b]..],
#                            migrating => {slot => id}, importing => ..}]
#   $c->stop                 stops every node
#
# Node (DG::Cluster::Node): everything of DG::Harness::Redis (port,
# addr, pid, dir, cli, cli_pipe, pause, resume, restart, log), plus id
# (its cluster node id), bus_port, alive.
use strict;
use warnings;

use DG::Harness;
use Time::HiRes qw(sleep time);

our $NODE_TIMEOUT = 1500;

# CRC16 (XMODEM, polynomial 0x1021) as Redis Cluster uses it.
my @CRC16;
for my $i (0 .. 255) {
    my $crc = $i << 8;
    for (1 .. 8) {
        $crc = $crc & 0x8000 ? (($crc << 1) ^ 0x1021) : ($crc << 1);
        $crc &= 0xffff;
    }
    $CRC16[$i] = $crc;
}

sub crc16 {
    my ($s) = @_;
    my $crc = 0;
    for my $b (unpack 'C*', $s) {
        $crc = (($crc << 8) & 0xffff) ^ $CRC16[(($crc >> 8) ^ $b) & 0xff];
    }
    return $crc;
}

# The hash slot of a key: of the text between the first { and the next }
# when that is not empty, else of the whole key.
sub slot {
    my $key = pop;          # $c->slot($key) or DG::Cluster::slot($key)
    my $s = index($key, '{');
    if ($s >= 0) {
        my $e = index($key, '}', $s + 1);
        $key = substr($key, $s + 1, $e - $s - 1) if $e > $s + 1;
    }
    return crc16($key) % 16384;
}

sub start {
    my ($class, %opt) = @_;
    my $nm = $opt{masters} // 3;
    my $nr = $opt{replicas} // 1;
    die "DG::Cluster: at least 3 masters\n" if $nm < 3;
    my $self = bless { opt => \%opt, nodes => [] }, $class;
    for (1 .. $nm * (1 + $nr)) {
        push @{ $self->{nodes} }, DG::Cluster::Node->start(
            (defined $opt{password} ? (password => $opt{password}) : ()),
            ($opt{conf} ? (conf => $opt{conf}) : ()));
    }
    my @addr = map { $_->addr } @{ $self->{nodes} };
    my $n0 = $self->{nodes}[0];
    my @cmd = ($n0->cli_cmd('--cluster', 'create', @addr,
        '--cluster-replicas', $nr, '--cluster-yes'));
    my $out = `@{[ join ' ', map { _q($_) } @cmd ]} 2>&1`;
    die "redis-cli --cluster create failed:\n$out\n"
        if $? || $out !~ /All 16384 slots covered/;
    $self->{create_output} = $out;
    $_->id for @{ $self->{nodes} };
    $self->wait_ok($opt{timeout} // 30);
    return $self;
}

sub _q { my $s = shift; $s =~ s/'/'\\''/g; "'$s'" }

sub nodes { @{ $_[0]{nodes} } }
sub live  { grep { $_->alive } @{ $_[0]{nodes} } }

sub node_by_id {
    my ($self, $id) = @_;
    my ($n) = grep { $_->id eq $id } $self->nodes;
    return $n;
}

sub node_by_port {
    my ($self, $port) = @_;
    my ($n) = grep { $_->port == $port } $self->nodes;
    return $n;
}

# CLUSTER NODES of $node, parsed.
sub view {
    my ($self, $node) = @_;
    my @out;
    for my $line (split /\n/, $node->cli('CLUSTER', 'NODES')) {
        my ($id, $addr, $flags, $master, undef, undef, $epoch, $link,
            @slots) = split ' ', $line;
        next unless defined $link;
        my ($port) = $addr =~ /:(\d+)/;
        my %e = (id => $id, port => $port, epoch => $epoch, link => $link,
            flags => { map { $_ => 1 } split /,/, $flags },
            master => $master eq '-' ? undef : $master, slots => [],
            migrating => {}, importing => {});
        for (@slots) {
            if (/^\[(\d+)->-(\w+)\]$/) { $e{migrating}{$1} = $2 }
            elsif (/^\[(\d+)-<-(\w+)\]$/) { $e{importing}{$1} = $2 }
            elsif (/^(\d+)-(\d+)$/) { push @{ $e{slots} }, [$1, $2] }
            elsif (/^(\d+)$/) { push @{ $e{slots} }, [$1, $1] }
        }
        push @out, \%e;
    }
    return \@out;
}

# The slot map a node believes in, as text: "first-last:port ..." of
# every master not flagged fail, sorted.
sub _map_text {
    my ($self, $view) = @_;
    my @r;
    for my $e (@$view) {
        next if $e->{flags}{fail} || !$e->{flags}{master};
        push @r, map { "$_->[0]-$_->[1]:$e->{port}" } @{ $e->{slots} };
    }
    return join ' ', sort { ($a =~ /^(\d+)/)[0] <=> ($b =~ /^(\d+)/)[0] } @r;
}

# Live nodes' roles, from the view of the first live node.
sub _roles {
    my ($self) = @_;
    my ($any) = $self->live or return {};
    my %role;
    for my $e (@{ $self->view($any) }) {
        my $n = $self->node_by_id($e->{id}) or next;
        next unless $n->alive;
        $role{ $e->{id} } = $e->{flags}{master} ? 'master' : 'replica';
    }
    return \%role;
}

sub masters {
    my ($self) = @_;
    my $r = $self->_roles;
    return grep { ($r->{ $_->id } // '') eq 'master' } $self->live;
}

sub replicas {
    my ($self) = @_;
    my $r = $self->_roles;
    return grep { ($r->{ $_->id } // '') eq 'replica' } $self->live;
}

sub seed {
    my ($self) = @_;
    my ($m) = $self->masters;
    return $m->addr;
}

sub keyslot {
    my ($self, $key) = @_;
    my ($n) = $self->live;
    return $n->cli('CLUSTER', 'KEYSLOT', $key) + 0;
}

# [first, last] ranges a master serves (its own view).
sub slots_of {
    my ($self, $node) = @_;
    my ($me) = grep { $_->{flags}{myself} } @{ $self->view($node) };
    return $me ? @{ $me->{slots} } : ();
}

sub owner {
    my ($self, $slot) = @_;
    my ($any) = $self->masters or return undef;
    for my $e (@{ $self->view($any) }) {
        next if $e->{flags}{fail} || !$e->{flags}{master};
        for (@{ $e->{slots} }) {
            return $self->node_by_id($e->{id})
                if $slot >= $_->[0] && $slot <= $_->[1];
        }
    }
    return undef;
}

sub node_for { $_[0]->owner($_[0]->slot($_[1])) }

sub scan {
    my ($self, $node, $pattern) = @_;
    return grep { length } split /\n/,
        $node->cli('--scan', '--pattern', $pattern // '*');
}

sub _state_ok {
    my ($self, $node) = @_;
    return $node->cli('CLUSTER', 'INFO') =~ /^cluster_state:ok\r?$/m;
}

# Why the cluster is not settled yet (undef: it is).
sub _unsettled {
    my ($self) = @_;
    my @live = $self->live;
    my %live_id = map { $_->id => 1 } @live;
    my $map;
    for my $n (@live) {
        return $n->addr . ': cluster_state not ok' unless $self->_state_ok($n);
        my $view = $self->view($n);
        my $text = $self->_map_text($view);
        $map //= $text;
        return $n->addr . " sees another slot map: $text / $map"
            if $text ne $map;
        for my $e (@$view) {
            next unless $live_id{ $e->{id} };
            my @bad = grep { $e->{flags}{$_} } qw(fail fail? handshake noaddr);
            return $n->addr . " sees $e->{port} as @bad" if @bad;
            # a node is a master with slots or a replica: not yet told
            # to replicate, it is a master without any
            return $n->addr . " sees $e->{port} as a master without slots"
                if $e->{flags}{master} && !@{ $e->{slots} };
            return $n->addr . " sees slot migrations open"
                if %{ $e->{migrating} } || %{ $e->{importing} };
        }
        my %known = map { $_->{id} => 1 } @$view;
        my @unknown = grep { !$known{ $_->id } } @live;
        return $n->addr . ' does not know ' . $unknown[0]->addr if @unknown;
        my ($me) = grep { $_->{flags}{myself} } @$view;
        if ($me && $me->{flags}{slave}) {
            my $info = $n->cli('INFO', 'replication');
            return $n->addr . ' replica not synchronised'
                unless $info =~ /^master_link_status:up\r?$/m;
        }
    }
    return $map =~ /\S/ ? undef : 'no slots';
}

sub wait_ok {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // 30);
    my $why;
    while (time < $deadline) {
        $why = $self->_unsettled or return $self;
        sleep 0.1;
    }
    die "DG::Cluster: not settled after ${\($timeout // 30)} s: $why\n";
}

sub kill {
    my ($self, $node) = @_;
    # what it served, for wait_promotion
    $self->{slots_of}{ $node->id } = [$self->slots_of($node)];
    $node->kill9;
    return $node;
}

sub wait_promotion {
    my ($self, $dead, $timeout) = @_;
    my $deadline = time + ($timeout // 20);
    my @was = map { $_->[0] } $self->_dead_slots($dead);
    while (time < $deadline) {
        if (!$self->_unsettled) {
            my $new = @was ? $self->owner($was[0]) : undef;
            return $new if $new && $new != $dead;
        }
        sleep 0.1;
    }
    return undef;
}

# The slot ranges a node served, as the living remember it.
sub _dead_slots {
    my ($self, $dead) = @_;
    return @{ $self->{slots_of}{ $dead->id } }
        if $self->{slots_of}{ $dead->id };
    for my $n ($self->live) {
        my ($e) = grep { $_->{id} eq $dead->id } @{ $self->view($n) };
        return @{ $e->{slots} } if $e && @{ $e->{slots} };
    }
    return ();
}

sub _ok {
    my ($node, @cmd) = @_;
    my $r = $node->cli(@cmd);
    die "DG::Cluster: @cmd on " . $node->addr . ": $r\n" unless $r eq 'OK';
}

sub migrate_slot {
    my ($self, $slot, $from, $to, %o) = @_;
    _ok($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $from->id);
    _ok($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $to->id);
    my @keys = grep { length } split /\n/,
        $from->cli('CLUSTER', 'GETKEYSINSLOT', $slot, 100000);
    my @move = @keys;
    if ($o{keys}) {
        my %want = map { $_ => 1 } @{ $o{keys} };
        @move = grep { $want{$_} } @keys;
    } elsif ($o{half}) {
        @move = (sort @keys)[0 .. int(@keys / 2) - 1];
    }
    my %moved = map { $_ => 1 } @move;
    my $m = { slot => $slot, from => $from, to => $to, moved => [],
        left => [grep { !$moved{$_} } @keys] };
    $self->_migrate_keys($m, @move);
    return $m if $o{half} || $o{keys};
    $self->finish_migration($m);
    return $m;
}

sub _migrate_keys {
    my ($self, $m, @keys) = @_;
    my ($from, $to) = @$m{qw(from to)};
    my @auth = defined $self->{opt}{password}
        ? ('AUTH', $self->{opt}{password}) : ();
    while (my @batch = splice @keys, 0, 100) {
        my $r = $from->cli('MIGRATE', '127.0.0.1', $to->port, '', 0, 5000,
            @auth, 'KEYS', @batch);
        die "DG::Cluster: MIGRATE of slot $m->{slot}: $r\n"
            unless $r eq 'OK' || $r eq 'NOKEY';
        push @{ $m->{moved} }, @batch;
    }
}

sub finish_migration {
    my ($self, $m) = @_;
    my ($from, $to, $slot) = @$m{qw(from to slot)};
    my @rest = grep { length } split /\n/,
        $from->cli('CLUSTER', 'GETKEYSINSLOT', $slot, 100000);
    $self->_migrate_keys($m, @rest);
    $m->{left} = [];
    # the importing node first (it bumps its epoch), then the old owner,
    # then the other masters
    _ok($to, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $to->id);
    _ok($from, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $to->id);
    for my $n ($self->masters) {
        next if $n == $to || $n == $from;
        _ok($n, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $to->id);
    }
    $self->wait_ok(15);
    return $m;
}

sub stop {
    my ($self) = @_;
    $_->stop for @{ $self->{nodes} };
}

sub DESTROY { local ($?, $@); $_[0]->stop }


###########################################################################
package DG::Cluster::Node;
# One cluster node: a DG::Harness::Redis with cluster lines in its
# redis.conf and its bus on a port of its own (cluster-port).
use strict;
use warnings;
our @ISA = ('DG::Harness::Redis');

sub start {
    my ($class, %opt) = @_;
    for my $try (1 .. 5) {
        my $self = eval { $class->SUPER::start(%opt) };
        return $self if $self;
        die $@ if $try == 5 || $@ !~ /in use/i;
    }
}

sub _conf {
    my ($self) = @_;
    $self->{bus} //= DG::Harness::free_port();
    my $conf = $self->SUPER::_conf;
    $conf .= join "\n",
        'cluster-enabled yes',
        "cluster-node-timeout $DG::Cluster::NODE_TIMEOUT",
        "cluster-config-file $self->{dir}/nodes.conf",
        "cluster-port $self->{bus}",
        # a replica's first synchronisation at once, not after 5 s
        'repl-diskless-sync-delay 0',
        '';
    $conf .= "masterauth $self->{opt}{password}\n"
        if defined $self->{opt}{password};
    return $conf;
}

sub bus_port { $_[0]{bus} }
sub alive    { $_[0]{pid} ? 1 : 0 }

sub id {
    my ($self) = @_;
    $self->{id} //= $self->cli('CLUSTER', 'MYID');
    return $self->{id};
}

# SIGKILL: no shutdown, sockets closed by the kernel.
sub kill9 {
    my ($self) = @_;
    return unless $self->{pid};
    DG::Harness::_reap($self->{pid}, 'KILL', 5);
    $self->{pid} = undef;
    DG::Harness::_unregister($self);
}

1;
