#!/usr/bin/env python3
"""Writes the seed corpus of distrod's fuzz targets: fuzz/corpus/<target>/<seed>.

Every seed is a realistic input of its kind, small (the committed corpus stays a few KB per
target): tar archives made by GNU tar in each of its formats (ustar, pax with xattrs and
sub-second times, GNU long names and sparse files, v7) and by Python's tarfile for what tar
will not write (device nodes, unsafe paths); xz files made by xz(1) single- and
multi-block, with each check type, concatenated and padded; a trimmed images.json of the
shape images.linuxcontainers.org publishes; Debian's account files; wsl.conf files;
wsl.exe's output in UTF-16LE and UTF-8; ELF headers; /proc texts; Content-Range values;
the container's systemctl, journalctl and D-Bus answers to `distrod status`; D-Bus
connections as the relay to systemd's private socket sees them.

Run it from anywhere (`python3 fuzz/make-corpus.py`); it replaces the seed directories it
writes. Needs GNU tar and xz(1); run as root so that the tar seeds keep numeric owners and
a user xattr. Python standard library only. The fuzzer never writes here: scripts/fuzz.sh
copies the seeds into a scratch directory.
"""

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
# The test image server's catalog documents (scripts/simplestreams.py), one shape for both.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import simplestreams  # noqa: E402
MTIME = "2024-06-01 12:00:00.25"


def fail(message):
    sys.exit(f"make-corpus: error: {message}")


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def reset(target):
    shutil.rmtree(CORPUS / target, ignore_errors=True)


# --------------------------------------------------------------------------------------
# tar


def gnu_tar(tree, fmt, members, extra=()):
    """GNU tar of `members` of `tree` in format `fmt`, 512-byte records, reproducible."""
    cmd = [
        "tar", "-c", "-b", "1", f"--format={fmt}", "--sort=name", f"--mtime={MTIME}",
        "--owner=0", "--group=0", "--numeric-owner", "-C", str(tree), *extra, *members,
    ]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def deep_name(root):
    """A path longer than ustar's 100-byte name field."""
    return root / "usr/share" / ("long-directory-name-" * 3) / ("and-a-long-file-name-" * 3)


def make_tree(root):
    """A small rootfs: directories, a setuid file, links, a FIFO, a sparse file, long names."""
    (root / "etc").mkdir(mode=0o755)
    (root / "etc/hostname").write_text("distrod\n")
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (root / "usr/bin").mkdir(parents=True)
    su = root / "usr/bin/su"
    su.write_bytes(b"\x7fELF su")
    su.chmod(0o4755)
    (root / "bin").symlink_to("usr/bin")
    (root / "etc/mtab").symlink_to("../proc/self/mounts")
    os.link(root / "etc/hostname", root / "etc/hostname.hard")
    os.mkfifo(root / "usr/initctl")
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    with open(root / "usr/sparse.img", "wb") as f:
        f.seek(300_032)
        f.write(b"data after a hole")
        f.truncate(600_000)
    deep = deep_name(root)
    deep.parent.mkdir(parents=True)
    deep.write_text("long\n")
    (root / "usr/long-link").symlink_to("/usr/share/" + "x" * 120)
    try:
        os.setxattr(su, "user.distrod", b"fuzz")
    except OSError:
        pass


