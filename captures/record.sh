#!/usr/bin/env bash
# Records the reference captures in this folder from real tools, inside two
# network namespaces joined by a veth pair. Nothing leaves the namespaces:
# dnsmasq answers DHCP and DNS for a made-up zone, a Python web server answers
# HTTP, and the client side runs busybox udhcpc, ISC dhclient, ping, dig and
# curl against them. Needs root; see README.md beside this file. With file
# names as arguments, only those are recorded again.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
source "$here/../scripts/lib.sh"
install_packages dnsmasq-base busybox-static udhcpc isc-dhcp-client bind9-dnsutils iputils-ping curl tcpdump \
    ethtool iproute2 python3
server=svcap-server
client=svcap-client
work=$(mktemp -d)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    ip netns del "$server" 2>/dev/null || true
    ip netns del "$client" 2>/dev/null || true
    rm -rf "/etc/netns/$client" "$work"
}
trap cleanup EXIT

ip netns add "$server"
ip netns add "$client"
# A DHCP client in a namespace must never write the machine's resolv.conf.
mkdir -p "/etc/netns/$client"
: > "/etc/netns/$client/resolv.conf"
ip link add veth-srv netns "$server" type veth peer name veth-cli netns "$client"
for ns in "$server" "$client"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
done
ip -n "$server" link set veth-srv address 5a:94:ef:e4:0c:dd up
ip -n "$client" link set veth-cli address 5a:94:ef:e4:0c:ee up
ip -n "$server" addr add 192.168.127.1/24 dev veth-srv
# Without this the sender's checksums are left for the (virtual) NIC to fill
# and the capture holds partial ones.
ip netns exec "$server" ethtool -K veth-srv tx off >/dev/null
ip netns exec "$client" ethtool -K veth-cli tx off >/dev/null

ip netns exec "$server" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --interface=veth-srv --no-ping --listen-address=192.168.127.1 --pid-file="$work/dnsmasq.pid" \
    --dhcp-range=192.168.127.2,192.168.127.50,255.255.255.0,1h --dhcp-leasefile="$work/leases" \
    --dhcp-option=option:router,192.168.127.1 --dhcp-option=option:dns-server,192.168.127.1 \
    --dhcp-option=option:mtu,1500 --dhcp-option=option:domain-search,example.test,vm.example.test \
    --dhcp-option=option:classless-static-route,10.0.0.0/8,192.168.127.1 \
    --domain=example.test --local=/example.test/ \
    --host-record=gateway.example.test,192.168.127.1 \
    --host-record=db.example.test,192.168.127.10,fd00::10 \
    --cname=www.example.test,gateway.example.test \
    --txt-record=example.test,"v=spf1 -all","second string" \
    --mx-host=example.test,mail.example.test,10 \
    --srv-host=_http._tcp.example.test,gateway.example.test,8080,0,5 &
pids+=($!)
ip netns exec "$server" python3 -m http.server --bind 192.168.127.1 8080 --directory "$here" \
    >/dev/null 2>&1 &
pids+=($!)
sleep 1

# The files to record: those named on the command line, else all.
wanted=("$@")

# Records what happens on the client's interface while "$@" runs.
record() {
    local file=$1
    shift
    if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " =~ " $file " ]]; then return 0; fi
    ip netns exec "$client" tcpdump -i veth-cli -s 0 -U -w "$work/$file" >/dev/null 2>&1 &
    local dump=$!
    pids+=("$dump")
    sleep 1
    local status=0
    timeout 30 "$@" || status=$?
    sleep 1
    kill -INT "$dump"
    timeout 5 tail --pid="$dump" -f /dev/null || kill -KILL "$dump"
    [ "$status" -eq 0 ] || { echo "recording $file failed: $* exited $status" >&2; exit 1; }
    cp "$work/$file" "$here/$file"
}

