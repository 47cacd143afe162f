#!/bin/sh
# Runs once while the image is built. Idempotent, so the same step works on a
# public base (installs what is missing) and on a debootstrap root file system
# (where packages.txt was already included and nothing is fetched).
set -eu

packages=$(grep -v '^#' "$(dirname "$0")/packages.txt")
missing=""
for pkg in $packages; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # shellcheck disable=SC2086
  apt-get install -y --no-install-recommends $missing
fi
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log

# An unprivileged account: a sandbox never runs as root. The backends run the
# container as the workspace owner's uid:gid (the caller's own, unless the
# caller is root) so files in /workspace keep their owner.
grep -q '^openwork:' /etc/group || echo 'openwork:x:1000:' >> /etc/group
grep -q '^openwork:' /etc/passwd || echo 'openwork:x:1000:1000:openwork:/persist/home:/bin/sh' >> /etc/passwd

# Mount points. /persist is world-writable with the sticky bit so a new named
# volume (initialised from this directory) is writable by any uid.
mkdir -p /workspace /workspace/extra /persist /runtimes
chmod 1777 /persist
# Every uid needs a temporary directory (Docker mounts a tmpfs over it; Apple's VM uses this one).
chmod 1777 /tmp