def tarfile_bytes(entries, fmt=tarfile.PAX_FORMAT):
    """A tar written by Python's tarfile: (TarInfo fields, data) per entry."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for fields, data in entries:
            info = tarfile.TarInfo(fields.pop("name"))
            info.mtime = 1717243200
            for k, v in fields.items():
                setattr(info, k, v)
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue().rstrip(b"\0") + b"\0" * 1024


def tar_seeds():
    seeds = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        make_tree(root)
        seeds["ustar.tar"] = gnu_tar(root, "ustar", ["./etc/hostname", "./etc/hostname.hard", "./bin", "./usr/initctl"])
        seeds["pax-xattrs.tar"] = gnu_tar(
            root, "pax", ["./usr/bin/su", "./usr/long-link"], ["--xattrs", "--xattrs-include=*"]
        )
        seeds["gnu-long-names.tar"] = gnu_tar(root, "gnu", [str(deep_name(Path(".")))])
        seeds["gnu-sparse.tar"] = gnu_tar(root, "gnu", ["./usr/sparse.img"], ["--sparse"])
        seeds["v7.tar"] = gnu_tar(root, "v7", ["./etc/mtab", "./tmp"])
    seeds["devices.tar"] = tarfile_bytes([
        ({"name": "dev", "type": tarfile.DIRTYPE, "mode": 0o755}, None),
        ({"name": "dev/null", "type": tarfile.CHRTYPE, "mode": 0o666, "devmajor": 1, "devminor": 3}, None),
        ({"name": "dev/loop0", "type": tarfile.BLKTYPE, "mode": 0o660, "devmajor": 7, "devminor": 0}, None),
        ({"name": "opt/distrod/bin/distrod", "mode": 0o755}, b"old distrod"),
        ({"name": "etc", "type": tarfile.SYMTYPE, "linkname": "/usr/etc"}, None),
    ])
    seeds["unsafe.tar"] = tarfile_bytes([
        ({"name": "up", "type": tarfile.SYMTYPE, "linkname": "../outside"}, None),
        ({"name": "root", "type": tarfile.SYMTYPE, "linkname": "/"}, None),
        ({"name": "root/etc/passwd", "mode": 0o644}, b"root:x:0:0::/root:/bin/sh\n"),
        ({"name": "up/escaped", "mode": 0o644}, b"x"),
        ({"name": "hard", "type": tarfile.LNKTYPE, "linkname": "../outside"}, None),
    ], fmt=tarfile.GNU_FORMAT)
    for target in ("tar_unpack", "tar_repack"):
        reset(target)
        for name, data in seeds.items():
            write(target, name, data)


# --------------------------------------------------------------------------------------
# xz


def xz(data, *args):
    return subprocess.run(["xz", "-c", *args], input=data, check=True, capture_output=True).stdout


def xz_seeds():
    reset("xz")
    text = b"".join(b"line %d of a small root filesystem\n" % (i % 97) for i in range(600))
    write("xz", "single-block.xz", xz(text[:2000], "-6"))
    write("xz", "multi-block.xz", xz(text, "-T2", "--block-size=4KiB", "-1"))
    write("xz", "empty.xz", xz(b""))
    for check in ("none", "crc32", "sha256"):
        write("xz", f"check-{check}.xz", xz(text[:500], f"--check={check}", "-T2", "--block-size=256"))
    two = xz(b"first stream\n", "-T2", "--block-size=64") + b"\0" * 8 + xz(b"second stream\n")
    write("xz", "concatenated-padded.xz", two)
    write("xz", "lzma2-filters.xz", xz(text[:1000], "--x86", "--lzma2=preset=1,dict=4KiB"))


# --------------------------------------------------------------------------------------
# catalog


def product(distro, release, arch, variant, builds, title=None, aliases=None, items=None):
    versions = {}
    for build in builds:
        base = f"images/{distro}/{release}/{arch}/{variant}/{build}"
        its = {
            "incus.tar.xz": {"ftype": "incus.tar.xz", "sha256": "ab" * 32, "size": 872, "path": f"{base}/incus.tar.xz"},
        }
        if items is None or "root" in items:
            its["root.tar.xz"] = {"ftype": "root.tar.xz", "sha256": "CD" * 32, "size": 98_418_732, "path": f"{base}/rootfs.tar.xz"}
        if items is not None and "disk" in items:
            its["disk.qcow2"] = {"ftype": "disk-kvm.img", "sha256": "ef" * 32, "size": 412_000_000, "path": f"{base}/disk.qcow2"}
        versions[build] = {"items": its}
    return {
        "aliases": aliases if aliases is not None else f"{distro}/{release}/{variant},{distro}/{release}",
        "arch": arch,
        "os": distro.title(),
        "release": release,
        "release_title": title or release,
        "requirements": {},
        "variant": variant,
        "versions": versions,
    }


def catalog_seeds():
    reset("catalog")
    b = ["20260601_05:24", "20260602_05:24"]
    products = {
        "debian:bookworm:amd64:default": product("debian", "bookworm", "amd64", "default", b, "12", "debian/bookworm/default,debian/bookworm,debian/12/default,debian/12"),
        "debian:bookworm:amd64:cloud": product("debian", "bookworm", "amd64", "cloud", b[:1], "12", "debian/bookworm/cloud,debian/12/cloud"),
        "debian:trixie:arm64:default": product("debian", "trixie", "arm64", "default", b, "13", "debian/trixie,debian/13"),
        "debian:sid:amd64:default": product("debian", "sid", "amd64", "default", b[1:]),
        "ubuntu:noble:amd64:default": product("ubuntu", "noble", "amd64", "default", b, "24.04 LTS", "ubuntu/noble,ubuntu/24.04"),
        "alpine:3.20:amd64:default": product("alpine", "3.20", "amd64", "default", b),
        "archlinux:current:amd64:default": product("archlinux", "current", "amd64", "default", b[:1], aliases="archlinux"),
        "fedora:41:amd64:default": product("fedora", "41", "amd64", "default", b[:1], items=("disk",)),
    }
    index, images = simplestreams.documents(products)
    write("catalog", "images.json", json.dumps(images, separators=(",", ":")))
    write("catalog", "index.json", json.dumps(index))


# --------------------------------------------------------------------------------------
# /etc/distrod.toml


def config_seeds():
    reset("config")
    example = Path(__file__).resolve().parent.parent / "distrod-rootfs/opt/distrod/share/distrod.toml.example"
    write("config", "example.toml", example.read_bytes())
    write("config", "full.toml", """\
