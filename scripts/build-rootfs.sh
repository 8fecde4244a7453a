#!/usr/bin/env bash
# Build a small Debian rootfs with systemd for distrod's tests and demo, in seconds.
#
# Instead of debootstrap (~50 s), the .debs are resolved and downloaded with apt-get against
# an empty dpkg status file and a private cache, then unpacked with dpkg-deb into a tree
# laid out with merged-/usr symlinks. No maintainer script runs, so what they would have
# done (users, shadow files, PAM stack, machine-id, ...) is done here by hand.
#
# The tree is cached under .cache/rootfs/<key>/ (other suites and variants under
# .cache/rootfs/<suite>[-loaded]-<key>/, side by side), keyed on the suite, the variant,
# the package list and this script's content; it is rebuilt only when the key changes, and
# then only the stale trees of the same suite and variant are removed.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/build-rootfs.sh [--suite SUITE] [--loaded] [--out DIR] [--tarball FILE]
                               [--user NAME]

Build (or reuse from .cache/rootfs/) a small Debian rootfs with systemd, made from
Debian's packages, and print its path.

Options:
  --suite SUITE   the Debian suite: bookworm (default: this machine's suite, from its apt
                  sources and lists; systemd 252), trixie (systemd 257) or sid (the newest
                  systemd). trixie and sid come from http://deb.debian.org/debian with apt
                  lists and a sources list of the script's own under
                  .cache/rootfs/apt-SUITE/ (Signed-By Debian's archive keyring); the
                  machine's apt configuration and state are never written
  --loaded        a realistic service set on top of the small tree: openssh-server, cron,
                  rsyslog, logrotate, systemd-resolved, systemd-timesyncd, polkitd,
                  network-manager, unattended-upgrades (with apt), apparmor, e2fsprogs,
                  man-db, udisks2, tzdata; what their maintainer scripts would have done is
                  done by hand (system users and groups, dpkg-statoverride modes, the
                  configuration files they generate, alternatives, and their units enabled as
                  deb-systemd-helper enables them on a first install)
  --out DIR       copy the tree to DIR (must not exist or be empty); print DIR
  --tarball FILE  write the tree as FILE, a multi-block tar.xz like the image server's
                  (tar --xattrs --numeric-owner --sort=name | xz -T0); print FILE
  --user NAME     the unprivileged user to create (uid 1000, default: distrod)
  -h, --help      show this help

Without --out or --tarball the cached tree's path is printed. Progress goes to stderr.
Trees of different suites and variants are cached side by side; building one removes
only the stale trees (older keys) of its own suite and variant.
Needs root (chroot, file ownership) and apt-get, dpkg-deb, tar, xz.
Environment: DISTROD_ROOTFS_UPDATE_LISTS=1 downloads fresh private apt lists (for
bookworm: instead of reading this machine's /var/lib/apt/lists).
EOF
}

die() { echo "build-rootfs: error: $*" >&2; exit 1; }
log() { echo "build-rootfs: $*" >&2; }

out_dir=""
tarball=""
user_name="distrod"
suite="bookworm"
loaded=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --suite) [[ $# -ge 2 ]] || die "--suite needs a suite name"; suite="$2"; shift 2 ;;
        --loaded) loaded=1; shift ;;
        --out) [[ $# -ge 2 ]] || die "--out needs a directory"; out_dir="$2"; shift 2 ;;
        --tarball) [[ $# -ge 2 ]] || die "--tarball needs a file name"; tarball="$2"; shift 2 ;;
        --user) [[ $# -ge 2 ]] || die "--user needs a name"; user_name="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

[[ "$user_name" =~ ^[a-z_][a-z0-9_-]*$ ]] || die "invalid user name '$user_name'"
case "$suite" in
    bookworm|trixie|sid) ;;
    *) die "unknown suite '$suite' (bookworm, trixie or sid)" ;;
esac
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
# From trixie on, nothing else pulls these in, and without maintainer scripts they are
# needed: the API mount units run /usr/bin/mount, ldconfig.service runs ldconfig.
if [[ "$suite" != bookworm ]]; then
    packages+=(mount libc-bin)
fi
# --loaded: the services of a real installation (and apt, logrotate and tzdata, which every
# real installation has and whose timers and files the services use).
if [[ "$loaded" == 1 ]]; then
    packages+=(
        openssh-server cron rsyslog logrotate systemd-resolved systemd-timesyncd polkitd
        network-manager unattended-upgrades apt apparmor e2fsprogs man-db udisks2 tzdata
    )
fi

key="$({ printf '%s\n' "${packages[@]}" "user=$user_name" "suite=$suite" "loaded=$loaded"
         cat "$script_path"; } | sha256sum | cut -c1-16)"
