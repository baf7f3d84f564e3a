# Sourced by the project's scripts: installs the Debian packages a step needs, once.
#
#   . "$root/scripts/lib/debian-packages.sh"
#   ensure_debian_packages NAME PACKAGE...   # NAME prefixes the messages
#
# A package counts as present when dpkg says "install ok installed". Missing ones are installed
# with `apt-get update` (once per shell) and `apt-get install --no-install-recommends`, as root or
# through sudo. With ODXFLT_NO_APT=1 nothing is installed: a missing package is an error.

odxflt_apt_updated=
ensure_debian_packages() {
  local name=$1
  shift
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  if [ -n "${ODXFLT_NO_APT:-}" ]; then
    printf '%s: FAILED: missing Debian packages: %s\n' "$name" "${missing[*]}" >&2
    exit 1
  fi
  printf '%s: installing %s\n' "$name" "${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  if [ -z "$odxflt_apt_updated" ]; then
    "${sudo[@]}" apt-get update -qq
    odxflt_apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}
