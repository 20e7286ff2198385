#define _GNU_SOURCE
#include "sovnet_shim.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/if_tun.h>
#include <linux/module.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <fcntl.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <net/if_arp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int copy_name(struct ifreq *request, const char *name) {
    if (name == NULL || strlen(name) >= IFNAMSIZ) {
        errno = EINVAL;
        return -1;
    }
    memset(request, 0, sizeof(*request));
    strncpy(request->ifr_name, name, IFNAMSIZ - 1);
    return 0;
}

static int with_control_socket(unsigned long op, struct ifreq *request) {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -1;
    int result = ioctl(sock, op, request);
    int saved = errno;
    close(sock);
    errno = saved;
    return result;
}

int sovnet_tap_attach(int fd, const char *name, char *name_out, int virtio_headers) {
    struct ifreq request;
    if (copy_name(&request, name) < 0) return -1;
    request.ifr_flags = IFF_TAP | IFF_NO_PI | (virtio_headers ? IFF_VNET_HDR : 0);
    if (ioctl(fd, TUNSETIFF, &request) < 0) return -1;
    memcpy(name_out, request.ifr_name, IFNAMSIZ);
    name_out[IFNAMSIZ - 1] = 0;
    return 0;
}

int sovnet_tap_set_offload(int fd, int on) {
    unsigned int flags = on ? (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN) : 0;
    return ioctl(fd, TUNSETOFFLOAD, flags);
}

int sovnet_set_hwaddr(const char *name, const uint8_t mac[6]) {
    struct ifreq request;
    if (copy_name(&request, name) < 0) return -1;
    request.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    memcpy(request.ifr_hwaddr.sa_data, mac, 6);
    return with_control_socket(SIOCSIFHWADDR, &request);
}

int sovnet_get_hwaddr(const char *name, uint8_t mac_out[6]) {
    struct ifreq request;
    if (copy_name(&request, name) < 0) return -1;
    if (with_control_socket(SIOCGIFHWADDR, &request) < 0) return -1;
    memcpy(mac_out, request.ifr_hwaddr.sa_data, 6);
    return 0;
}

int sovnet_get_mtu(const char *name, int *mtu_out) {
    struct ifreq request;
    if (copy_name(&request, name) < 0) return -1;
    if (with_control_socket(SIOCGIFMTU, &request) < 0) return -1;
    *mtu_out = request.ifr_mtu;
    return 0;
}

socklen_t sovnet_sockaddr_vm(struct sockaddr_storage *storage, unsigned int cid, unsigned int port) {
    struct sockaddr_vm *address = (struct sockaddr_vm *)storage;
    memset(storage, 0, sizeof(*storage));
    address->svm_family = AF_VSOCK;
    address->svm_cid = cid;
    address->svm_port = port;
    return sizeof(*address);
}

void sovnet_sockaddr_vm_parts(const struct sockaddr_storage *storage, unsigned int *cid, unsigned int *port) {
    const struct sockaddr_vm *address = (const struct sockaddr_vm *)storage;
    *cid = address->svm_cid;
    *port = address->svm_port;
}

int sovnet_accept_cloexec(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC); }

int sovnet_accept_nonblocking(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK); }

static int signal_pipe_write = -1;

static void write_signal(int number) {
    int saved = errno;
    unsigned char byte = (unsigned char)number;
    if (write(signal_pipe_write, &byte, 1) < 0) { /* the pipe is full: a signal is already pending */ }
    errno = saved;
}

extern char **environ;

/// posix_spawn(3), or posix_spawnp(3) when `search_path`, with `actions`
/// (which it destroys): the child starts with no signal blocked and every
/// signal at its default, whatever the spawning thread had (Dispatch's
/// worker threads block every signal; init ignores some), plus `flags`.
static int spawn_clean(const char *file, int search_path, posix_spawn_file_actions_t *actions, short flags,
                       char *const argv[], char *const envp[]) {
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | flags);
    pid_t child = -1;
    int result = search_path ? posix_spawnp(&child, file, actions, &attributes, argv, envp)
                             : posix_spawn(&child, file, actions, &attributes, argv, envp);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(actions);
    if (result != 0) {
        errno = result;
        return -1;
    }
    return child;
}

int sovnet_signal_pipe_with(const int *numbers, int count) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) return -1;
    signal_pipe_write = fds[1];
    sigset_t wanted;
    sigemptyset(&wanted);
    for (int i = 0; i < count; i++) {
        struct sigaction action;
        memset(&action, 0, sizeof(action));
        action.sa_handler = write_signal;
        sigemptyset(&action.sa_mask);
        action.sa_flags = numbers[i] == SIGCHLD ? SA_NOCLDSTOP : SA_RESTART;
        sigaction(numbers[i], &action, NULL);
        sigaddset(&wanted, numbers[i]);
    }
    signal(SIGPIPE, SIG_IGN);
    pthread_sigmask(SIG_UNBLOCK, &wanted, NULL);
    return fds[0];
}

int sovnet_signal_pipe(void) {
    const int numbers[] = {SIGTERM, SIGINT, SIGHUP};
    return sovnet_signal_pipe_with(numbers, 3);
}

/* Descriptors from 3 up are not passed on to a spawned program. glibc
   (2.34 and later) closes them in the child; C libraries without that
   action (musl) get them marked close-on-exec in the parent instead, with
   close_range(2) (Linux 5.11), which changes nothing for descriptors sovnet
   opened: they are all close-on-exec already. */
static void close_from_three(posix_spawn_file_actions_t *actions) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(actions, 3);
#else
    (void)actions;
    syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
#endif
}

int sovnet_spawn_service(const char *file, char *const argv[], char *const envp[]) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    close_from_three(&actions);
    return spawn_clean(file, 1, &actions, POSIX_SPAWN_SETSID, argv, envp);
}

