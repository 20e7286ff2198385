// The C library as the guest side's Swift sees it when it is built as
// Embedded Swift (scripts/build-guest-embedded), which has no Glibc module:
// the headers that module would bring, and functions for what Swift cannot
// call directly there (errno is a macro; open and fcntl are variadic).
// Every other build gets the same declarations from Glibc (or Musl).
#ifndef SOVNET_LIBC_H
#define SOVNET_LIBC_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/// The calling thread's errno.
int sovnet_errno(void);
/// Sets the calling thread's errno.
void sovnet_set_errno(int value);
/// The environment (`environ`, which glibc declares only under _GNU_SOURCE).
char **sovnet_environment(void);
/// open(2) with a mode (used when `flags` has O_CREAT).
int sovnet_open(const char *path, int flags, unsigned int mode);
/// fcntl(2) with an integer argument, or none (0) for the commands without one.
int sovnet_fcntl(int fd, int command, int argument);

#endif
