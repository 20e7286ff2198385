// C declarations that Swift cannot import or spell directly: the tun/tap and
// interface ioctls, vsock addresses, the batched socket calls that glibc
// only declares under _GNU_SOURCE, and libpcap loaded at run time.
#ifndef SOVNET_SHIM_H
#define SOVNET_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

/// Attaches `fd` (an open /dev/net/tun) to the tap interface `name` with
/// IFF_TAP | IFF_NO_PI, and IFF_VNET_HDR when `virtio_headers` (each frame
/// then comes and goes after a 10-byte virtio-net header), creating it if
/// needed. The kernel's chosen name is written to `name_out` (at least 16
/// bytes). Returns 0 or -1 with errno set.
int sovnet_tap_attach(int fd, const char *name, char *name_out, int virtio_headers);

/// TUNSETOFFLOAD: with `on`, the kernel may hand over TCP superframes (TSO
/// over IPv4 and IPv6, ECN) and frames whose checksum is left to complete;
/// without, it segments and checksums every frame itself.
int sovnet_tap_set_offload(int fd, int on);

/// Sets the hardware address of interface `name`. Returns 0 or -1 with errno.
int sovnet_set_hwaddr(const char *name, const uint8_t mac[6]);

/// Reads the hardware address of interface `name`. Returns 0 or -1 with errno.
int sovnet_get_hwaddr(const char *name, uint8_t mac_out[6]);

/// Reads the MTU of interface `name` into `mtu_out`. Returns 0 or -1 with errno.
int sovnet_get_mtu(const char *name, int *mtu_out);

/// Fills a `struct sockaddr_vm` for `cid`:`port` into `storage`; returns its length.
socklen_t sovnet_sockaddr_vm(struct sockaddr_storage *storage, unsigned int cid, unsigned int port);

/// The CID and port of a `struct sockaddr_vm` held in `storage`.
void sovnet_sockaddr_vm_parts(const struct sockaddr_storage *storage, unsigned int *cid, unsigned int *port);

/// accept4(2) with SOCK_CLOEXEC, which glibc only declares under _GNU_SOURCE.
int sovnet_accept_cloexec(int fd);

/// accept4(2) with SOCK_CLOEXEC | SOCK_NONBLOCK.
int sovnet_accept_nonblocking(int fd);

/// Installs handlers for SIGTERM, SIGINT and SIGHUP that write the signal
/// number as one byte to a pipe, and ignores SIGPIPE. Returns the pipe's
/// non-blocking read end (poll it), or -1 with errno set. The three signals
/// are unblocked in the calling thread, whatever its parent left blocked.
int sovnet_signal_pipe(void);

/// Like `sovnet_signal_pipe`, for the `count` signals in `numbers` (the
/// handler is installed without SA_RESTART for SIGCHLD only, so that a
/// blocked poll returns). SIGPIPE is ignored.
int sovnet_signal_pipe_with(const int *numbers, int count);

/// Starts a service for an init: posix_spawnp(3) of `file` (PATH searched)
/// with `argv` and `envp` in a new session (its own process group, no
/// controlling terminal), standard input from /dev/null, standard output and
/// error inherited, no other descriptor, every signal at its default and
/// none blocked. Returns the PID, or -1 with errno set.
int sovnet_spawn_service(const char *file, char *const argv[], char *const envp[]);

/// finit_module(2): loads the kernel module in `fd` with `parameters`.
int sovnet_finit_module(int fd, const char *parameters, int flags);

/// init_module(2): loads a kernel module image from memory.
int sovnet_init_module(const void *image, unsigned long length, const char *parameters);

/// MODULE_INIT_COMPRESSED_FILE: the kernel decompresses the module itself (5.17+).
int sovnet_module_init_compressed_file(void);

/// reboot(2) with RB_POWER_OFF, RB_AUTOBOOT (restart) or RB_HALT_SYSTEM.
int sovnet_power_off(void);
int sovnet_restart(void);
/// reboot(2) with RB_DISABLE_CAD: Ctrl-Alt-Del sends SIGINT to init.
int sovnet_disable_ctrl_alt_del(void);

/// Which of descriptors 0, 1 and 2 (bits 0 to 2) were closed when the
/// process started, and were filled with placeholders before the runtime
/// could take them.
int sovnet_standard_descriptors_filled(void);

/// posix_spawn(3) of `path` with `argv` and the caller's environment, with
/// standard input from /dev/null, standard output appended to `output_path`
/// (created if needed) and standard error the same, no other descriptor of
/// the caller inherited, and no signal blocked or ignored. Returns the child's PID, or -1 with errno set.
int sovnet_spawn(const char *path, char *const argv[], const char *output_path);

/// unshare(CLONE_NEWNET): moves the calling thread into a new network namespace.
int sovnet_unshare_network(void);

/// setns(fd, CLONE_NEWNET): moves the calling thread into the network
/// namespace `fd` refers to (an open /run/netns/NAME).
int sovnet_enter_network_namespace(int fd);

/// AF_VSOCK, which older C libraries do not export to Swift.
int sovnet_af_vsock(void);

/// VMADDR_CID_ANY, for listening on every CID.
unsigned int sovnet_vmaddr_cid_any(void);

/// One received or sent datagram of a batch: `mmsghdr` without the GNU-only type.
struct sovnet_mmsg {
    struct iovec iov;
    struct sockaddr_storage address;
    socklen_t address_length;
    unsigned int length;
};

/// recvmmsg(2) into `count` slots, each with one iovec and room for an address.
/// Returns how many arrived, or -1 with errno.
int sovnet_recvmmsg(int fd, struct sovnet_mmsg *slots, unsigned int count, int flags);

/// sendmmsg(2) from `count` slots; an address length of 0 means "connected".
/// Returns how many were sent, or -1 with errno.
int sovnet_sendmmsg(int fd, struct sovnet_mmsg *slots, unsigned int count, int flags);

/// memmem(3): the first occurrence of `needle` in `haystack`, or NULL.
const void *sovnet_memmem(const void *haystack, size_t haystack_length, const void *needle, size_t needle_length);

/// CLOCK_MONOTONIC in nanoseconds (Embedded Swift has no ContinuousClock).
int64_t sovnet_monotonic_nanoseconds(void);

/// Opens a pseudo-terminal's master side (posix_openpt, grantpt, unlockpt,
/// which glibc declares only under _XOPEN_SOURCE) and writes the slave's path
/// into `slave_path` (`length` bytes). Returns the master, or -1 with errno.
int sovnet_open_pty(char *slave_path, size_t length);

/// Keeps only the capabilities in `keep_mask` (bit N: capability N, below
/// 64): sets no_new_privs, clears the ambient set, drops the rest from the
/// bounding set when allowed (CAP_SETPCAP), and sets the effective,
/// permitted and inheritable sets to what remains. Returns 0, or -1 with errno.
int sovnet_keep_capabilities(unsigned long long keep_mask);

// libpcap loaded at run time, in a header of its own (its pointers are
// annotated for nullability, the rest of this file's are not).
#include "sovnet_libpcap.h"
#include "sovnet_libc.h"

#endif
