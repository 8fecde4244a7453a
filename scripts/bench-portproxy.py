#!/usr/bin/env python3
"""The measuring half of scripts/bench-portproxy.sh (which checks the arguments and finds
the binary): servers on 127.0.0.1 in a child process, `distrod portproxy serve` in front
of them, and the same measurements made direct and through the relay.

  bench-portproxy.py measure --binary FILE --bytes N --runs N --pings N --connects N
  bench-portproxy.py serve        (internal: the servers; prints their ports)
"""

import argparse
import os
import socket
import socketserver
import statistics
import struct
import subprocess
import sys
import threading
import time

CHUNK = 1 << 20
MESSAGE = 32


# --- servers (a child process of their own, so they never share a GIL with the client) ---


class Sink(socketserver.BaseRequestHandler):
    """Reads to EOF, then answers with the byte count (8 bytes, little-endian)."""

    def handle(self):
        sock = self.request
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        total = 0
        while True:
            n = sock.recv_into(view)
            if n == 0:
                break
            total += n
        sock.sendall(struct.pack("<Q", total))


class Echo(socketserver.BaseRequestHandler):
    """Echoes until EOF."""

    def handle(self):
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = sock.recv(65536)
            if not data:
                break
            sock.sendall(data)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def serve():
    sink = Server(("127.0.0.1", 0), Sink)
    echo = Server(("127.0.0.1", 0), Echo)
    for s in (sink, echo):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print(sink.server_address[1], echo.server_address[1], flush=True)
    # Until the parent closes our standard input.
    sys.stdin.read()


# --- the measurements ---


