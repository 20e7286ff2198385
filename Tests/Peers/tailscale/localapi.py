#!/usr/bin/env python3
"""A stand-in for tailscaled's LocalAPI: serves GET /localapi/v0/status on a
unix socket with the JSON of a file, and, as tailscaled does, refuses
requests whose Host header is not local-tailscaled.sock (403).
Usage: localapi.py SOCKET STATUS.json"""
import http.server
import os
import socketserver
import sys

socket_path, status_path = sys.argv[1], sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get("Host") != "local-tailscaled.sock":
            self.reply(403, b"invalid localapi Host header\n", "text/plain")
        elif self.path == "/localapi/v0/status":
            with open(status_path, "rb") as status:
                self.reply(200, status.read(), "application/json")
        else:
            self.reply(404, b"404 page not found\n", "text/plain")

    def reply(self, code, body, kind):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self):
        return "unix"


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if os.path.exists(socket_path):
    os.unlink(socket_path)
with Server(socket_path, Handler) as server:
    print("serving", flush=True)
    server.serve_forever()
