#!/bin/sh
# Usage (as root): unshare --mount --propagation private sh systemd_env_probe.sh DIR
# For each DIR/*.env, start a oneshot user unit with EnvironmentFile= pointing at it and store
# what systemd gave the process in DIR/<name>.out (env -0), or "FAILED" in DIR/<name>.rc.
# A private user manager in a private mount namespace: the host's /run/systemd is untouched.
set -u
dir=$1
rt=$dir/.runtime
mkdir -p "$rt/.config/systemd/user" && chmod 700 "$rt"
mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system || exit 3
export XDG_RUNTIME_DIR=$rt HOME=$rt
for f in "$dir"/*.env; do
    n=$(basename "$f" .env)
    printf '[Service]\nType=oneshot\nEnvironmentFile=%s\nStandardOutput=file:%s\nExecStart=/usr/bin/env -0\n' \
        "$f" "$dir/$n.out" > "$rt/.config/systemd/user/probe-$n.service"
done
/usr/lib/systemd/systemd --user --log-target=console --log-level=warning > "$dir/manager.log" 2>&1 &
sd=$!
i=0
until [ -S "$rt/systemd/private" ]; do i=$((i+1)); [ $i -gt 100 ] && { kill $sd; exit 4; }; sleep 0.1; done
for f in "$dir"/*.env; do
    n=$(basename "$f" .env)
    timeout 20 systemctl --user start "probe-$n.service" > /dev/null 2>&1
    echo $? > "$dir/$n.rc"
done
kill $sd; wait $sd
exit 0
