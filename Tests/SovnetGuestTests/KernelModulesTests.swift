import Foundation
import Testing
@testable import SovnetGuest

/// How `sovnet-init` resolves modules: names, built-in modules and missing
/// dependencies, from a modules.dep of its own. (Nothing here is handed to
/// this machine's kernel; the QEMU guest test loads real modules.)
@Suite struct KernelModulesTests {
    @Test(arguments: [("kernel/drivers/net/tun.ko", "tun"), ("kernel/drivers/char/virtio_console.ko.xz", "virtio_console"),
                      ("kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko.zst", "vmw_vsock_virtio_transport"),
                      ("extra/snd-hda-intel.ko.gz", "snd_hda_intel"), ("tun", "tun"), ("virtio-pci", "virtio_pci")])
    func moduleNames(path: String, name: String) {
        #expect(KernelModules.name(ofPath: path) == name)
    }

    @Test func builtInMissingAndUnmetDependencies() throws {
        let root = NSTemporaryDirectory() + "sovnet-modules-\(getpid())"
        let directory = root + "/lib/modules/6.1.0-test"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try """
            kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
            kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
            kernel/drivers/net/tun.ko:

            """.write(toFile: directory + "/modules.dep", atomically: true, encoding: .utf8)
        try "kernel/drivers/virtio/virtio_ring.ko\n".write(toFile: directory + "/modules.builtin", atomically: true, encoding: .utf8)
        var modules = try #require(KernelModules(root: root, release: "6.1.0-test"))
        #expect(modules.load("virtio_ring") == .builtIn)
        #expect(modules.load("vsock") == .notFound)
        // virtio.ko is listed but its file is not there: it fails, and so does what needs it.
        #expect(modules.load("virtio-console") == .failed("needs virtio, which failed: open \(directory)/kernel/drivers/virtio/virtio.ko: No such file or directory"))
        #expect(KernelModules(root: root, release: "none") == nil, "no module directory: everything is built in")
    }
}
