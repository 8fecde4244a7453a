#!/usr/bin/env bash
# Build a small Debian rootfs with systemd for distrod's tests and demo, in seconds.
#
# Instead of debootstrap (~50 s), the .debs are resolved and downloaded with apt-get against
# an empty dpkg status file and a private cache, then unpacked with dpkg-deb into a tree
# laid out with merged-/usr symlinks. No maintainer script runs, so what they would have
# done (users, shadow files, PAM stack, machine-id, ...) is done here by hand.
#
# The tree is cached under .cache/rootfs/<key>/, keyed on the package list and this
# script's content; it is rebuilt only when the key changes.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/build-rootfs.sh [--out DIR] [--tarball FILE] [--user NAME]

Build (or reuse from .cache/rootfs/) a small Debian rootfs with systemd, made from the
packages of this machine's apt sources, and print its path.

Options:
  --out DIR       copy the tree to DIR (must not exist or be empty); print DIR
  --tarball FILE  write the tree as FILE, a multi-block tar.xz like the image server's
                  (tar --xattrs --numeric-owner --sort=name | xz -T0); print FILE
  --user NAME     the unprivileged user to create (uid 1000, default: distrod)
  -h, --help      show this help

Without --out or --tarball the cached tree's path is printed. Progress goes to stderr.
Needs root (chroot, file ownership) and apt-get, dpkg-deb, tar, xz.
Environment: DISTROD_ROOTFS_UPDATE_LISTS=1 downloads private apt lists instead of reading
this machine's /var/lib/apt/lists.
EOF
}

die() { echo "build-rootfs: error: $*" >&2; exit 1; }
log() { echo "build-rootfs: $*" >&2; }

