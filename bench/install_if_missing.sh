# shellcheck shell=bash
# Sourced by the scripts in bench/: `install_if_missing COMMAND PACKAGE WHO`
# installs Debian's PACKAGE when COMMAND is not on the PATH (through sudo
# unless root), as ./bazelw installs what the build needs; WHO names the
# script in its message.
install_if_missing() {
  command -v "$1" >/dev/null && return 0
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  echo "$3: installing $2" >&2
  "${sudo[@]}" apt-get update -qq >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >&2
}
