#!/bin/sh
# install-deps.sh - install the Debian 12 packages postwarden needs to build, run and test.
# Only missing packages are installed; nothing happens when all are present.
set -eu

BUILD="build-essential pkg-config clang libclang-rt-14-dev libssl-dev libunbound-dev
libevent-dev zlib1g-dev libsqlite3-dev libjansson-dev librnp-dev libldns-dev libcurl4-openssl-dev
dns-root-data ca-certificates libpq-dev libidn2-dev"
TEST="knot knot-dnsutils postfix swaks libnet-ssleay-perl python3-pytest python3-dnspython python3-cryptography
unbound-host ldnsutils gnupg dirmngr iproute2 openssl procps time nginx-light
bind9 pdns-server pdns-backend-sqlite3 postgresql-15 postgresql-client-15 systemd certspotter
dovecot-imapd isync offlineimap3 radicale python3-passlib python3-bcrypt
chromium fonts-dejavu-core
roundcube roundcube-core roundcube-sqlite3 php-cli php-sqlite3"

# Benchmarks only: a load generator that is not the bottleneck.
BENCH="wrk"

want="$BUILD"
[ "${1:-}" = "--test" ] && want="$BUILD $TEST"
[ "${1:-}" = "--bench" ] && want="$BUILD $TEST $BENCH"

missing=""
for p in $want; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*"ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# Postfix asks questions on install; preseed a local-only setup and start no service.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
# The Roundcube tests run their own instance with its own SQLite database; no system one.
echo "roundcube-core roundcube/dbconfig-install boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update -q
# postgresql-15 creates (and, where services start, runs) Debian's "main" cluster on 5432.
# The tests start their own server on a free port with its own socket directory, so they
# work whether "main" runs or not; it is left as the package made it.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing

# bind9 and pdns-server start their system services on install wherever an init system may
# (no policy-rc.d saying no); so does dovecot-imapd. The tests start private named and pdns_server instances on
# ports of their own; stop and disable the system ones this script has just installed, so
# that nothing is left holding port 53. Services that were there before are not touched.
stop_service() {
	if [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now "$1.service" >/dev/null 2>&1 || true
	elif [ -x "/etc/init.d/$1" ]; then
		$SUDO invoke-rc.d "$1" stop >/dev/null 2>&1 || true
		$SUDO update-rc.d "$1" disable >/dev/null 2>&1 || true
	fi
}
case " $missing " in *" bind9 "*) stop_service named ;; esac
case " $missing " in *" pdns-server "*) stop_service pdns ;; esac
# The tests start private Dovecot instances on ports of their own; not the system's one.
case " $missing " in *" dovecot-imapd "*) stop_service dovecot ;; esac
exit 0