record dhcp-udhcpc.pcap ip netns exec "$client" busybox udhcpc -i veth-cli -f -q -n -R \
    -s /bin/true -x hostname:sovnet-guest -O search -O mtu -O staticroutes -t 3 -T 1

record dhcp-dhclient.pcap bash -c "
    ip netns exec $client dhclient -1 -v -sf /bin/true -lf $work/dhclient.leases -pf $work/dhclient.pid veth-cli
    ip netns exec $client dhclient -r -v -sf /bin/true -lf $work/dhclient.leases -pf $work/dhclient.pid veth-cli"

ip -n "$client" addr add 192.168.127.2/24 dev veth-cli

record arp-icmp.pcap bash -c "
    ip netns exec $client ping -c 2 -i 0.2 192.168.127.1
    ip netns exec $client ping -c 1 -s 2000 -M dont 192.168.127.1"

record dns.pcap bash -c "
    for query in 'gateway.example.test A' 'db.example.test AAAA' 'www.example.test A' \
                 'example.test TXT' 'example.test MX' '_http._tcp.example.test SRV' \
                 'missing.example.test A'; do
        ip netns exec $client dig @192.168.127.1 +tries=1 +time=2 \$query
    done
    ip netns exec $client dig @192.168.127.1 +tcp +tries=1 +time=2 gateway.example.test A"

record tcp-http.pcap ip netns exec "$client" curl -sS -o /dev/null http://192.168.127.1:8080/README.md

# IPv6 comes up during the recording: MLD reports, duplicate address
# detection and router solicitations, then neighbour discovery, ping,
# HTTP over TCP and a UDP exchange between unique local addresses.
ip netns exec "$server" python3 -m http.server --bind :: 8081 --directory "$here" >/dev/null 2>&1 &
pids+=($!)
ip netns exec "$server" python3 -c "
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(('::', 7))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)" &
pids+=($!)
record ipv6.pcap bash -c "
    for ns in $server $client; do ip netns exec \$ns sysctl -qw net.ipv6.conf.all.disable_ipv6=0; done
    ip -n $server addr add fd00::1/64 dev veth-srv nodad
    ip -n $client addr add fd00::2/64 dev veth-cli nodad
    sleep 2
    ip netns exec $client ping -6 -c 2 -i 0.2 fd00::1
    ip netns exec $client curl -sS -o /dev/null 'http://[fd00::1]:8081/README.md'
    ip netns exec $client python3 -c \"
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(b'sovnet over IPv6', ('fd00::1', 7))
print(s.recvfrom(2048)[0])\""

# DHCPv6 (RFC 8415) between ISC dhclient and dnsmasq: an address (SOLICIT,
# ADVERTISE, REQUEST, REPLY), its RELEASE, then stateless configuration
# (INFORMATION-REQUEST, REPLY) with DNS servers and a search list.
for ns in $server $client; do ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=0; done
ip -n "$server" addr add fd00::1/64 dev veth-srv nodad 2>/dev/null || true
sleep 2
ip netns exec "$server" dnsmasq --keep-in-foreground --port=0 --no-resolv --no-hosts --bind-interfaces \
    --interface=veth-srv --pid-file="$work/dnsmasq6.pid" --dhcp-leasefile="$work/leases6" \
    --dhcp-range=fd00::100,fd00::1ff,64,1h --dhcp-option=option6:dns-server,[fd00::1] \
    --dhcp-option=option6:domain-search,example.test &
pids+=($!)
sleep 1
record dhcpv6.pcap bash -c "
    ip netns exec $client dhclient -6 -1 -v -sf /bin/true -lf $work/dhclient6.leases -pf $work/dhclient6.pid veth-cli
    ip netns exec $client dhclient -6 -r -v -sf /bin/true -lf $work/dhclient6.leases -pf $work/dhclient6.pid veth-cli
    ip netns exec $client dhclient -6 -S -1 -v -sf /bin/true -lf $work/dhclient6s.leases -pf $work/dhclient6s.pid veth-cli"

ls -l "$here"/*.pcap