[container]
dns = ["1.1.1.1", "2606:4700:4700::1111"]
boot_timeout = 90
mask = ["systemd-resolved.service", "getty@.service"]
unmask = ["systemd-networkd.service"]

[session]
pass_env = ["DISPLAY", "WAYLAND_DISPLAY", "_MY_VAR1"]
fallback_shell = false

[hook]
rehook = false

[portproxy]
ports = [
    22,   # ssh
    8080,
]
listen = "192.168.1.10"
""")
    write("config", "inline-tables.toml", 'container = { boot_timeout = 5 }\n"portproxy".ports = [80]\n')
    write("config", "errors.toml", "[container]\nboot_timeout = 0\ndns = ['1.1.1.1', '1.1.1.1']\n[unknown]\n")


# --------------------------------------------------------------------------------------
# account files: passwd, shells, login.defs, group joined with NUL bytes


PASSWD = """\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin
messagebus:x:100:107::/nonexistent:/usr/sbin/nologin
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
bob:x:1001:1001::/home/bob:
carol:x:1002:1002::/home/carol:/usr/bin/zsh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
SHELLS = """\
# /etc/shells: valid login shells
/bin/sh
/usr/bin/sh
/bin/bash
/usr/bin/bash
/usr/bin/zsh
/bin/zsh
"""
LOGIN_DEFS = """\
# /etc/login.defs - Configuration control definitions for the login package.
MAIL_DIR        /var/mail
UID_MIN                  1000
UID_MAX                 60000
SYS_UID_MIN              0x64
SYS_UID_MAX              0777
"""
GROUP = """\
root:x:0:
sudo:x:27:alice,carol
audio:x:29:alice
alice:x:1000:
bob:x:1001:
carol:x:1002:
"""


def accounts_seeds():
    reset("accounts")
    join = lambda *files: "\0".join(files)
    write("accounts", "debian", join(PASSWD, SHELLS, LOGIN_DEFS, GROUP))
    write("accounts", "crlf-no-final-newline", join(PASSWD.replace("\n", "\r\n").rstrip(), SHELLS.rstrip()))
    write("accounts", "no-shells-file", "bob:x:1001:1001::/home/bob:\n+@nis::::::\n")
    write("accounts", "custom-range", join(
        "root:x:0:0::/root:/bin/sh\nsvc:x:500:500::/srv:/bin/sh\nweird:x:2000:2000::/:/bin/\xff\n",
        "/bin/sh\n/bin/false\n",
        'UID_MIN "500"\nUID_MAX 0x7d0\n',
    ))
    write("accounts", "already-hooked", join(
        "alice:x:1000:1000::/home/alice:/opt/distrod/alias/bin/bash\n",
        "/bin/bash\n/opt/distrod/alias/bin/bash\n",
    ))


# --------------------------------------------------------------------------------------
# wsl.conf


def wsl_conf_seeds():
    reset("wsl_conf")
    write("wsl_conf", "systemd-on.conf", "[boot]\nsystemd=true\n")
    write("wsl_conf", "full.conf", """\
# /etc/wsl.conf
[automount]
enabled = true
root = /mnt/
options = "metadata,uid=1000,gid=1000,umask=22,fmask=11"

[network]
generateResolvConf = false
hostname = distrod

[interop]
enabled = true
appendWindowsPath = true

[user]
default = alice

[Boot]
  SystemD = "True"  ; WSL's own systemd
command = service docker start
""")


# --------------------------------------------------------------------------------------
# wsl.exe's output


LIST = """\
  NAME            STATE           VERSION
* Ubuntu-24.04    Running         2
  Distrod         Stopped         2
  docker-desktop  Installing      2
  Legacy          Stopped         1
"""


