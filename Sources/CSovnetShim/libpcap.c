// Loads libpcap at run time; see sovnet_libpcap.h.
#include "sovnet_libpcap.h"

#include <dlfcn.h>
#include <stdio.h>

const struct sovnet_libpcap *sovnet_libpcap_load(char *error, size_t error_size) {
    static struct sovnet_libpcap loaded;
    struct sovnet_libpcap *functions = &loaded;
    static const char *const names[] = {"libpcap.so.1", "libpcap.so.0.8", "libpcap.so"};
    void *library = NULL;
    for (size_t index = 0; index < sizeof names / sizeof names[0] && library == NULL; index++) {
        library = dlopen(names[index], RTLD_NOW | RTLD_LOCAL);
    }
    if (library == NULL) {
        const char *reason = dlerror();
        snprintf(error, error_size, "none of libpcap.so.1, libpcap.so.0.8, libpcap.so could be loaded (%s)",
                 reason != NULL ? reason : "no reason given");
        return NULL;
    }
#define SOVNET_LOAD(field, symbol)                                                            \
    do {                                                                                      \
        *(void **)&functions->field = dlsym(library, symbol);                                 \
        if (functions->field == NULL) {                                                       \
            snprintf(error, error_size, "libpcap has no %s", symbol);                         \
            return NULL;                                                                        \
        }                                                                                     \
    } while (0)
    SOVNET_LOAD(open_dead, "pcap_open_dead");
    SOVNET_LOAD(open_offline, "pcap_open_offline");
    SOVNET_LOAD(close, "pcap_close");
    SOVNET_LOAD(geterr, "pcap_geterr");
    SOVNET_LOAD(datalink, "pcap_datalink");
    SOVNET_LOAD(compile, "pcap_compile");
    SOVNET_LOAD(freecode, "pcap_freecode");
    SOVNET_LOAD(setfilter, "pcap_setfilter");
    SOVNET_LOAD(offline_filter, "pcap_offline_filter");
    SOVNET_LOAD(next_ex, "pcap_next_ex");
#undef SOVNET_LOAD
    return functions;
}
