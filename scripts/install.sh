#!/bin/sh
# Install, update or uninstall distrod in this distro around a downloaded static `distrod`
# binary, for people who prefer a script to running the binary themselves. It checks what
# it can before handing over to the binary, which does the work.
#
# POSIX sh only (dash, busybox ash, bash): it runs on Debian, Ubuntu, Fedora, Arch and
# Alpine as they come.
set -eu

prog=install.sh

usage() {
    cat <<'EOF'
Usage: install.sh install [FILE]   install FILE (default: ./distrod) into /opt/distrod
       install.sh update [FILE]    replace the installed distrod with FILE (default: ./distrod)
       install.sh uninstall        remove what `install` put into this distro
       install.sh --help           show this help

Run as root (sudo). FILE is the static `distrod` binary for this machine; the script checks
that it is an ELF file for this architecture, then runs:
  install    FILE install
  update     /opt/distrod/bin/distrod update FILE
  uninstall  /opt/distrod/bin/distrod uninstall
and exits with that command's status.
EOF
}

die() {
    echo "$prog: error: $*" >&2
    exit 1
}

installed=/opt/distrod/bin/distrod

# The ELF machine number (e_machine) distrod has on this architecture.
expected_machine() {
    case "$(uname -m)" in
        x86_64 | amd64) echo 62 ;;
        aarch64 | arm64) echo 183 ;;
        *) die "distrod runs on x86_64 and aarch64, not on $(uname -m)" ;;
    esac
}

# Refuses FILE unless it is a 64-bit little-endian ELF file for this machine. od reads
# the header portably (GNU coreutils and busybox alike).
check_elf() {
    file=$1
    [ -e "$file" ] || die "$file does not exist (download the static distrod binary first)"
    [ -f "$file" ] || die "$file is not a regular file"
    [ -r "$file" ] || die "$file cannot be read"
    bytes=$(od -A n -t u1 -N 20 "$file") || die "cannot read $file"
    # shellcheck disable=SC2086 # split into the header's bytes on purpose
    set -- $bytes
    [ $# -eq 20 ] || die "$file is not an ELF file (too short)"
    [ "$1 $2 $3 $4" = "127 69 76 70" ] || die "$file is not an ELF file"
    [ "$5" = 2 ] || die "$file is not a 64-bit ELF file"
    [ "$6" = 1 ] || die "$file is not a little-endian ELF file"
    machine=$((${19} + ${20} * 256))
    want=$(expected_machine)
    [ "$machine" -eq "$want" ] ||
        die "$file is built for another machine (ELF machine $machine; this $(uname -m) needs $want)"
}

[ $# -ge 1 ] || {
    usage >&2
    exit 2
}
cmd=$1
shift
case "$cmd" in
    -h | --help | help)
        usage
        exit 0
        ;;
    install | update)
        [ $# -le 1 ] || die "$cmd takes at most one FILE (see --help)"
        file=${1:-./distrod}
        ;;
    uninstall)
        [ $# -eq 0 ] || die "uninstall takes no FILE (see --help)"
        ;;
    *)
        echo "$prog: error: unknown command '$cmd'" >&2
        usage >&2
        exit 2
        ;;
esac

[ "$(id -u)" -eq 0 ] || die "must run as root (sudo sh $0 $cmd ...)"

case "$cmd" in
    install)
        check_elf "$file"
        # A bare name would be looked up on PATH.
        case "$file" in
            */*) ;;
            *) file=./$file ;;
        esac
        if [ ! -x "$file" ]; then
            echo "$prog: making $file executable" >&2
            chmod u+x "$file" || die "cannot make $file executable"
        fi
        exec "$file" install
        ;;
    update)
        check_elf "$file"
        [ -x "$installed" ] || die "distrod is not installed ($installed is missing): run '$prog install' first"
        exec "$installed" update "$file"
        ;;
    uninstall)
        if [ ! -e "$installed" ]; then
            echo "$prog: distrod is not installed ($installed is missing): nothing to do" >&2
            exit 0
        fi
        exec "$installed" uninstall
        ;;
esac