def wsl_exe_seeds():
    reset("wsl_exe")
    crlf = LIST.replace("\n", "\r\n")
    write("wsl_exe", "list-utf16-bom", b"\xff\xfe" + crlf.encode("utf-16-le"))
    write("wsl_exe", "list-utf16", crlf.encode("utf-16-le"))
    write("wsl_exe", "list-utf8", LIST)
    german = "  NAME                   STATUS          VERSION\r\n* Debian                 Wird ausgeführt 2\r\n"
    write("wsl_exe", "list-german-utf16", german.encode("utf-16-le"))
    write("wsl_exe", "no-distros-utf16", (
        "Windows Subsystem for Linux has no installed distributions.\r\n"
        "Error code: Wsl/WSL_E_DEFAULT_DISTRO_NOT_FOUND\r\n"
    ).encode("utf-16-le"))
    write("wsl_exe", "command-output-utf8", "uid=1000(alice) gid=1000(alice)\n\xe9t\xe9\n")


# --------------------------------------------------------------------------------------
# ELF


def elf(machine=62, cls=2, data=1, etype=2, phdrs=((1, 0, 0x200),), interp=None, shnum=0, size=0x200):
    """A 64-bit ELF header followed by program headers (type, offset, file size)."""
    phdrs = list(phdrs)
    if interp is not None:
        phdrs.insert(0, (3, 0x100, len(interp)))
    ident = b"\x7fELF" + bytes([cls, data, 1, 0]) + b"\0" * 8
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", etype, machine, 1, 0x401000, 64, 0x180 if shnum else 0, 0, 64, 56,
        len(phdrs), 64, shnum, 0,
    )
    body = header + b"".join(struct.pack("<IIQQQQQQ", t, 5, off, 0, 0, sz, sz, 0x1000) for t, off, sz in phdrs)
    body = body.ljust(0x100, b"\0")
    if interp is not None:
        body += interp
    return body.ljust(size, b"\0")


def elf_seeds():
    reset("elf")
    write("elf", "static-x86_64", elf())
    write("elf", "static-pie-sections", elf(etype=3, shnum=2, size=0x200))
    write("elf", "dynamic", elf(interp=b"/lib64/ld-linux-x86-64.so.2\0"))
    write("elf", "aarch64", elf(machine=183))
    write("elf", "truncated", elf()[:0x100])
    write("elf", "script", "#!/bin/sh\necho distrod 1.0\n")


# --------------------------------------------------------------------------------------
# /proc texts and PATH


def procfs_seeds():
    reset("procfs")
    write("procfs", "mountinfo", """\
22 1 8:32 / / rw,relatime shared:1 - ext4 /dev/sdc rw,discard,errors=remount-ro
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified\\040(wsl) rw,relatime - cgroup2 cgroup2 rw,nsdelegate
58 22 0:52 / /mnt/c rw,noatime - 9p C:\\134 rw,aname=drvfs;path=C:\\;uid=1000
""")
    write("procfs", "stat", "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615\n")
    write("procfs", "locks", """\
1: POSIX  ADVISORY  WRITE 77 00:1a:99 0 EOF
2: FLOCK  ADVISORY  WRITE 4242 00:1a:99 0 EOF
2: -> FLOCK  ADVISORY  WRITE 4343 00:1a:99 0 EOF
3: FLOCK  ADVISORY  WRITE 5151 fd:01:99 0 EOF
""")
    write("procfs", "path", "/usr/local/bin:/usr/bin:/mnt/c/Windows/system32:/mnt/c/Windows:/mnt/d/Program Files/Git/cmd:/wsl/x/Windows\n")


def content_range_seeds():
    reset("content_range")
    for i, v in enumerate(["bytes 100-199/1000", "bytes 5-9/*", "bytes */1000", "bytes 0-18446744073709551614/18446744073709551615"]):
        write("content_range", f"seed-{i}", v)


