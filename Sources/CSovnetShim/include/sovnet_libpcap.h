// libpcap, loaded when a capture filter or a capture file to read asks for
// it (dlopen, libpcap.c), not linked: a guest binary then needs neither
// libpcap nor what it pulls in (libdbus, libsystemd, libgcrypt) to run, and
// writes its captures without it. The structures are libpcap's, declared
// here with the same layout so that its headers are not needed either.
#ifndef SOVNET_LIBPCAP_H
#define SOVNET_LIBPCAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#pragma clang assume_nonnull begin

/// libpcap's `struct pcap_pkthdr`: a record's time and lengths.
struct sovnet_pcap_pkthdr {
    struct timeval ts;
    uint32_t caplen;
    uint32_t len;
};

/// libpcap's `struct bpf_program`: a compiled filter.
struct sovnet_bpf_program {
    unsigned int bf_len;
    void *_Nullable bf_insns;
};

/// The libpcap functions sovnet calls; a `pcap_t *` is a `void *` here.
struct sovnet_libpcap {
    void *_Nullable (*_Nonnull open_dead)(int linktype, int snaplen);
    void *_Nullable (*_Nonnull open_offline)(const char *path, char *errbuf);
    void (*close)(void *pcap);
    char *_Nullable (*_Nonnull geterr)(void *pcap);
    int (*datalink)(void *pcap);
    int (*compile)(void *pcap, struct sovnet_bpf_program *program, const char *expression, int optimize,
                   uint32_t netmask);
    void (*freecode)(struct sovnet_bpf_program *program);
    int (*setfilter)(void *pcap, struct sovnet_bpf_program *program);
    int (*offline_filter)(const struct sovnet_bpf_program *program, const struct sovnet_pcap_pkthdr *header,
                          const uint8_t *data);
    int (*next_ex)(void *pcap, struct sovnet_pcap_pkthdr *_Nullable *_Nonnull header, const uint8_t *_Nullable *_Nonnull data);
};

/// Loads libpcap (libpcap.so.1, as most distributions name it, then
/// Debian's libpcap.so.0.8) and returns its functions, or NULL with the
/// loader's reason in `error`. Call it once (the functions are kept in one
/// static structure, filled by each call).
const struct sovnet_libpcap *_Nullable sovnet_libpcap_load(char *error, size_t error_size);

#pragma clang assume_nonnull end

#endif
