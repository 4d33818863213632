#!/usr/bin/perl
# The Debian package (make deb) on this machine: apt-get install of the
# .deb enables the module as Debian's own module packages are; nginx -t
# passes on a configuration that includes modules-enabled and names no
# .so; a guarded request is served; distill-guard-ctl is installed; the
# package is removed cleanly, and always removed at the end.
use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DG::Harness;
use DG::Util qw(chat post key_id http_conf guarded);

my $PKG = 'libnginx-mod-http-distill-guard';
my $ROOT = DG::Harness::root();
my ($DEB) = sort glob("$ROOT/build/deb/${PKG}_*.deb");
my $SO = '/usr/lib/nginx/modules/ngx_distill_guard_module.so';
my $LINK = '/etc/nginx/modules-enabled/50-mod-http-distill-guard.conf';

plan skip_all => 'installing a package needs root' if $> != 0;
plan skip_all => "no package in build/deb (run make deb)" unless $DEB;

sub installed {
    my $s = `dpkg-query -W -f='\${Status}' $PKG 2>/dev/null`;
    return $s =~ /ok installed/;
}

plan skip_all => "$PKG is installed already: this test would remove it"
    if installed();

DG::Harness::watchdog(300);

# the package never stays behind, whatever happens below
my $owner = $$;
sub purge {
    return `DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $PKG 2>&1`;
}
END { local $?; purge() if $$ == $owner && installed() }
$SIG{INT} = $SIG{TERM} = sub { purge() if installed(); exit 1 };

sub run {
    my $out = `@_ 2>&1`;
    return ($? >> 8, $out);
}

my ($rc, $out) = run('DEBIAN_FRONTEND=noninteractive apt-get install -y -q '
    . "--no-install-recommends $DEB");
is($rc, 0, 'apt-get install ./' . ($DEB =~ s{.*/}{}r)) or diag($out);
ok(installed(), 'dpkg: installed');
ok(-f $SO, "the module in $SO");
is(readlink($LINK), '/usr/share/nginx/modules-available/'
    . 'mod-http-distill-guard.conf', "enabled: $LINK");
like(DG::Harness::slurp($LINK), qr{^load_module modules/ngx_distill_guard_module\.so;$}m,
    'the snippet loads it');
ok(-x '/usr/bin/distill-guard-ctl', 'distill-guard-ctl in /usr/bin');
ok(-f '/usr/share/man/man1/distill-guard-ctl.1.gz', 'its manual page');

my $redis = DG::Harness::Redis->start;
my $up = DG::Harness::Upstream->start;
my %opt = (module => 0, upstream => $up, redis => $redis,
    main => 'include /etc/nginx/modules-enabled/*.conf;',
    http => http_conf(secret => 't60-secret', redis => '%%REDIS%%',
        prefix => 't60', locations => ['/v1/' => guarded()]));

# An nginx directory as Debian's prefix (/usr/share/nginx): "modules"
# is the module directory the snippets name relatively.
sub prepared {
    my $n = DG::Harness::Nginx->_prepare(%opt);
    symlink '/usr/lib/nginx/modules', $n->dir . '/modules' or die $!;
    return $n;
}

sub nginx_t {
    my $n = prepared();
    return run($DG::Harness::NGINX, '-t', '-p', $n->dir . '/', '-c',
        $n->dir . '/nginx.conf');
}

my ($rc_t, $t) = nginx_t();
is($rc_t, 0, 'nginx -t: the packaged module, by modules-enabled')
    or diag($t);

my $ngx = prepared();
my $err = $ngx->_launch;
is($err, undef, 'nginx starts') or diag($err);
DG::Harness::_register($ngx);
unlike($ngx->conf, qr/\.so\b/, 'the configuration names no .so');
my $res = post($ngx, '/v1/x', 'sk-t60-1');
is($res->{status}, 200, 'a guarded request: 200');
is($res->{headers}{'x-distill-guard-action'}, 'pass', 'accounted: pass');
my $id = key_id('sk-t60-1', 't60-secret');
is($redis->cli('EXISTS', "t60:{$id}:w"), 1, 'its window in Redis');

($rc, $out) = run('/usr/bin/distill-guard-ctl', '--redis', $redis->addr,
    '--prefix', 't60', '--json', 'show', $id);
is($rc, 0, 'the packaged distill-guard-ctl shows the key') or diag($out);
like($out, qr/"requests":1\b/, 'one request in its window');
$ngx->stop;

($rc, $out) = run("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $PKG");
is($rc, 0, 'apt-get purge') or diag($out);
ok(!installed(), 'dpkg: not installed');
ok(!-e $SO, 'the module is gone');
ok(!-e $LINK && !-l $LINK, 'the modules-enabled link is gone');
ok(!-e '/usr/share/nginx/modules-available/mod-http-distill-guard.conf',
    'the snippet is gone');
ok(!-e '/usr/bin/distill-guard-ctl', 'distill-guard-ctl is gone');
($rc_t, $t) = nginx_t();
isnt($rc_t, 0, 'nginx -t fails without the package');
like($t, qr/unknown directive "distill_guard/, '... for the unknown directive');

done_testing();
