#!/usr/bin/env python3
"""A tiny simplestreams image server for distrod's tests, demo and benchmarks.

`make` lays out rootfs tarballs the way images.linuxcontainers.org does:

    streams/v1/index.json     names streams/v1/images.json
    streams/v1/images.json    products -> versions -> items (root.tar.xz: sha256, size, path)
    images/<distro>/<release>/<arch>/<variant>/<build>/rootfs.tar.xz

`serve` serves such a tree on 127.0.0.1, with single-range requests answered 206 (python's
SimpleHTTPRequestHandler ignores Range), until it is killed.

Python standard library only.
"""

import argparse
import hashlib
import http.server
import json
import os
import re
import shutil
import sys
from pathlib import Path

ITEM = "root.tar.xz"
DEFAULT_BUILD = "20260101_00:00"
MAKE_HELP = """Write streams/v1/index.json and streams/v1/images.json under DIR (adding to the
products already there) and hardlink or copy each FILE to
images/<distro>/<release>/<arch>/<variant>/<build>/rootfs.tar.xz.

Each --product starts a product; the options after it apply to it, and FILE ends it:
  --release-title T   e.g. 12 (default: the release)
  --aliases A         comma-separated (default: distro/release/variant,distro/release)
  --build B           version name (default: %s)
Options before the first --product are defaults for all products.""" % DEFAULT_BUILD


def fail(message):
    sys.exit(f"simplestreams: error: {message}")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def place(src, dst):
    """Hardlink src at dst, or copy it when they are on different filesystems."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        if dst.samefile(src):
            return
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def parse_products(argv):
    """`--product KEY [--release-title T] [--aliases A] [--build B] FILE`, repeated.

    Options given before the first --product are defaults for all products.
    """
    usage = "make --out DIR --product DISTRO:RELEASE:ARCH:VARIANT [options] FILE.tar.xz ..."
    defaults = {"release_title": None, "aliases": None, "build": DEFAULT_BUILD}
    out, products, current = None, [], None
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            print(f"usage: simplestreams.py {usage}\n\n{MAKE_HELP}")
            sys.exit(0)
        name, eq, inline = arg.partition("=")
        if name in ("--out", "--product", "--release-title", "--aliases", "--build"):
            if eq:
                value = inline
            elif args:
                value = args.pop(0)
            else:
                fail(f"{name} needs a value")
            if name == "--out":
                out = value
            elif name == "--product":
                current = dict(defaults, key=value, file=None)
                products.append(current)
            else:
                (current or defaults)[name[2:].replace("-", "_")] = value
        elif arg.startswith("-"):
            fail(f"unknown option '{arg}' (usage: {usage})")
        elif current is None or current["file"] is not None:
            fail(f"'{arg}' does not follow a --product (usage: {usage})")
        else:
            current["file"] = arg
    if out is None or not products:
        fail(f"--out and at least one --product are required (usage: {usage})")
    for product in products:
        if product["file"] is None:
            fail(f"product {product['key']} has no FILE.tar.xz")
    return Path(out), products


def documents(products):
    """The index (streams/v1/index.json) and the products file (streams/v1/images.json) of
    a catalog holding `products`, as the real server publishes them."""
    index = {
        "format": "index:1.0",
        "index": {
            "images": {
                "datatype": "image-downloads",
                "path": "streams/v1/images.json",
                "format": "products:1.0",
                "products": sorted(products),
            }
        },
    }
    images = {
        "content_id": "images",
        "datatype": "image-downloads",
        "format": "products:1.0",
        "products": products,
    }
    return index, images


def make(argv):
    out, wanted = parse_products(argv)
    products_file = out / "streams/v1/images.json"
    products = {}
    if products_file.exists():  # add to an existing tree
        products = json.loads(products_file.read_text())["products"]

    for want in wanted:
        key, build = want["key"], want["build"]
        parts = key.split(":")
        if len(parts) != 4 or not all(parts):
            fail(f"product '{key}' is not distro:release:arch:variant")
        distro, release, arch, variant = parts
        src = Path(want["file"])
        if not src.is_file():
            fail(f"no such file: {src}")
        rel = f"images/{distro}/{release}/{arch}/{variant}/{build}/rootfs.tar.xz"
        place(src, out / rel)
        aliases = want["aliases"] or f"{distro}/{release}/{variant},{distro}/{release}"
        product = products.setdefault(key, {"versions": {}})
        product.update(
            {
                "aliases": aliases,
                "arch": arch,
                "os": distro.title(),
                "release": release,
                "release_title": want["release_title"] or release,
                "variant": variant,
                "requirements": {},
            }
        )
        product["versions"][build] = {
            "items": {
                ITEM: {
                    "ftype": ITEM,
                    "sha256": sha256_of(src),
                    "size": src.stat().st_size,
                    "path": rel,
                }
            }
        }

    index, images = documents(products)
    products_file.parent.mkdir(parents=True, exist_ok=True)
    # Compact one-line JSON, like the real server's.
    (out / "streams/v1/index.json").write_text(json.dumps(index, separators=(",", ":")))
    products_file.write_text(json.dumps(images, separators=(",", ":")))
    print(out / "streams/v1/index.json")


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files plus single byte ranges (`bytes=A-B`, `bytes=A-`, `bytes=-N`)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if not self.server.quiet:
            super().log_message(fmt, *args)

    def send_head(self):
        spec = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not spec or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", spec.strip())
        if not m or m.groups() == ("", ""):
            return super().send_head()  # unsupported form (e.g. several ranges): whole file
        first, last = m.groups()
        if first == "":
            start, end = max(0, size - int(last)), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        if start >= size or start > end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.remaining = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        remaining = getattr(self, "remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        self.remaining = None
        while remaining > 0:
            chunk = source.read(min(remaining, 1 << 16))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)

    def end_headers(self):
        if self.headers.get("Range") is None:
            self.send_header("Accept-Ranges", "bytes")
        super().end_headers()


def serve(args):
    directory = Path(args.dir)
    if not (directory / "streams/v1/index.json").is_file():
        fail(f"{directory} has no streams/v1/index.json")

    def handler(*a, **kw):
        return Handler(*a, directory=str(directory), **kw)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    server.quiet = args.quiet
    port = server.server_address[1]
    if args.port_file:
        tmp = Path(args.port_file + ".tmp")
        tmp.write_text(f"{port}\n")
        tmp.replace(args.port_file)  # readers never see a half-written file
    print(port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def main():
    parser = argparse.ArgumentParser(
        prog="simplestreams.py",
        description="Make and serve a simplestreams image tree for distrod.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    # `make` takes per-product option groups, which argparse cannot express: parsed by hand.
    sub.add_parser("make", add_help=False, help="write streams/v1/*.json and place tarballs")
    p = sub.add_parser("serve", help="serve a tree on 127.0.0.1 until killed")
    p.add_argument("--dir", required=True, help="tree made by `make`")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--port-file", help="also write the port to this file")
    p.add_argument("--quiet", action="store_true", help="do not log requests")

    if len(sys.argv) > 1 and sys.argv[1] == "make":
        make(sys.argv[2:])
    else:
        serve(parser.parse_args())


if __name__ == "__main__":
    main()