def status_seeds():
    reset("status")
    inv_slow = "5d0e4f2b8c1a4e3f9b7d6c5a4e3f2b1a"
    inv_broken = "0123456789abcdef0123456789abcdef"
    inv_quiet = "fedcba9876543210fedcba9876543210"
    manager_booting = "SystemState=starting\nUserspaceTimestampMonotonic=1032551\nFinishTimestampMonotonic=0\n"
    jobs = """\
66 distrod-test-slow.service start running
70 dev-sdz.device                start running
1  graphical.target              start waiting
2  multi-user.target             start waiting
75 systemd-update-utmp-runlevel.service start waiting
"""
    failed = """\
broken.service loaded failed failed Broken on purpose
quiet.service  loaded failed failed Killed by a signal
"""
    units = f"""\
Id=distrod-test-slow.service
ActiveState=activating
InactiveExitTimestampMonotonic=1534211
ActiveExitTimestampMonotonic=0
Result=success
InvocationID={inv_slow}

Id=dev-sdz.device
ActiveState=inactive
InactiveExitTimestampMonotonic=0
ActiveExitTimestampMonotonic=0
Result=success
InvocationID=

Id=graphical.target
ActiveState=inactive
InactiveExitTimestampMonotonic=0
ActiveExitTimestampMonotonic=0
Result=success
InvocationID=

Id=broken.service
ActiveState=failed
InactiveExitTimestampMonotonic=1203331
ActiveExitTimestampMonotonic=1240012
Result=exit-code
InvocationID={inv_broken}

Id=quiet.service
ActiveState=failed
InactiveExitTimestampMonotonic=1203440
ActiveExitTimestampMonotonic=0
Result=signal
InvocationID={inv_quiet}
"""
    # journalctl -o json: one compact object per line; MESSAGE's bytes when not UTF-8.
    entries = [
        {"__CURSOR": "s=1;i=2a", "MESSAGE": "boom: no such file\n", "_SYSTEMD_INVOCATION_ID": inv_broken},
        {"MESSAGE": [104, 105, 255, 27, 91, 50, 74], "_SYSTEMD_INVOCATION_ID": inv_quiet},
    ]
    journal = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
    # The five answers of one `distrod status`, in the order it asks (see src/status.rs).
    write("status", "slow-boot", "\0".join([manager_booting, jobs, failed, units, journal]))
    manager_done = "SystemState=degraded\nUserspaceTimestampMonotonic=1000000\nFinishTimestampMonotonic=1620000\n"
    write("status", "degraded", "\0".join([manager_done, "", failed, units, journal]))
    # One answer each, whole: every parser reads it.
    write("status", "list-jobs", jobs + "No jobs running.\n-1 a b c\n99999999999999999999999 a b c\n7 short.service start\n")
    write("status", "show", "Id=a.service\nActiveState=deactivating\nActiveExitTimestampMonotonic=18446744073709551615\n\n"
          "ActiveState=failed\nId=b.service\nInvocationID=\nweird line\nX=1=2\n\n\n")
    write("status", "journal", journal
          + '{"MESSAGE":null,"_SYSTEMD_INVOCATION_ID":"c"}\n{"MESSAGE":"no id"}\n-- No entries --\n[1,2]\n'
          + '{"MESSAGE":[1000,"x"],"_SYSTEMD_INVOCATION_ID":7}\n{"MESSAGE":"\\u001b[2J\\ud800","_SYSTEMD_INVOCATION_ID":"d"}\n{"MESSAGE":"trunc')
    # The D-Bus reply to Properties.Get(Manager, SystemState): a variant holding a string.
    state = b"starting"
    write("status", "dbus-variant", b"\x01s\x00\x00" + struct.pack("<I", len(state)) + state + b"\x00")


def dbus_message(order, body, fields, serial=1):
    """A D-Bus message of `body` bytes and `fields` bytes of header fields, as framed on
    the wire (the fields' array padded to 8); its contents are filler."""
    pack = "<" if order == b"l" else ">"
    head = order + bytes([1, 0, 1]) + struct.pack(pack + "III", body, serial, fields)
    length = (16 + fields + 7) // 8 * 8 + body
    return (head + b"\x5a" * length)[:length]


def privbus_seeds():
    reset("privbus")
    # The first byte picks the fuzz target's read sizes; then one direction of a connection.
    client = b"\0AUTH EXTERNAL 30\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n"
    write("privbus", "client", b"\x07" + client + dbus_message(b"l", 40, 101)
          + dbus_message(b"l", 0, 8, 2) + dbus_message(b"l", 300, 13, 3))
    server = b"OK 2f5e8f0c6e1d4c2a9b0d3e4f5a6b7c8d\r\nAGREE_UNIX_FD\r\n"
    write("privbus", "server", b"\x21" + server + dbus_message(b"l", 4, 61)
          + dbus_message(b"B", 2000, 45, 9))
    write("privbus", "rejected", b"\x01" + b"\0AUTH\r\nREJECTED EXTERNAL\r\nERROR\r\n")


def main():
    for tool in ("tar", "xz"):
        if shutil.which(tool) is None:
            fail(f"'{tool}' not found")
    tar_seeds()
    xz_seeds()
    catalog_seeds()
    config_seeds()
    accounts_seeds()
    wsl_conf_seeds()
    wsl_exe_seeds()
    elf_seeds()
    procfs_seeds()
    content_range_seeds()
    status_seeds()
    privbus_seeds()
    for d in sorted(CORPUS.iterdir()):
        files = list(d.iterdir())
        print(f"{d.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