out_dir=""
tarball=""
user_name="distrod"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) [[ $# -ge 2 ]] || die "--out needs a directory"; out_dir="$2"; shift 2 ;;
        --tarball) [[ $# -ge 2 ]] || die "--tarball needs a file name"; tarball="$2"; shift 2 ;;
        --user) [[ $# -ge 2 ]] || die "--user needs a name"; user_name="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

[[ "$user_name" =~ ^[a-z_][a-z0-9_-]*$ ]] || die "invalid user name '$user_name'"
[[ $(id -u) -eq 0 ]] || die "must run as root (the tree holds root-owned and setuid files)"
for tool in apt-get dpkg-deb tar xz chroot sha256sum flock useradd pwconv ldconfig; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done

script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."
repo="$(pwd)"

# Debian packages that boot to a login with a working `systemctl --user`. dash provides
# /bin/sh; usr-is-merged (not usrmerge, which pulls in perl) satisfies the merged-/usr
# dependency; base-files brings os-release; sudo, procps, grep and sed are what a session
# in any real distro has.
packages=(
    systemd systemd-sysv dbus libpam-systemd usr-is-merged base-passwd base-files
    bash dash coreutils util-linux login passwd sudo procps grep sed
)

key="$({ printf '%s\n' "${packages[@]}" "user=$user_name"; cat "$script_path"; } |
    sha256sum | cut -c1-16)"
cache="$repo/.cache/rootfs"
tree="$cache/$key"
mkdir -p "$cache"
# One build at a time (the test suite and the demo may start together).
exec 9>"$cache/.lock"
flock 9

# ---------------------------------------------------------------------------------------
# Download the .debs with a private apt state: an empty dpkg status (so apt resolves the
# full dependency closure) and a private archive cache. The host's dpkg state and apt
# cache are never written.
download_debs() {
    local apt_dir="$cache/apt"
    mkdir -p "$apt_dir/cache/archives/partial" "$apt_dir/state/lists/partial"
    : >"$apt_dir/status"
    local lists=/var/lib/apt/lists
    if [[ "${DISTROD_ROOTFS_UPDATE_LISTS:-0}" == 1 ]] ||
        ! compgen -G "$lists/*_Packages*" >/dev/null; then
        lists="$apt_dir/state/lists"
    fi
    # This machine's apt.conf.d may hold hooks (clean the host's archive cache, refresh
    # AppStream, ...) that must not run for a private update: cleared, read last via -c.
    cat >"$apt_dir/apt.conf" <<'EOF'
#clear APT::Update::Pre-Invoke;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
#clear DPkg::Pre-Invoke;
#clear DPkg::Pre-Install-Pkgs;
#clear DPkg::Post-Invoke;
EOF
    apt_opts=(
        -c "$apt_dir/apt.conf"
        -q -y
        -o Dir::State::status="$apt_dir/status"
        -o Dir::State="$apt_dir/state"
        -o Dir::State::lists="$lists"
        -o Dir::Cache="$apt_dir/cache"
        -o Dir::Cache::archives="$apt_dir/cache/archives"
        -o Debug::NoLocking=1
        -o APT::Install-Recommends=false
        -o APT::Install-Suggests=false
    )
    if [[ "$lists" == "$apt_dir/state/lists" ]]; then
        log "downloading apt lists into $lists"
        apt-get "${apt_opts[@]}" update >&2 || die "apt-get update failed"
    fi
    # The exact files apt resolves to (asked against an empty archive dir, since apt
    # leaves out what it already has), then the download itself.
    mkdir -p "$apt_dir/empty/partial"
    mapfile -t debs < <(apt-get "${apt_opts[@]}" -o Dir::Cache::archives="$apt_dir/empty" \
        --print-uris install "${packages[@]}" |
        awk -v dir="$apt_dir/cache/archives" "/^'/ { print dir \"/\" \$2 }")
    apt-get "${apt_opts[@]}" -qq --download-only install "${packages[@]}" >&2 ||
        die "apt-get could not download the packages (stale lists? run apt-get update, or set DISTROD_ROOTFS_UPDATE_LISTS=1)"
    [[ ${#debs[@]} -gt 0 ]] || die "apt-get resolved no packages"
    for deb in "${debs[@]}"; do
        [[ -f "$deb" ]] || die "missing downloaded package $deb"
    done
}

# ---------------------------------------------------------------------------------------
build_tree() {
    local root="$1"
    download_debs
    log "unpacking ${#debs[@]} packages"

    # Merged /usr: the top-level directories are relative symlinks into usr/, and tar
    # (--keep-directory-symlink) writes through them instead of replacing them.
    mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib" "$root/usr/lib64"
    for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done

    for deb in "${debs[@]}"; do
        dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$root" ||
            die "could not unpack $(basename "$deb")"
    done

    # What maintainer scripts and debootstrap would have done.
    mkdir -p "$root/run/lock" "$root/tmp" "$root/root" "$root/var/tmp" "$root/var/log" \
        "$root/home" "$root/etc/sudoers.d" "$root/proc" "$root/sys" "$root/dev"
    chmod 1777 "$root/tmp" "$root/var/tmp"
    chmod 700 "$root/root"
    # /var/run and /var/lock point into /run. Absolute targets like Debian's; they are made
    # only now because tar would follow an absolute link out of the tree.
    for pair in run:/run lock:/run/lock; do
        local name="${pair%%:*}" target="${pair#*:}"
        if [[ -d "$root/var/$name" && ! -L "$root/var/$name" ]]; then
            cp -a "$root/var/$name/." "$root$target/"
            rm -rf "${root:?}/var/$name"
        fi
        ln -sfn "$target" "$root/var/$name"
    done

    cp "$root/usr/share/base-passwd/passwd.master" "$root/etc/passwd"
    cp "$root/usr/share/base-passwd/group.master" "$root/etc/group"
    chmod 644 "$root/etc/passwd" "$root/etc/group"
    if [[ -f "$root/usr/share/base-files/nsswitch.conf" ]]; then
        cp "$root/usr/share/base-files/nsswitch.conf" "$root/etc/nsswitch.conf"
    else
        printf 'passwd: files systemd\ngroup: files systemd\nshadow: files\nhosts: files dns\n' \
            >"$root/etc/nsswitch.conf"
    fi
    # Empty machine-id: systemd treats the image as unprovisioned and makes one at boot.
    : >"$root/etc/machine-id"
    mkdir -p "$root/var/lib/dbus"
    ln -sfn /etc/machine-id "$root/var/lib/dbus/machine-id"
    echo debian >"$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
        >"$root/etc/hosts"
    : >"$root/etc/fstab"

    # PAM: what pam-auth-update would generate from /usr/share/pam-configs. nullok lets
    # the password-less test user log in.
    cat >"$root/etc/pam.d/common-auth" <<'EOF'
auth	[success=1 default=ignore]	pam_unix.so nullok
auth	requisite			pam_deny.so
auth	required			pam_permit.so
EOF
    cat >"$root/etc/pam.d/common-account" <<'EOF'
account	[success=1 new_authtok_reqd=done default=ignore]	pam_unix.so
account	requisite			pam_deny.so
account	required			pam_permit.so
EOF
    cat >"$root/etc/pam.d/common-password" <<'EOF'
password	[success=1 default=ignore]	pam_unix.so obscure yescrypt
password	requisite			pam_deny.so
password	required			pam_permit.so
EOF
    cat >"$root/etc/pam.d/common-session-noninteractive" <<'EOF'
session	[default=1]			pam_permit.so
session	requisite			pam_deny.so
session	required			pam_permit.so
session	required			pam_unix.so
EOF
    { cat "$root/etc/pam.d/common-session-noninteractive"
      echo "session	optional			pam_systemd.so"; } >"$root/etc/pam.d/common-session"

    # What debianutils' update-shells makes of bash's and dash's shells.d entries.
    cat >"$root/etc/shells" <<'EOF'
# /etc/shells: valid login shells
/bin/sh
/usr/bin/sh
/bin/bash
/usr/bin/bash
/bin/rbash
/usr/bin/rbash
/usr/bin/dash
EOF

    ldconfig -r "$root"
    # The tree's own systemd-sysusers: this machine need not have systemd.
    chroot "$root" /usr/bin/systemd-sysusers >&2 || die "systemd-sysusers failed"
    pwconv -R "$root" || die "pwconv failed"
    grpconv -R "$root" || die "grpconv failed"

    local groups=()
    grep -q '^sudo:' "$root/etc/group" && groups=(-G sudo)
    useradd -R "$root" -m -u 1000 -U "${groups[@]}" -s /bin/bash "$user_name" ||
        die "useradd failed"
    passwd -R "$root" -d "$user_name" >/dev/null || die "passwd -d failed"
    # Debian's modes: readable by group shadow (unix_chkpwd is setgid shadow).
    chroot "$root" /usr/bin/chgrp shadow /etc/shadow /etc/gshadow
    chmod 640 "$root/etc/shadow" "$root/etc/gshadow"
    if [[ -d "$root/etc/sudoers.d" ]]; then
        echo "$user_name ALL=(ALL:ALL) NOPASSWD: ALL" >"$root/etc/sudoers.d/$user_name"
        chmod 440 "$root/etc/sudoers.d/$user_name"
    fi

    # Translations, manuals and docs are a third of the tree and no test reads them; the
    # copyright files stay.
    rm -rf "${root:?}/usr/share/locale" "${root:?}/usr/share/man" "${root:?}/usr/share/info"
    find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete

    # Check that the result runs: the systemd binary with its private libraries, and the
    # user database through NSS.
    chroot "$root" /usr/bin/systemctl --version >/dev/null || die "systemctl does not run in the tree"
    chroot "$root" /usr/bin/id "$user_name" >/dev/null || die "user '$user_name' is not resolvable"
}

if [[ -d "$tree" ]]; then
    log "using cached tree $tree"
else
    start=$SECONDS
    tmp="$(mktemp -d "$cache/.build-$key.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    chmod 755 "$tmp"
    build_tree "$tmp"
    mv -T "$tmp" "$tree"
    trap - EXIT
    log "built $tree in $((SECONDS - start)) s ($(du -sh "$tree" | cut -f1))"
    # Older trees are stale once the key changes.
    for old in "$cache"/*/; do
        old="${old%/}"
        case "$(basename "$old")" in "$key"|apt) ;; *) rm -rf "$old" ;; esac
    done
    rm -rf "$cache"/*.tar.xz "$cache"/.build-*
fi

result="$tree"

if [[ -n "$out_dir" ]]; then
    if [[ -e "$out_dir" ]] && [[ -n "$(ls -A "$out_dir")" ]]; then
        die "--out directory '$out_dir' is not empty"
    fi
    mkdir -p "$out_dir"
    cp -a "$tree/." "$out_dir/"
    result="$(cd "$out_dir" && pwd)"
fi

if [[ -n "$tarball" ]]; then
    # The compressed tree is cached too, beside the tree: compressing takes longer than
    # building. Written to a temporary name and renamed so no partial file is left.
    cached_tar="$cache/$key.tar.xz"
    if [[ ! -f "$cached_tar" ]]; then
        log "compressing $tree"
        tar --xattrs --numeric-owner --sort=name -C "$tree" -c . | xz -T0 -6 >"$cached_tar.tmp" ||
            { rm -f "$cached_tar.tmp"; die "could not write the tarball"; }
        mv "$cached_tar.tmp" "$cached_tar"
    fi
    mkdir -p "$(dirname "$tarball")"
    tarball="$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")"
    rm -f "$tarball"
    # A copy, not a link: whoever gets the file may modify it without touching the cache.
    cp --reflink=auto "$cached_tar" "$tarball"
    log "tarball $tarball ($(du -h "$tarball" | cut -f1))"
    result="$tarball"
fi

echo "$result"
