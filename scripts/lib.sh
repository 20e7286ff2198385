# Shared by the scripts in this folder: find the Swift toolchain and install
# Debian packages that are missing (and only those).

if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    PATH="$PATH:/opt/swift/usr/bin"
fi

# install_packages PKG...: apt-get installs the packages not yet installed.
install_packages() {
    local missing=()
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$package")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "missing Debian packages: ${missing[*]}; install them as root (there is no sudo here)" >&2
            return 1
        fi
        sudo="sudo"
    fi
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# What building sovnet needs besides Swift.
build_packages=(libpcap-dev pkg-config zlib1g-dev liblzma-dev musl-dev musl-tools gcc)
# What the tests use as real peers and references.
test_packages=(linux-libc-dev tshark tcpdump iproute2 nftables passt dnsmasq-base python3 curl iperf3 iputils-ping util-linux udhcpc isc-dhcp-client dhcpcd-base bind9-dnsutils qemu-system-x86 busybox-static cpio kmod socat slirp4netns openssh-client openssh-server podman)

# check_libc_portability: the guest side keeps to what musl (Alpine) has as
# well as glibc (issue #19, docs/guest.md), for a build with the Swift Static
# Linux SDK's Musl module too: its Swift sources import the C library only as
# `#if canImport(Glibc) … #elseif canImport(Musl)` and never spell the module
# (`Glibc.close`: `systemClose`, SovnetLink/Platform/LibC.swift). No Swift
# standard library for musl is here, so these rules are checked as text; the
# Embedded build (scripts/build-guest-embedded) compiles the same sources and
# the C shim against musl's headers.
check_libc_portability() {
    local guest_sources=(Sources/SovnetWire Sources/SovnetGuestCore Sources/SovnetFraming Sources/SovnetLink
                         Sources/SovnetGuest Sources/SovnetGuestCommands Sources/sovnet-guest)
    local unguarded
    unguarded=$(find "${guest_sources[@]}" -name '*.swift' -exec awk \
        '/^import Glibc$/ && previous != "#if canImport(Glibc)" { print FILENAME ":" FNR ": " $0 } { previous = $0 }' {} +)
    unguarded+=$(grep -rn --include='*.swift' -e '[^`]Glibc\.' -e 'SOCK_[A-Z]*\.rawValue' "${guest_sources[@]}" \
        | grep -v 'Platform/LibC.swift' || true)
    if [ -n "$unguarded" ]; then
        echo "glibc-only code on the guest side (see SovnetLink/Platform/LibC.swift):" >&2
        echo "$unguarded" >&2
        return 1
    fi
    echo "the guest side's Swift keeps to the C library's common names"
}

# check_release_binary PATH: the release build runs and links no Swift runtime library.
check_release_binary() {
    "$1" --version >/dev/null
    if ldd "$1" | grep -q 'libswift'; then
        echo "$1 links the Swift runtime dynamically: build it with --static-swift-stdlib" >&2
        return 1
    fi
    echo "release build: $1 ($(du -h "$1" | cut -f1)), Swift runtime linked in"
}
