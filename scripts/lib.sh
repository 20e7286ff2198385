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
build_packages=(libpcap-dev pkg-config zlib1g-dev liblzma-dev)
# What the tests use as real peers and references.
test_packages=(tshark tcpdump iproute2 passt dnsmasq-base python3 curl iperf3 iputils-ping util-linux udhcpc isc-dhcp-client dhcpcd-base bind9-dnsutils qemu-system-x86 busybox-static cpio kmod socat slirp4netns openssh-client openssh-server podman)

# check_embedded_wire: SovnetWire, the packet formats, compiles as Embedded
# Swift (no runtime linked at all), the way to a guest program under the
# static runtime's 6 MB floor (docs/guest.md). Key paths, existentials and
# reflection would break it.
check_embedded_wire() {
    local out
    out=$(mktemp -d)
    swiftc -target "$(uname -m)-unknown-linux-gnu" -enable-experimental-feature Embedded -wmo -parse-as-library \
        -suppress-warnings -module-name SovnetWire Sources/SovnetWire/*/*.swift -c -o "$out/SovnetWire.o"
    rm -rf "$out"
    echo "SovnetWire compiles as Embedded Swift"
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
