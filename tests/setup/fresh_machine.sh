#!/usr/bin/env bash
# Tries README's commands as on a fresh Debian/Ubuntu machine, without uninstalling anything.
# As root:  unshare -m --propagation private tests/setup/fresh_machine.sh "npx -y deno task test"
#
# In a private mount namespace it hides Deno (installed with npm install -g deno), SoftHSM2,
# PostgreSQL, PgBouncer, promtool, opensc, g++, make, python3 and Node's headers behind bind mounts
# (an empty folder over a folder, a non-executable file over a binary), and puts a fake apt-get in
# place that logs its arguments and, on "install", lifts the mounts of the packages it was given:
# the install happens without touching dpkg. Then it clones this repository into a fresh 0700
# folder and runs the command there as CI does (CI=true, no stdin, empty npm and Deno caches).
set -uo pipefail
[ "$(id -u)" = 0 ] || { echo "run as root, inside unshare -m --propagation private" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/../.." && pwd)
S=$(mktemp -d /tmp/poolkit-fresh-XXXXXX)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p "$S/empty"; : > "$S/noexec"; : > "$S/apt.log"; : > "$S/hidden"
hide() { # hide <package> <path>...: paths resolved through links, so the real file is covered
  local pkg=$1 p real; shift
  for p in "$@"; do
    real=$(readlink -f "$p") && [ -e "$real" ] || continue
    if [ -d "$real" ]; then mount --bind "$S/empty" "$real"; else mount --bind "$S/noexec" "$real"; fi
    echo "$pkg $real" >> "$S/hidden"
  done
}
hide softhsm2 /usr/lib/softhsm /usr/lib/*-linux-gnu/softhsm /usr/bin/softhsm2-util
hide postgresql /usr/lib/postgresql
hide pgbouncer /usr/sbin/pgbouncer
hide prometheus /usr/bin/promtool
hide opensc /usr/bin/pkcs11-tool /usr/lib/*-linux-gnu/pkcs11
hide g++ /usr/bin/g++ /usr/bin/c++
hide make /usr/bin/make
hide python3 /usr/bin/python3
hide libnode-dev /usr/include/node
deno_dir=$(npm root -g)/deno
[ -d "$deno_dir" ] && mount --bind "$S/empty" "$deno_dir" # no Deno: npx must fetch it
cat > "$S/apt-get" <<EOS
#!/usr/bin/env bash
echo "apt-get \$* (DEBIAN_FRONTEND=\${DEBIAN_FRONTEND:-})" >> "$S/apt.log"
[ "\$1" = install ] || exit 0
for a in "\$@"; do grep "^\$a " "$S/hidden" | while read -r _ p; do umount "\$p"; done; done
EOS
chmod +x "$S/apt-get"; mount --bind "$S/apt-get" /usr/bin/apt-get
D=$(mktemp -d /tmp/poolkit-fresh-clone-XXXXXX)
git clone -q "$REPO" "$D/poolkit" && cd "$D/poolkit" || exit 2
echo "+ $1   (in $D/poolkit, $D is mode $(stat -c %a "$D"))"
CI=true npm_config_cache="$S/npm" DENO_DIR="$S/deno" bash -c "$1" </dev/null
rc=$?
echo "exit code: $rc"; echo "apt-get calls:"; cat "$S/apt.log"
cd /; rm -rf "$D" "$S"
exit $rc
