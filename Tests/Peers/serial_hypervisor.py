#!/usr/bin/env python3
"""A stand-in for a hypervisor's virtio console port carried on a unix
socket, as QEMU's `-chardev socket,path=P,reconnect=1 -device virtconsole`
and crosvm's `--serial type=unix-stream,path=P,hardware=virtio-console` do.

The guest's port is a pseudo-terminal (left as the kernel makes it, echo and
all, until the guest sets it to raw mode); its slave is linked at LINK. Bytes
are relayed both ways between the pseudo-terminal and the proxy's socket P,
each direction on its own so that neither blocks the other. When the socket
closes (the proxy went away) the stand-in connects again every 100 ms, and
what the guest writes meanwhile is lost, as with QEMU. --garbage N first
writes N random bytes towards each side, as a port opened mid-stream would
show. It runs for --lifetime seconds at most."""
import argparse
import os
import random
import select
import socket
import time


def drain(master):
    """Drops what the guest wrote: there is no proxy to take it."""
    try:
        while os.read(master, 1 << 16):
            pass
    except BlockingIOError:
        pass


def connect(path, master, deadline):
    while time.monotonic() < deadline:
        drain(master)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            sock.setblocking(False)
            return sock
        except OSError:
            sock.close()
            time.sleep(0.1)
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("link")
    parser.add_argument("socket")
    parser.add_argument("--garbage", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=300)
    a = parser.parse_args()
    deadline = time.monotonic() + a.lifetime
    master, slave = os.openpty()
    os.set_blocking(master, False)
    if os.path.lexists(a.link):
        os.unlink(a.link)
    os.symlink(os.ttyname(slave), a.link)
    print("ready", flush=True)
    noise = random.Random(7).randbytes(a.garbage)
    to_guest = bytearray(noise)
    connections = 0
    while time.monotonic() < deadline:
        sock = connect(a.socket, master, deadline)
        if sock is None:
            break
        connections += 1
        print(f"connected {connections}", flush=True)
        to_host = bytearray(noise if connections == 1 else b"")
        while time.monotonic() < deadline:
            readers = []
            if len(to_host) < 1 << 20:
                readers.append(master)
            if len(to_guest) < 1 << 20:
                readers.append(sock)
            writers = ([sock] if to_host else []) + ([master] if to_guest else [])
            readable, writable, _ = select.select(readers, writers, [], 0.5)
            if master in readable:
                try:
                    to_host += os.read(master, 1 << 16)
                except BlockingIOError:
                    pass
            if sock in readable:
                try:
                    chunk = sock.recv(1 << 16)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    break
                to_guest += chunk
            if sock in writable and to_host:
                try:
                    del to_host[:sock.send(to_host)]
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass
            if master in writable and to_guest:
                try:
                    del to_guest[:os.write(master, to_guest)]
                except BlockingIOError:
                    pass
        sock.close()
        print("disconnected", flush=True)
    os.unlink(a.link)


if __name__ == "__main__":
    main()
