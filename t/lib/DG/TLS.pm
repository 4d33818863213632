package DG::TLS;
# TLS for the Redis tests: test certificates made with the openssl CLI,
# and a redis-server that serves only TLS.
#
#   use DG::TLS;
#   my $why = DG::TLS::missing();    # undef, or why TLS tests cannot run
#   my $pki = DG::TLS::pki();        # made once per process
#   my $redis = DG::TLS::Redis->start(pki => $pki, password => 'pw',
#                   auth_clients => 1,       # tls-auth-clients yes
#                   cert => 'expired');      # serve the expired certificate
#
# pki() returns a hash of PEM file paths, all EC P-256:
#   ca, ca_key            the CA ("DG Test CA")
#   server, server_key    CN redis.test, SAN DNS:redis.test, IP:127.0.0.1,
#                         signed by the CA, valid for 10 years
#   expired               the same name and key, valid from 2020-01-01 to
#                         2020-01-02 (made with `openssl ca -startdate
#                         -enddate`); undef if openssl could not make it
#   client, client_key    CN dg-client, extendedKeyUsage clientAuth,
#                         signed by the CA
#   wrong_ca, wrong_ca_key  a second CA that signed none of them
#   dir                   the temporary directory
# The server name of the certificates is $DG::TLS::NAME (redis.test).
#
# DG::TLS::Redis is a DG::Harness::Redis with "port 0" and the TLS port
# instead (port() and addr() are the TLS port's), tls-auth-clients no
# unless auth_clients => 1; cli() and cli_pipe() go through
# redis-cli --tls with the CA, the SNI name and the client certificate.
use strict;
use warnings;

use DG::Harness;
use POSIX ();

our $NAME = 'redis.test';

my $PKI;

sub _openssl {
    my ($dir, @args) = @_;
    my $out = `cd '$dir' && openssl @args 2>&1`;
    die "openssl @args failed:\n$out" if $?;
    return $out;
}

# undef when the TLS tests can run, else the reason
sub missing {
    my $v = `openssl version 2>/dev/null`;
    return 'the openssl command is missing (apt-get install openssl)'
        unless $v =~ /OpenSSL/;
    return undef;
}

sub pki {
    return $PKI if $PKI;
    my $dir = DG::Harness::tempdir_for('tls');
    DG::Harness::spit("$dir/openssl.cnf", <<"EOF");
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:$NAME,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ca]
default_ca = dgca
[dgca]
dir = $dir
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
EOF
    mkdir "$dir/issued";
    DG::Harness::spit("$dir/index.txt", '');
    DG::Harness::spit("$dir/serial", "1000\n");
    my @key = qw(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes);
    my @cnf = ('-config', "$dir/openssl.cnf");
    for my $ca (['ca', 'DG Test CA'], ['wrong_ca', 'DG Wrong CA']) {
        _openssl($dir, 'req', @cnf, '-x509', @key, '-keyout',
            "$ca->[0].key", '-out', "$ca->[0].crt", '-days', 3650,
            '-subj', "'/CN=$ca->[1]'", '-extensions', 'v3_ca');
    }
    for my $leaf (['server', $NAME], ['client', 'dg-client']) {
        my ($name, $cn) = @$leaf;
        _openssl($dir, 'req', @cnf, @key, '-keyout', "$name.key", '-out',
            "$name.csr", '-subj', "/CN=$cn");
        _openssl($dir, 'x509', '-req', '-in', "$name.csr", '-CA', 'ca.crt',
            '-CAkey', 'ca.key', '-set_serial', $name eq 'server' ? 2 : 3,
            '-days', 3650, '-sha256', '-extfile', 'openssl.cnf',
            '-extensions', $name, '-out', "$name.crt");
    }
    # `openssl x509 -days` cannot go back in time; `openssl ca` takes
    # dates
    my $expired = eval {
        _openssl($dir, 'ca', @cnf, '-batch', '-notext', '-extensions',
            'server', '-startdate', '20200101000000Z', '-enddate',
            '20200102000000Z', '-in', 'server.csr', '-out', 'expired.crt');
        "$dir/expired.crt";
    };
    $PKI = {
        dir => $dir,
        ca => "$dir/ca.crt", ca_key => "$dir/ca.key",
        wrong_ca => "$dir/wrong_ca.crt", wrong_ca_key => "$dir/wrong_ca.key",
        server => "$dir/server.crt", server_key => "$dir/server.key",
        client => "$dir/client.crt", client_key => "$dir/client.key",
        expired => $expired,
    };
    return $PKI;
}


###########################################################################
package DG::TLS::Redis;
# redis-server serving TLS only:
#   start(pki => DG::TLS::pki(), auth_clients => 0|1, cert => 'server'|
#         'expired', password => .., user => .., conf => ..)
use strict;
use warnings;
our @ISA = ('DG::Harness::Redis');

sub start {
    my ($class, %opt) = @_;
    $opt{pki} //= DG::TLS::pki();
    return $class->SUPER::start(%opt);
}

sub pki { $_[0]{opt}{pki} }

sub _conf {
    my ($self) = @_;
    my $o = $self->{opt};
    my $pki = $o->{pki};
    my $cert = $o->{cert} // 'server';
    die "DG::TLS::Redis: no '$cert' certificate\n" unless $pki->{$cert};
    my $conf = $self->SUPER::_conf;
    my $tls = join "\n", 'port 0', "tls-port $self->{port}",
        "tls-cert-file $pki->{$cert}",
        "tls-key-file $pki->{server_key}",
        "tls-ca-cert-file $pki->{ca}",
        'tls-auth-clients ' . ($o->{auth_clients} ? 'yes' : 'no');
    $conf =~ s/^port \d+$/$tls/m or die "DG::TLS::Redis: no port line\n";
    return $conf;
}

# redis-cli --tls, trusting the CA, with the client certificate (which a
# server with tls-auth-clients no accepts as well); without verifying the
# server's certificate when it is not the good one, or when $insecure
sub _tls_args {
    my ($self, $insecure) = @_;
    my $pki = $self->{opt}{pki};
    $insecure ||= ($self->{opt}{cert} // 'server') ne 'server';
    return ('--tls', '--cacert', $pki->{ca}, '--sni', $DG::TLS::NAME,
        '--cert', $pki->{client}, '--key', $pki->{client_key},
        ($insecure ? '--insecure' : ()));
}

sub cli_cmd {
    my ($self, @args) = @_;
    my ($cli, @rest) = $self->SUPER::cli_cmd(@args);
    return ($cli, $self->_tls_args, @rest);
}

# PONG, or NOAUTH from a server with a password, means it serves TLS
sub _ping {
    my ($self) = @_;
    my @cmd = ($DG::Harness::REDIS_CLI, $self->_tls_args(1), '-h', '127.0.0.1',
        '-p', $self->{port}, 'PING');
    my $pid = open(my $fh, '-|') // return 0;
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        exec { $cmd[0] } @cmd or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    return $out =~ /PONG|NOAUTH/ ? 1 : 0;
}

1;
