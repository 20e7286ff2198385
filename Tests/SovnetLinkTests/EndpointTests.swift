import CSovnetShim
import Foundation
import Glibc
import Testing
@testable import SovnetLink

@Suite struct EndpointTests {
    @Test func parsesGvproxyURLs() throws {
        #expect(try Endpoint(url: "unix:///run/user/1000/vm.sock") == .unix(path: "/run/user/1000/vm.sock"))
        #expect(try Endpoint(url: "unixpacket:///tmp/bess.sock") == .unixPacket(path: "/tmp/bess.sock"))
        #expect(try Endpoint(url: "unixgram:///tmp/vfkit.sock") == .unixDatagram(path: "/tmp/vfkit.sock"))
        #expect(try Endpoint(url: "vsock://2:1024/connect") == .vsock(cid: 2, port: 1024, path: "/connect"))
        #expect(try Endpoint(url: "vsock://:1024") == .vsock(cid: nil, port: 1024, path: nil))
        #expect(try Endpoint(url: "tcp://127.0.0.1:7777") == .tcp(host: "127.0.0.1", port: 7777))
        #expect(try Endpoint(url: "tcp://[::1]:7777") == .tcp(host: "::1", port: 7777))
        #expect(try Endpoint(url: "stdio:") == .stdio)
        for url in ["unix:///run/vm.sock", "vsock://2:1024/connect", "vsock://:1024", "tcp://[::1]:80", "stdio:"] {
            #expect(try Endpoint(url: url).description == url)
        }
        #expect(try Endpoint(url: "unixgram:///x").defaultFraming == .vfkit)
    }

    @Test func rejectsBadURLs() {
        for url in ["", "vm.sock", "unix://relative", "ftp://x", "vsock://2", "vsock://x:1", "tcp://:80",
                    "tcp://127.0.0.1", "tcp://127.0.0.1:99999", "unix:///" + String(repeating: "a", count: 120)] {
            #expect(throws: EndpointError.self, "\(url)") { _ = try Endpoint(url: url) }
        }
    }

    @Test func vsockAddressLayout() {
        var storage = sockaddr_storage()
        let length = sovnet_sockaddr_vm(&storage, 2, 1024)
        var cid: UInt32 = 0
        var port: UInt32 = 0
        sovnet_sockaddr_vm_parts(&storage, &cid, &port)
        #expect(length == 16)
        #expect(storage.ss_family == sa_family_t(sovnet_af_vsock()))
        #expect(cid == 2 && port == 1024)
    }

    @Test func socketCreatedWithMode0600() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("mode.sock")
        let listener = try FrameListener(endpoint: .unix(path: path), framing: .vm)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        listener.close()
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    /// Field lesson 4: a socket left by a dead process is removed; a live one
    /// is a clear error; anything else at the path is left alone.
    @Test func staleSocketsAreRemovedLiveOnesRefused() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("vm.sock")
        // A socket file with nobody listening, as a killed gvproxy leaves.
        let dead = try Sockets.listen(on: .unix(path: path), mode: 0o600)
        close(dead)
        #expect(FileManager.default.fileExists(atPath: path))
        let live = try FrameListener(endpoint: .unix(path: path), framing: .vm)
        #expect(throws: LinkError.addressInUse(path: path)) {
            _ = try FrameListener(endpoint: .unix(path: path), framing: .vm)
        }
        live.close()
        let file = directory.file("not-a-socket")
        FileManager.default.createFile(atPath: file, contents: Data("keep".utf8))
        #expect(throws: LinkError.notASocket(path: file)) {
            _ = try FrameListener(endpoint: .unix(path: file), framing: .vm)
        }
        #expect(FileManager.default.contents(atPath: file) == Data("keep".utf8))
    }

    @Test func connectingToNothingIsAClearError() {
        #expect(throws: LinkError.system(operation: "connect unix:///nonexistent/vm.sock", errno: ErrorNumber(rawValue: ENOENT))) {
            _ = try FrameTransport.connect(to: .unix(path: "/nonexistent/vm.sock"), framing: .vm)
        }
    }
}
