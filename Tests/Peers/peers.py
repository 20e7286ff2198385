#!/usr/bin/env python3
"""Peers for sovnet's end-to-end NAT tests: servers that run on the host side
of the proxy or in a guest namespace, and clients that check what came back.
Every wait is bounded; every client prints one line that the test reads.

Data is pseudo-random from a seed, so each side can check the other's bytes
by SHA-256 without keeping them."""
import argparse
import hashlib
import random
import socket
import struct
import sys
import threading
import time


def data(size, seed=1):
    return random.Random(seed).randbytes(size)


def digest(blob):
    return hashlib.sha256(blob).hexdigest()[:16]


def family(host):
    """IPv6 for an address with colons, else IPv4."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def serve(host, port, handler, kind=socket.SOCK_STREAM):
    listener = socket.socket(family(host), kind)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    if kind == socket.SOCK_DGRAM:
        print("ready", flush=True)
        handler(listener)
        return
    listener.listen(1024)
    print("ready", flush=True)
    while True:
        connection, address = listener.accept()
        threading.Thread(target=handler, args=(connection, address), daemon=True).start()


def echo(connection, address):
    with connection:
        while chunk := connection.recv(1 << 16):
            connection.sendall(chunk)


def sink(delay):
    def handle(connection, address):
        with connection:
            time.sleep(delay)
            hasher, count = hashlib.sha256(), 0
            while chunk := connection.recv(1 << 20):
                hasher.update(chunk)
                count += len(chunk)
            connection.sendall(f"{count} {hasher.hexdigest()[:16]}\n".encode())
    return handle


def source(size):
    def handle(connection, address):
        with connection:
            connection.sendall(data(size))
    return handle


def banner(text):
    def handle(connection, address):
        with connection:
            print(f"connection from {address[0]}", flush=True)
            connection.sendall(f"{text} {address[0]}\n".encode())
            connection.recv(100)
    return handle


def ticker(count, delay):
    # Pushes `tick N` lines, --delay seconds apart, and reads nothing.
    def handle(connection, address):
        with connection:
            for index in range(count):
                connection.sendall(f"tick {index}\n".encode())
                time.sleep(delay)
    return handle


def reset_after(count):
    # Reads --size bytes, then closes with SO_LINGER 0: the peer gets an RST.
    def handle(connection, address):
        received = 0
        while received < count and (chunk := connection.recv(1 << 16)):
            received += len(chunk)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    return handle


def udp_sink(listener):
    count = 0
    while True:
        listener.recv(65535)
        count += 1


def udp_echo(listener):
    while True:
        payload, address = listener.recvfrom(65535)
        listener.sendto(payload[::-1], address)


def dns_answers(address):
    """A UDP handler answering every A query with `address` (other types: no data)."""
    octets = bytes(int(part) for part in address.split("."))

    def handle(listener):
        while True:
            query, peer = listener.recvfrom(512)
            if len(query) < 12:
                continue
            end = 12
            while end < len(query) and query[end] != 0:
                end += query[end] + 1
            question = query[12:end + 5]
            qtype = int.from_bytes(query[end + 1:end + 3], "big")
            answers = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + octets if qtype == 1 else b""
            header = query[:2] + b"\x81\x80\x00\x01" + (b"\x00\x01" if answers else b"\x00\x00") + b"\x00\x00\x00\x00"
            listener.sendto(header + question + answers, peer)
    return handle


def client(host, port, timeout):
    return socket.create_connection((host, port), timeout=timeout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("role")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--size", type=int, default=1 << 20)
    parser.add_argument("--delay", type=float, default=0)
    parser.add_argument("--text", default="hello")
    parser.add_argument("--timeout", type=float, default=20)
    parser.add_argument("--count", type=int, default=1)
    a = parser.parse_args()
    if a.role == "echo-server":
        serve(a.host, a.port, echo)
    elif a.role == "sink-server":
        serve(a.host, a.port, sink(a.delay))
    elif a.role == "source-server":
        serve(a.host, a.port, source(a.size))
    elif a.role == "banner-server":
        serve(a.host, a.port, banner(a.text))
    elif a.role == "ticker-server":
        serve(a.host, a.port, ticker(a.count, a.delay))
    elif a.role == "reset-server":
        serve(a.host, a.port, reset_after(a.size))
    elif a.role == "udp-sink-server":
        serve(a.host, a.port, udp_sink, socket.SOCK_DGRAM)
    elif a.role == "udp-echo-server":
        serve(a.host, a.port, udp_echo, socket.SOCK_DGRAM)
    elif a.role == "dns-server":
        serve(a.host, a.port, dns_answers(a.text), socket.SOCK_DGRAM)
    elif a.role == "echo":
        # Writes and reads at once; the echoed bytes must be the bytes sent.
        sent = data(a.size)
        with client(a.host, a.port, a.timeout) as connection:
            writer = threading.Thread(target=connection.sendall, args=(sent,))
            writer.start()
            received = bytearray()
            while len(received) < len(sent) and (chunk := connection.recv(1 << 20)):
                received += chunk
            writer.join(a.timeout)
        print("ok" if bytes(received) == sent else f"mismatch {len(received)} of {len(sent)}")
    elif a.role == "send":
        sent = data(a.size)
        with client(a.host, a.port, a.timeout) as connection:
            connection.sendall(sent)
            connection.shutdown(socket.SHUT_WR)
            answer = connection.recv(100).decode().strip()
        print("ok" if answer == f"{len(sent)} {digest(sent)}" else f"mismatch: {answer}")
    elif a.role == "fetch":
        with client(a.host, a.port, a.timeout) as connection:
            time.sleep(a.delay)
            received = bytearray()
            while chunk := connection.recv(1 << 20):
                received += chunk
        print("ok" if bytes(received) == data(a.size) else f"mismatch {len(received)}")
    elif a.role == "connect":
        try:
            with client(a.host, a.port, a.timeout) as connection:
                connection.settimeout(a.timeout)
                print(connection.recv(100).decode().strip() or "closed")
        except OSError as error:
            print(type(error).__name__, error.errno)
    elif a.role == "many":
        # --count connections open at once, each echoing its own payload.
        connections = [client(a.host, a.port, a.timeout) for _ in range(a.count)]
        payloads = [data(a.size, index + 100) for index in range(a.count)]
        for connection, payload in zip(connections, payloads):
            connection.sendall(payload)
        good = 0
        for connection, payload in zip(connections, payloads):
            received = bytearray()
            while len(received) < len(payload) and (chunk := connection.recv(1 << 16)):
                received += chunk
            good += bytes(received) == payload
            connection.close()
        print(f"{good} of {a.count} ok")
    elif a.role == "udp-listen":
        # Counts the datagrams that reach HOST:PORT within --timeout seconds.
        listener = socket.socket(family(a.host), socket.SOCK_DGRAM)
        listener.bind((a.host, a.port))
        print("ready", flush=True)
        count, deadline = 0, time.monotonic() + a.timeout
        while (left := deadline - time.monotonic()) > 0:
            listener.settimeout(left)
            try:
                listener.recv(65535)
                count += 1
            except socket.timeout:
                break
        print(f"received {count}", flush=True)
    elif a.role == "notification-listen":
        # A supervisor's end of gvproxy's -notification: HOST is a unix socket
        # path; prints each message as it comes, for --timeout seconds.
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(a.host)
        listener.listen(16)
        print("ready", flush=True)
        deadline = time.monotonic() + a.timeout
        while (left := deadline - time.monotonic()) > 0:
            listener.settimeout(left)
            try:
                connection, _ = listener.accept()
            except socket.timeout:
                break
            connection.settimeout(5)
            said = b""
            while chunk := connection.recv(4096):
                said += chunk
            connection.close()
            for line in said.decode().splitlines():
                print("message", line, flush=True)
    elif a.role == "ticks":
        # Reads a ticker-server's --count lines; they must all come, in order.
        with client(a.host, a.port, a.timeout) as connection:
            connection.settimeout(a.timeout)
            received = bytearray()
            try:
                while received.count(b"\n") < a.count and (chunk := connection.recv(1 << 16)):
                    received += chunk
            except OSError as error:
                lines = received.count(b"\n")
                print(f"{type(error).__name__} after {lines} ticks")
                return
        lines = received.decode().split("\n")[:a.count]
        print(f"{a.count} ticks" if lines == [f"tick {n}" for n in range(a.count)] else f"wrong ticks {lines[:3]}")
    elif a.role == "steady":
        # One connection, --count small echoes --delay seconds apart.
        with client(a.host, a.port, a.timeout) as connection:
            for index in range(a.count):
                message = f"echo {index}\n".encode()
                connection.sendall(message)
                received = b""
                while len(received) < len(message) and (chunk := connection.recv(100)):
                    received += chunk
                if received != message:
                    print(f"echo {index} failed: {received!r}")
                    return
                time.sleep(a.delay)
        print(f"{a.count} echoes")
    elif a.role == "short":
        # --count connections one after another, each echoing 16 bytes, in at most --timeout seconds.
        deadline, good = time.monotonic() + a.timeout, 0
        started = time.monotonic()
        for index in range(a.count):
            if time.monotonic() > deadline:
                break
            message = f"{index:015d}\n".encode()
            try:
                with client(a.host, a.port, 5) as connection:
                    connection.sendall(message)
                    received = b""
                    while len(received) < len(message) and (chunk := connection.recv(100)):
                        received += chunk
                    good += received == message
            except OSError:
                pass
        print(f"{good} of {a.count} ok in {time.monotonic() - started:.1f} s")
    elif a.role == "until-open":
        # Tries to connect and echo every 50 ms until it works or --timeout passes; prints the seconds it took.
        started = time.monotonic()
        while time.monotonic() - started < a.timeout:
            try:
                with client(a.host, a.port, 1) as connection:
                    connection.sendall(b"ping\n")
                    if connection.recv(100) == b"ping\n":
                        print(f"open after {time.monotonic() - started:.2f} s")
                        return
            except OSError:
                pass
            time.sleep(0.05)
        print("never opened")
    elif a.role == "reset":
        # Sends --size bytes and waits: the server resets; prints what the guest saw and when.
        started = time.monotonic()
        with client(a.host, a.port, a.timeout) as connection:
            try:
                connection.sendall(data(a.size))
                answer = connection.recv(100)
                print(f"closed {answer!r}")
            except OSError as error:
                print(f"{type(error).__name__} after {time.monotonic() - started:.2f} s")
    elif a.role == "flood":
        # UDP datagrams of --size bytes as fast as the socket takes them, for --delay seconds.
        sent, stop = 0, time.monotonic() + a.delay
        with socket.socket(family(a.host), socket.SOCK_DGRAM) as udp:
            udp.connect((a.host, a.port))
            payload = data(a.size)
            while time.monotonic() < stop:
                try:
                    udp.send(payload)
                    sent += 1
                except OSError:
                    pass
        print(f"sent {sent}")
    elif a.role == "digest":
        print(digest(data(a.size)))
    elif a.role == "hold":
        # Opens --count connections at once and keeps them (--delay seconds, at least 0.2); counts the refused.
        held, refused = [], 0
        for _ in range(a.count):
            try:
                held.append(client(a.host, a.port, a.timeout))
            except (ConnectionRefusedError, ConnectionResetError):
                refused += 1
        time.sleep(max(0.2, a.delay))
        for connection in held:
            connection.close()
        print(f"opened {len(held)} refused {refused}")
    elif a.role == "udp":
        with socket.socket(family(a.host), socket.SOCK_DGRAM) as udp:
            udp.settimeout(a.timeout)
            udp.connect((a.host, a.port))
            results = []
            for index in range(a.count):
                payload = data(a.size, index + 2)
                udp.send(payload)
                try:
                    answer = udp.recv(65535)
                    results.append("ok" if answer == payload[::-1] else f"mismatch {len(answer)}")
                except OSError as error:
                    results.append(type(error).__name__)
        print(" ".join(results))
    else:
        sys.exit(f"unknown role {a.role}")


if __name__ == "__main__":
    main()