cache="$repo/.cache/rootfs"
# The default tree keeps its name (.cache/rootfs/<key>); the others carry their suite and
# variant, so that trees of different suites and variants live side by side.
variant="$suite"
[[ "$loaded" == 1 ]] && variant+="-loaded"
if [[ "$variant" == bookworm ]]; then
    tree_name="$key"
    stale_pattern='^[0-9a-f]{16}$'
else
    tree_name="$variant-$key"
    stale_pattern="^$variant-[0-9a-f]{16}\$"
fi
tree="$cache/$tree_name"
mkdir -p "$cache"
# One build at a time (the test suite and the demo may start together).
exec 9>"$cache/.lock"
flock 9

# ---------------------------------------------------------------------------------------
# Download the .debs with a private apt state: an empty dpkg status (so apt resolves the
# full dependency closure) and a private archive cache. The host's dpkg state and apt
# cache are never written. bookworm reads this machine's apt lists (its sources); the
# other suites have a sources list and lists of their own under .cache/rootfs/apt-SUITE/.
download_debs() {
    local apt_dir lists own_sources=0
    if [[ "$suite" == bookworm ]]; then
        apt_dir="$cache/apt"
        lists=/var/lib/apt/lists
        if [[ "${DISTROD_ROOTFS_UPDATE_LISTS:-0}" == 1 ]] ||
            ! compgen -G "$lists/*_Packages*" >/dev/null; then
            lists="$apt_dir/state/lists"
        fi
    else
        apt_dir="$cache/apt-$suite"
        lists="$apt_dir/lists"
        own_sources=1
    fi
    mkdir -p "$apt_dir/cache/archives/partial" "$apt_dir/state/lists/partial"
    [[ "$lists" == /var/lib/apt/lists ]] || mkdir -p "$lists/partial"
    : >"$apt_dir/status"
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
    if [[ "$own_sources" == 1 ]]; then
        # Only the Packages indices (no translations, no AppStream data); the release files
        # are checked against Debian's archive keyring, which signs trixie and sid alike.
        local opts="signed-by=/usr/share/keyrings/debian-archive-keyring.gpg target=Packages"
        {
            echo "deb [$opts] http://deb.debian.org/debian $suite main"
            if [[ "$suite" != sid ]]; then
                echo "deb [$opts] http://deb.debian.org/debian $suite-updates main"
                echo "deb [$opts] http://deb.debian.org/debian-security $suite-security main"
            fi
        } >"$apt_dir/sources.list"
        apt_opts+=(
            -o Dir::Etc::SourceList="$apt_dir/sources.list"
            -o Dir::Etc::SourceParts=/dev/null
            -o Dir::Etc::Preferences=/dev/null
            -o Dir::Etc::PreferencesParts=/dev/null
        )
    fi
    update_lists() {
        log "downloading $suite's apt lists into $lists"
        apt-get "${apt_opts[@]}" update >&2 || die "apt-get update failed"
    }
    if [[ "$lists" != /var/lib/apt/lists ]] &&
        { [[ "${DISTROD_ROOTFS_UPDATE_LISTS:-0}" == 1 ]] ||
            ! compgen -G "$lists/*_Packages*" >/dev/null; }; then
        update_lists
    fi
    # The exact files apt resolves to (asked against an empty archive dir, since apt
    # leaves out what it already has), then the download itself.
    resolve_and_download() {
        rm -rf "$apt_dir/empty"
        mkdir -p "$apt_dir/empty/partial"
        mapfile -t debs < <(apt-get "${apt_opts[@]}" -o Dir::Cache::archives="$apt_dir/empty" \
            --print-uris install "${packages[@]}" |
            awk -v dir="$apt_dir/cache/archives" "/^'/ { print dir \"/\" \$2 }")
        apt-get "${apt_opts[@]}" -qq --download-only install "${packages[@]}" >&2
    }
    if ! resolve_and_download; then
        # Private lists go stale (sid's packages leave the mirror within days): once more
        # with fresh lists.
        [[ "$lists" != /var/lib/apt/lists ]] ||
            die "apt-get could not download the packages (stale lists? run apt-get update, or set DISTROD_ROOTFS_UPDATE_LISTS=1)"
        update_lists
        resolve_and_download || die "apt-get could not download the packages for $suite"
    fi
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
    if [[ "$loaded" == 1 ]]; then
        # The maintainer scripts, read (never run) by configure_loaded.
        control="$(mktemp -d "$cache/.build-control.XXXXXX")"
        for deb in "${debs[@]}"; do
            dpkg-deb -e "$deb" "$control/$(basename "$deb" | cut -d_ -f1)" ||
                die "could not read the control files of $(basename "$deb")"
        done
    fi

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
    [[ "$loaded" == 1 ]] && loaded_accounts "$root"
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

    [[ "$loaded" == 1 ]] && configure_loaded "$root"

    # Translations, manuals and docs are a third of the tree and no test reads them; the
    # copyright files stay.
    rm -rf "${root:?}/usr/share/locale" "${root:?}/usr/share/man" "${root:?}/usr/share/info"
    find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete

    # Check that the result runs: the systemd binary with its private libraries, and the
    # user database through NSS.
    chroot "$root" /usr/bin/systemctl --version >/dev/null || die "systemctl does not run in the tree"
    chroot "$root" /usr/bin/id "$user_name" >/dev/null || die "user '$user_name' is not resolvable"
    [[ "$loaded" == 1 ]] && check_loaded "$root"
    return 0
}