def connect(addr):
    sock = socket.create_connection(addr, timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def throughput(addr, nbytes):
    """Seconds to send `nbytes` one way and have the count confirmed."""
    block = memoryview(os.urandom(CHUNK))
    start = time.perf_counter()
    with connect(addr) as sock:
        left = nbytes
        while left > 0:
            n = min(left, CHUNK)
            sock.sendall(block[:n])
            left -= n
        sock.shutdown(socket.SHUT_WR)
        reply = recv_exact(sock, 8)
    took = time.perf_counter() - start
    (count,) = struct.unpack("<Q", reply)
    if count != nbytes:
        raise SystemExit(f"bench-portproxy: error: {addr} received {count} of {nbytes} bytes")
    return took


def recv_exact(sock, n):
    out = bytearray()
    while len(out) < n:
        data = sock.recv(n - len(out))
        if not data:
            raise SystemExit("bench-portproxy: error: connection closed early")
        out += data
    return bytes(out)


def pingpong(addr, pings):
    """Round-trip times (seconds) of `pings` small messages on one connection."""
    message = os.urandom(MESSAGE)
    times = []
    with connect(addr) as sock:
        for _ in range(pings):
            start = time.perf_counter()
            sock.sendall(message)
            if recv_exact(sock, MESSAGE) != message:
                raise SystemExit("bench-portproxy: error: the echo differs")
            times.append(time.perf_counter() - start)
    return times


def connects(addr, count):
    """Times (seconds) from connect to the first echoed byte, one connection at a time."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        with connect(addr) as sock:
            sock.sendall(b"x")
            recv_exact(sock, 1)
            times.append(time.perf_counter() - start)
    return times


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def start_relay(binary, sink_port, echo_port):
    """`distrod portproxy serve` in front of both servers; returns (process, sink, echo)."""
    proc = subprocess.Popen(
        [binary, "--quiet", "portproxy", "serve", "--to", "127.0.0.1", "--bind", "127.0.0.1",
         "--ports", f"0={sink_port},0={echo_port}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=clean_env(), text=True)
    addrs = []
    for _ in range(2):
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            proc.kill()
            proc.wait()
            raise SystemExit(f"bench-portproxy: error: unexpected output from the relay: {line!r}")
        listen = line[len("listening on "):].split(" -> ")[0]
        host, port = listen.rsplit(":", 1)
        addrs.append((host.strip("[]"), int(port)))
    return proc, addrs[0], addrs[1]


def clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTROD_")}
    env.pop("RUST_LOG", None)
    return env


def stop(proc, what):
    """Closes the child's standard input (how both children are told to stop), waits for
    it, and kills it (by its pid, through the handle) if it does not end."""
    if proc.poll() is not None:
        return
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        print(f"bench-portproxy: {what} did not stop within 5 s; killing it", file=sys.stderr)
        proc.kill()
        proc.wait()


def human_bytes(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


def measure(args):
    servers = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    relay = None
    try:
        sink_port, echo_port = map(int, servers.stdout.readline().split())
        sink = ("127.0.0.1", sink_port)
        echo = ("127.0.0.1", echo_port)
        relay, relay_sink, relay_echo = start_relay(args.binary, sink_port, echo_port)
        paths = {"direct": (sink, echo), "relay": (relay_sink, relay_echo)}

        # Warm-up: one small transfer and a few pings each way.
        for s, e in paths.values():
            throughput(s, 8 * CHUNK)
            pingpong(e, 50)

        secs = {"direct": [], "relay": []}
        rtts = {"direct": [], "relay": []}
        setups = {"direct": [], "relay": []}
        for run in range(args.runs):
            # Alternate which goes first, so that neither always meets a warmer cache.
            order = ["direct", "relay"] if run % 2 == 0 else ["relay", "direct"]
            for name in order:
                s, e = paths[name]
                secs[name].append(throughput(s, args.bytes))
                rtts[name].extend(pingpong(e, args.pings))
                setups[name].extend(connects(e, args.connects))
            print(f"bench-portproxy: run {run + 1}/{args.runs} done", file=sys.stderr)

        rows = []
        mib = {k: [args.bytes / (1 << 20) / t for t in v] for k, v in secs.items()}
        rows.append((f"throughput, {human_bytes(args.bytes)} one way (MiB/s, median)",
                     statistics.median(mib["direct"]), statistics.median(mib["relay"]), "{:.0f}"))
        us = {k: [t * 1e6 for t in v] for k, v in rtts.items()}
        rows.append((f"round trip, {MESSAGE} B x {args.pings} (us, median)",
                     statistics.median(us["direct"]), statistics.median(us["relay"]), "{:.1f}"))
        rows.append((f"round trip, {MESSAGE} B x {args.pings} (us, p99)",
                     percentile(us["direct"], 99), percentile(us["relay"], 99), "{:.1f}"))
        us = {k: [t * 1e6 for t in v] for k, v in setups.items()}
        rows.append((f"connect + first echo, x {args.connects} (us, median)",
                     statistics.median(us["direct"]), statistics.median(us["relay"]), "{:.1f}"))

        width = max(len(r[0]) for r in rows)
        print(f"{'':<{width}}  {'direct':>10}  {'relay':>10}  {'relay/direct':>12}")
        for label, direct, relayed, fmt in rows:
            print(f"{label:<{width}}  {fmt.format(direct):>10}  {fmt.format(relayed):>10}  "
                  f"{relayed / direct:>12.2f}")
        print(f"({args.runs} runs; load average {os.getloadavg()[0]:.2f} on "
              f"{os.cpu_count()} CPUs; relay: {args.binary})")
    finally:
        if relay is not None:
            stop(relay, "distrod portproxy serve")
        stop(servers, "the test servers")
    if relay is not None and relay.returncode != 0:
        raise SystemExit(f"bench-portproxy: error: the relay exited with {relay.returncode}")


def main():
    if sys.argv[1:] == ["serve"]:
        serve()
        return
    parser = argparse.ArgumentParser(prog="bench-portproxy.py")
    parser.add_argument("mode", choices=["measure"])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--bytes", type=int, required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--pings", type=int, required=True)
    parser.add_argument("--connects", type=int, required=True)
    measure(parser.parse_args())


if __name__ == "__main__":
    main()