int sovnet_finit_module(int fd, const char *parameters, int flags) {
    return (int)syscall(SYS_finit_module, fd, parameters, flags);
}

int sovnet_init_module(const void *image, unsigned long length, const char *parameters) {
    return (int)syscall(SYS_init_module, image, length, parameters);
}

int sovnet_module_init_compressed_file(void) {
#ifdef MODULE_INIT_COMPRESSED_FILE
    return MODULE_INIT_COMPRESSED_FILE;
#else
    return 4;
#endif
}

int sovnet_power_off(void) { return reboot(RB_POWER_OFF); }

int sovnet_restart(void) { return reboot(RB_AUTOBOOT); }

int sovnet_disable_ctrl_alt_del(void) { return reboot(RB_DISABLE_CAD); }

int sovnet_spawn(const char *path, char *const argv[], const char *output_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, output_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    close_from_three(&actions);
    return spawn_clean(path, 0, &actions, 0, argv, environ);
}

int sovnet_unshare_network(void) { return unshare(CLONE_NEWNET); }

int sovnet_enter_network_namespace(int fd) { return setns(fd, CLONE_NEWNET); }

int sovnet_af_vsock(void) { return AF_VSOCK; }

unsigned int sovnet_vmaddr_cid_any(void) { return VMADDR_CID_ANY; }

enum { batch_limit = 64 };

static void fill_headers(struct mmsghdr *headers, struct sovnet_mmsg *slots, unsigned int count, int receiving) {
    for (unsigned int i = 0; i < count; i++) {
        memset(&headers[i], 0, sizeof(headers[i]));
        headers[i].msg_hdr.msg_iov = &slots[i].iov;
        headers[i].msg_hdr.msg_iovlen = 1;
        if (receiving || slots[i].address_length > 0) {
            headers[i].msg_hdr.msg_name = &slots[i].address;
            headers[i].msg_hdr.msg_namelen = receiving ? sizeof(slots[i].address) : slots[i].address_length;
        }
    }
}

int sovnet_recvmmsg(int fd, struct sovnet_mmsg *slots, unsigned int count, int flags) {
    struct mmsghdr headers[batch_limit];
    if (count > batch_limit) count = batch_limit;
    fill_headers(headers, slots, count, 1);
    int received = recvmmsg(fd, headers, count, flags, NULL);
    for (int i = 0; i < received; i++) {
        slots[i].length = headers[i].msg_len;
        slots[i].address_length = headers[i].msg_hdr.msg_namelen;
    }
    return received;
}

int sovnet_sendmmsg(int fd, struct sovnet_mmsg *slots, unsigned int count, int flags) {
    struct mmsghdr headers[batch_limit];
    if (count > batch_limit) count = batch_limit;
    fill_headers(headers, slots, count, 0);
    return sendmmsg(fd, headers, count, flags);
}

const void *sovnet_memmem(const void *haystack, size_t haystack_length, const void *needle, size_t needle_length) {
    return memmem(haystack, haystack_length, needle, needle_length);
}

int64_t sovnet_monotonic_nanoseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

int sovnet_open_pty(char *slave_path, size_t length) {
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return -1;
    if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, slave_path, length) != 0) {
        int saved = errno;
        close(master);
        errno = saved;
        return -1;
    }
    return master;
}

// A process started with descriptor 0, 1 or 2 closed (the kernel's first
// process, when no console is there yet at boot) would see the runtime's
// own descriptors (Dispatch's epoll, eventfd and timerfd) take those
// numbers, and its log lines written into them. This runs before the
// runtime starts and fills the gaps: with /dev/null, or, where there is no
// /dev yet, with the root directory, which takes nothing written to it.
static int standard_descriptors_filled = 0;

__attribute__((constructor(101))) static void sovnet_reserve_standard_descriptors(void) {
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0) continue;
        int placeholder = open("/dev/null", O_RDWR);
        if (placeholder < 0) placeholder = open("/", O_RDONLY);
        if (placeholder >= 0 && placeholder != fd) {
            dup2(placeholder, fd);
            close(placeholder);
        }
        standard_descriptors_filled |= 1 << fd;
    }
}

int sovnet_standard_descriptors_filled(void) { return standard_descriptors_filled; }

int sovnet_keep_capabilities(unsigned long long keep_mask) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &header, data) != 0) return -1;
    int may_drop_bounding = (data[0].effective >> CAP_SETPCAP) & 1;
    for (int cap = 0; cap < 64; cap++) {
        if ((keep_mask >> cap) & 1) continue;
        if (may_drop_bounding && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    }
    for (int word = 0; word < 2; word++) {
        unsigned int keep = (unsigned int)(keep_mask >> (32 * word));
        data[word].permitted &= keep;
        data[word].effective &= keep;
        data[word].inheritable &= keep;
    }
    return (int)syscall(SYS_capset, &header, data);
}

int sovnet_errno(void) {
    return errno;
}

void sovnet_set_errno(int value) {
    errno = value;
}

char **sovnet_environment(void) {
    return environ;
}

int sovnet_open(const char *path, int flags, unsigned int mode) {
    return open(path, flags, (mode_t)mode);
}

int sovnet_fcntl(int fd, int command, int argument) {
    return fcntl(fd, command, argument);
}

#if !defined(__GLIBC__)
#include <sys/random.h>
// Embedded Swift seeds its hashing with arc4random_buf, which glibc (2.36)
// has and musl does not: from getrandom(2) here.
void arc4random_buf(void *buffer, size_t length) {
    unsigned char *bytes = buffer;
    while (length > 0) {
        ssize_t got = getrandom(bytes, length, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            abort();
        }
        bytes += got;
        length -= (size_t)got;
    }
}
#endif