# ---------------------------------------------------------------------------------------
# --loaded: what the maintainer scripts of a first installation would have done, by hand.
# Where that is mechanical it is read from the postinst scripts themselves ($control/PKG/):
# the units to enable and the alternatives; the rest is spelled out below, package by
# package, each step only where the package (or the file it concerns) is there.

# System users and groups that postinst scripts make with adduser/addgroup (those with a
# sysusers.d file were made by systemd-sysusers already). Before pwconv/grpconv.
loaded_accounts() {
    local root="$1"
    ensure_group() {
        grep -q "^$1:" "$root/etc/group" ||
            groupadd -R "$root" --system "$1" || die "groupadd $1 failed"
    }
    # ensure_user NAME HOME GROUP: GROUP "-" for a group of its own (adduser --group).
    ensure_user() {
        grep -q "^$1:" "$root/etc/passwd" && return 0
        local group=(--user-group)
        [[ "$3" != - ]] && group=(--gid "$3")
        useradd -R "$root" --system --no-create-home --home-dir "$2" \
            --shell /usr/sbin/nologin "${group[@]}" "$1" || die "useradd $1 failed"
    }
    # `addgroup [--quiet] [--system] [--force-badname] NAME` with a literal NAME (crontab,
    # netdev, _ssh, udev's kvm and render, ...).
    local group
    while read -r group; do
        ensure_group "$group"
    done < <(grep -hoE '^[^#]*addgroup( +--[a-z-]+)* +[a-z_][a-z0-9_-]*( |$)' \
        "$control"/*/postinst | awk '{ print $NF }' | sort -u)
    ensure_user sshd /run/sshd nogroup          # openssh-server (privilege separation)
    ensure_user messagebus /nonexistent -       # dbus-system-bus-common
    ensure_user polkitd /nonexistent -          # polkitd
}

# The units deb-systemd-helper enables on a first installation: `deb-systemd-helper enable
# 'UNIT'` in a postinst, unless it is guarded by `deb-systemd-helper debian-installed
# 'UNIT'` (dh_installsystemd --no-enable: enabled only on upgrades of an enabled unit), and
# systemd's own `systemctl ${DPKG_ROOT:+--root=...} enable UNIT` of a new install.
units_to_enable() {
    local f
    for f in "$control"/*/postinst; do
        awk -v q="'" '
            /deb-systemd-helper debian-installed '"'"'/ { split($0, w, q); guarded[w[2]] = 1 }
            /deb-systemd-helper enable '"'"'/ { split($0, w, q); units[++n] = w[2] }
            /systemctl \$\{DPKG_ROOT:\+--root="\$DPKG_ROOT"\} enable / {
                for (i = 1; i < NF; i++) if ($i == "enable") units[++n] = $(i + 1)
            }
            END { for (i = 1; i <= n; i++) if (!(units[i] in guarded)) print units[i] }
        ' "$f"
    done | sort -u
}

configure_loaded() {
    local root="$1" unit f
    in_root() { chroot "$root" "$@" || die "in the tree: $* failed"; }
    exists() { [[ -e "$root/$1" ]]; }

    # dpkg-statoverride in the postinst scripts (crontab, dbus' launch helper, ssh-agent)
    # and polkitd's own `set_perms USER GROUP MODE FILE`. chown first: it drops setuid.
    override() {
        exists "$4" || return 0
        in_root chown "$1:$2" "$4"
        chmod "$3" "$root$4"
    }
    override root crontab 2755 /usr/bin/crontab
    override root messagebus 4754 /usr/lib/dbus-1.0/dbus-daemon-launch-helper
    override root _ssh 2755 /usr/bin/ssh-agent
    local words
    while read -r -a words; do
        override "${words[@]:1}"
    done < <(grep -hoE '^\s*set_perms [a-z]+ [a-z]+ [0-7]+ /[^ ]+$' "$control"/*/postinst || true)

    # cron: the crontab spool, group crontab, sticky and not listable.
    if exists usr/sbin/cron; then
        mkdir -p "$root/var/spool/cron/crontabs"
        override root crontab 1730 /var/spool/cron/crontabs
    fi
    # rsyslog, network-manager: private state directories.
    exists var/spool/rsyslog && chmod 700 "$root/var/spool/rsyslog"
    exists var/lib/NetworkManager && chmod 700 "$root/var/lib/NetworkManager"

    # openssh-server: sshd_config is not a conffile, the postinst writes it from this
    # template (debconf's defaults change nothing in it).
    if exists usr/share/openssh/sshd_config && ! exists etc/ssh/sshd_config; then
        install -m 644 "$root/usr/share/openssh/sshd_config" "$root/etc/ssh/sshd_config"
    fi
    # Host keys: the postinst makes them at installation, but a tree that every test
    # container (and the published tarball, and distros made from it) shares must not carry
    # private keys: they are made at boot instead, by `ssh-keygen -A` before sshd (it makes
    # the missing ones only). trixie on ship that as sshd-keygen.service, which runs only on
    # the first boot (ConditionFirstBoot), and no boot of a tree with an empty machine-id is
    # the first: a drop-in keeps its other conditions and drops that one. bookworm has no
    # such unit: trixie's, without that condition, enabled with the others below.
    local keygen_unit="$root/usr/lib/systemd/system/sshd-keygen.service"
    extra_units=()
    if [[ -f "$keygen_unit" ]]; then
        mkdir -p "$root/etc/systemd/system/sshd-keygen.service.d"
        cat >"$root/etc/systemd/system/sshd-keygen.service.d/missing-host-keys.conf" <<'EOF'
# build-rootfs.sh: the image has no host keys; make them at any boot that lacks them.
[Unit]
ConditionFirstBoot=
ConditionPathIsReadWrite=/etc/ssh
ConditionPathIsSymbolicLink=!/etc/ssh
EOF
    elif exists usr/lib/systemd/system/ssh.service; then
        cat >"$root/etc/systemd/system/sshd-keygen.service" <<'EOF'
# build-rootfs.sh: the image has no host keys; make them at any boot that lacks them
# (trixie's sshd-keygen.service, without its ConditionFirstBoot=yes).
[Unit]
Description=Generate sshd host keys
ConditionPathIsReadWrite=/etc/ssh
ConditionPathIsSymbolicLink=!/etc/ssh
Before=ssh.service sshd@.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service sshd@.service ssh.socket
EOF
        extra_units+=(sshd-keygen.service)
    fi

    # unattended-upgrades: debconf's default (enable_auto_updates=true) installs these.
    if exists usr/share/unattended-upgrades/20auto-upgrades; then
        mkdir -p "$root/etc/apt/apt.conf.d"
        for f in 20auto-upgrades 50unattended-upgrades; do
            exists "etc/apt/apt.conf.d/$f" || install -m 644 \
                "$root/usr/share/unattended-upgrades/$f" "$root/etc/apt/apt.conf.d/$f"
        done
    fi
    override root adm 750 /var/log/unattended-upgrades
    # man-db: debconf's default auto-update=true, and its cache owned by man.
    if exists usr/bin/mandb; then
        mkdir -p "$root/var/lib/man-db"
        : >"$root/var/lib/man-db/auto-update"
        in_root install -d -o man -g man -m 0755 /var/cache/man
    fi
    # tzdata: debconf's default Etc/UTC.
    exists usr/share/zoneinfo/Etc/UTC &&
        ln -sfn /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
    # systemd-resolved: /etc/resolv.conf becomes its stub resolver's.
    exists usr/lib/systemd/systemd-resolved &&
        ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
    # systemd (trixie on): a persistent journal on new installs.
    if grep -qs 'mkdir -p "$DPKG_ROOT/var/log/journal"' "$control/systemd/postinst"; then
        mkdir -p "$root/var/log/journal"
    fi
    # apparmor: the tunables its postinst generates (empty with debconf's defaults).
    if exists etc/apparmor.d/tunables; then
        local tunables="$root/etc/apparmor.d/tunables"
        mkdir -p "$tunables/home.d" "$tunables/xdg-user-dirs.d"
        : >"$tunables/home.d/ubuntu"
        [[ -e "$tunables/xdg-user-dirs.d/site.local" ]] || : >"$tunables/xdg-user-dirs.d/site.local"
    fi

    # Alternatives (awk, which, pager, ...): `update-alternatives --install LINK NAME PATH
    # PRIORITY` with literal arguments; the highest priority wins, as in auto mode.
    { grep -hoE 'update-alternatives --install /[^ $]+ [^ $]+ /[^ $]+ [0-9]+' \
        "$control"/*/postinst || true; } |
        awk '{ print $6, $3, $4, $5 }' | sort -k1,1nr | awk '!seen[$3]++ { print $2, $3, $4 }' |
        while read -r link alt path; do
            exists "$path" || continue
            mkdir -p "$root/etc/alternatives"
            ln -sfn "$path" "$root/etc/alternatives/$alt"
            [[ -e "$root$link" || -L "$root$link" ]] ||
                ln -s "/etc/alternatives/$alt" "$root$link"
        done

    # The units, enabled as deb-systemd-helper would (symlinks per [Install]); systemctl
    # works on the tree's files when run in a chroot. The SysV side is skipped (there is no
    # update-rc.d, which needs perl): every init script of these packages has a native unit
    # that takes its place, and the one that has none (bookworm's hwclock.sh, runlevel S)
    # would not be started by systemd's SysV generator anyway.
    mapfile -t enable_units < <(units_to_enable)
    enable_units+=("${extra_units[@]}")
    for unit in "${enable_units[@]}"; do
        SYSTEMCTL_SKIP_SYSV=1 chroot "$root" /usr/bin/systemctl enable "$unit" >/dev/null 2>&1 ||
            log "warning: could not enable $unit"
    done
    log "enabled ${#enable_units[@]} units: ${enable_units[*]}"
    rm -rf "$control"
}

# Every account a unit of the tree runs as (User=, Group=; not those of DynamicUser= units,
# which systemd makes up) is in its /etc/passwd or /etc/group.
check_loaded() {
    local root="$1" file account missing=()
    while read -r file; do
        grep -qE '^DynamicUser=(yes|true|1)' "$file" && continue
        while read -r account; do
            grep -q "^$account:" "$root/etc/passwd" "$root/etc/group" ||
                missing+=("$account (${file#"$root"})")
        done < <(sed -nE 's/^(User|Group)=([^ %$]+)$/\2/p' "$file")
    done < <(find "$root/usr/lib/systemd/system" "$root/etc/systemd/system" \
        -name '*.service' -type f)
    [[ ${#missing[@]} -eq 0 ]] || die "accounts the units run as are missing: ${missing[*]}"
}

if [[ -d "$tree" ]]; then
    log "using cached tree $tree"
else
    start=$SECONDS
    tmp="$(mktemp -d "$cache/.build-$tree_name.XXXXXX")"
    control=""
    trap 'rm -rf "$tmp" ${control:+"$control"}' EXIT
    chmod 755 "$tmp"
    build_tree "$tmp"
    mv -T "$tmp" "$tree"
    trap - EXIT
    log "built $tree in $((SECONDS - start)) s ($(du -sh "$tree" | cut -f1))"
    # Older trees of the same suite and variant are stale once the key changes (and their
    # tarballs); other suites' and variants' trees stay. Leftovers of interrupted builds
    # go too (no other build runs: the lock is held).
    for old in "$cache"/*/ "$cache"/*.tar.xz; do
        old="${old%/}"
        local_name="$(basename "$old" .tar.xz)"
        [[ -e "$old" && "$local_name" != "$tree_name" && "$local_name" =~ $stale_pattern ]] &&
            rm -rf "$old"
    done
    rm -rf "$cache"/.build-*
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
    cached_tar="$cache/$tree_name.tar.xz"
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
