# Shared by the scripts in this folder: paths, names and small helpers.
# Sourced, never run. Everything here is derived from the checkout, so two clones share caches
# (venv, image) only when their inputs are byte-identical.

FLEETWAVE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FLEETWAVE_CACHE=${FLEETWAVE_CACHE:-/var/cache/fleetwave}
FLEETWAVE_STATE=${FLEETWAVE_STATE:-/var/lib/fleetwave}

# The venv and the stand-in image are keyed by the hash of what builds them: editing
# requirements.txt or the image recipe builds a new one instead of mutating a shared one.
_hash() { cat "$@" | sha256sum | cut -c1-12; }
FLEETWAVE_VENV="$FLEETWAVE_CACHE/venv-$(_hash "$FLEETWAVE_ROOT/requirements.txt")"
FLEETWAVE_IMAGE="localhost/fleetwave-dgx:$(_hash "$FLEETWAVE_ROOT/scripts/build-standin-image")"
FLEETWAVE_WHEELS="$FLEETWAVE_CACHE/wheels"
# The reference agent imports nats-py from this pure-Python wheel on the hosts (zipimport),
# the same version the controller runs.
NATS_PY_VERSION=$(sed -n 's/^nats-py==//p' "$FLEETWAVE_ROOT/requirements.txt")
FLEETWAVE_NATS_WHEEL="$FLEETWAVE_WHEELS/nats_py-$NATS_PY_VERSION-py3-none-any.whl"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_root() {
  [ "$(id -u)" -eq 0 ] || die "run this as root (it installs apt packages and starts containers): sudo $0 $*"
}

# Puts the project's venv first on PATH and points Ansible at this checkout; Python finds the
# collection (fleetwave.rollout is this checkout) as Ansible does, through collections/.
use_venv() {
  [ -x "$FLEETWAVE_VENV/bin/ansible-playbook" ] || die "no virtualenv at $FLEETWAVE_VENV; run scripts/setup first"
  export PATH="$FLEETWAVE_VENV/bin:$PATH"
  export ANSIBLE_CONFIG="$FLEETWAVE_ROOT/ansible.cfg"
  export PYTHONPATH="$FLEETWAVE_ROOT/collections${PYTHONPATH:+:$PYTHONPATH}"
  export FLEETWAVE_NATS_WHEEL FLEETWAVE_IMAGE
}
