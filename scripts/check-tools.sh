#!/bin/sh
# check-tools.sh - before any test runs, prove that every outside program the tests start can do
# what the tests ask of it, and name the Debian package that is missing when one cannot.
#
# A developer's machine has packages that earlier work installed by hand, so "the tests passed
# here" says little about a fresh machine. Each check below exercises the capability the tests
# use (swaks with TLS, not just swaks), so a missing Recommends shows up here, by name, instead
# of as a confusing failure in the middle of the integration tests.
set -u

PYTHON=/usr/bin/python3
failed=0

# need PACKAGE WHAT COMMAND...: run COMMAND quietly; on failure report PACKAGE and WHAT.
need() {
	pkg=$1 what=$2
	shift 2
	if ! "$@" >/dev/null 2>&1; then
		echo "check-tools: $what does not work: install the Debian package $pkg" >&2
		failed=1
	fi
}

# swaks prints "TLS supported" only when Net::SSLeay is installed (a Recommends of swaks).
swaks_tls() { swaks --support 2>&1 | grep -q '^=== TLS supported'; }
# The WKD fixtures serve HTTPS: nginx must have the ssl module.
nginx_ssl() { nginx -V 2>&1 | grep -q 'http_ssl_module'; }
# dirmngr answers gpgconf's query only when it is installed next to gpg.
gpg_dirmngr() { gpgconf --list-components | grep -q '^dirmngr:' && command -v dirmngr; }
# The address book tests start Radicale 3 (its command line and storage layout changed in 3).
radicale_3() { /usr/bin/python3 -m radicale --version | grep -q '^3\.'; }
# The Roundcube plugin's tests run Debian's Roundcube 1.6 from its own tree with SQLite.
roundcube_16() { grep -q "'RCMAIL_VERSION', '1\.6\." /usr/share/roundcube/program/include/iniset.php && test -f /etc/roundcube/defaults.inc.php; }
php_sqlite() { php -r 'exit(extension_loaded("pdo_sqlite") ? 0 : 1);'; }
py_module() { "$PYTHON" -c "import $1"; }
# The settings page's browser tests drive headless Chromium over --remote-debugging-pipe.
chromium_headless() { timeout 60 chromium --headless=new --no-sandbox --disable-gpu --dump-dom 'data:text/html,<p>ok</p>' 2>/dev/null | grep -q '<p>ok</p>'; }

need swaks "swaks" command -v swaks
need libnet-ssleay-perl "swaks --tls (Net::SSLeay)" swaks_tls
need knot "knotd" knotd --version
need knot "knotc" knotc --version
need knot-dnsutils "kdig and knsupdate" sh -c 'kdig --version && knsupdate --version'
need postfix "postfix" test -x /usr/sbin/postfix
need postfix "postconf" postconf -d mail_version
need bind9 "named" /usr/sbin/named -v
need pdns-server "pdns_server and pdnsutil" sh -c 'pdns_server --version; command -v pdnsutil'
need pdns-backend-sqlite3 "PowerDNS's SQLite schema" sh -c 'ls /usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql || ls /usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql'
need gnupg "gpg" gpg --version
need dirmngr "gpg's dirmngr" gpg_dirmngr
need nginx-light "nginx with TLS" nginx_ssl
need postgresql-15 "PostgreSQL 15 initdb" sh -c '/usr/lib/postgresql/15/bin/initdb --version | grep -q " 15\."'
need postgresql-15 "PostgreSQL 15 postgres" sh -c '/usr/lib/postgresql/15/bin/postgres --version | grep -q " 15\."'
need postgresql-client-15 "psql 15" sh -c '/usr/bin/psql --version | grep -q " 15\."'
need radicale "Radicale 3 (the CardDAV server of the address book tests)" radicale_3
need python3-passlib "Radicale's bcrypt htpasswd users (passlib)" py_module passlib.hash
need python3-bcrypt "Radicale's bcrypt htpasswd users (bcrypt)" py_module bcrypt
need certspotter "certspotter (the CT monitor's peer)" sh -c 'certspotter -version | grep -q "0\.1[0-9]"'
need systemd "systemd-analyze verify" sh -c 'systemd-analyze --version && systemd-analyze verify --help | grep -q -- --man'
need dovecot-imapd "Dovecot 2.3 with IMAP" sh -c '/usr/sbin/dovecot --version | grep -q "^2\.3\." && test -x /usr/lib/dovecot/imap && test -x /usr/lib/dovecot/imap-login'
need dovecot-core "Dovecot's quota and imap_zlib plugins" sh -c 'test -f /usr/lib/dovecot/modules/lib10_quota_plugin.so && test -f /usr/lib/dovecot/modules/lib30_imap_zlib_plugin.so'
need dovecot-core "Dovecot's oauth2 passdb (OAuth logins checked by introspection)" grep -q introspection_url /usr/lib/dovecot/auth
need isync "mbsync (the migration benchmark's peer)" sh -c 'mbsync --version | grep -q "^isync 1\."'
need offlineimap3 "offlineimap (the migration benchmark's peer)" offlineimap --version
need roundcube-core "Roundcube 1.6 (the webmail of the plugin's tests)" roundcube_16
need roundcube-sqlite3 "Roundcube's SQLite schema" test -f /usr/share/roundcube/SQL/sqlite.initial.sql
need php-cli "PHP's command line and built-in web server" php -r 'exit(0);'
need php-sqlite3 "PHP's SQLite driver (pdo_sqlite)" php_sqlite
need chromium "headless Chromium (the settings page's browser tests)" chromium_headless
need fonts-dejavu-core "a font for the settings page's screenshots" test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
need openssl "openssl" openssl version
need unbound-host "unbound-host" sh -c 'unbound-host -h 2>&1 | grep -q "unbound-host"'
need ldnsutils "ldns-signzone" sh -c 'command -v ldns-signzone'
need iproute2 "ip netns" ip netns list
need util-linux "unshare" unshare --version
need util-linux "setpriv" setpriv --version
need procps "pkill" pkill --version
need time "/usr/bin/time" test -x /usr/bin/time
need python3-pytest "Python module pytest (for $PYTHON)" py_module pytest
need python3-dnspython "Python module dns (dnspython)" py_module dns.message
need python3-cryptography "Python module cryptography" py_module cryptography.x509

if [ "$failed" -ne 0 ]; then
	echo "check-tools: the tests cannot run; scripts/install-deps.sh --test installs these" >&2
	exit 1
fi
echo "check-tools: every outside program the tests use works"
