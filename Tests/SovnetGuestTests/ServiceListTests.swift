import Testing
@testable import SovnetGuestCore

/// `/etc/sovnet/services`: words split as a shell would, without one.
@Suite struct ServiceListTests {
    @Test func linesCommentsAndEnvironment() throws {
        let services = try ServiceList.parse("""
            # the guest's services
            tailscaled --state=/var/lib/tailscale/tailscaled.state

              PGDATA=/var/lib/postgresql/data LANG=C su-exec postgres postgres
            sh -c 'exec python3 -m http.server 8080 >/var/log/http.log 2>&1'
            """)
        #expect(services.map(\.arguments) == [
            ["tailscaled", "--state=/var/lib/tailscale/tailscaled.state"],
            ["su-exec", "postgres", "postgres"],
            ["sh", "-c", "exec python3 -m http.server 8080 >/var/log/http.log 2>&1"],
        ])
        #expect(services[1].environment.map(\.name) == ["PGDATA", "LANG"])
        #expect(services[1].environment.map(\.value) == ["/var/lib/postgresql/data", "C"])
        #expect(services[0].name == "tailscaled")
        #expect(ServiceDefinition(arguments: ["/usr/sbin/sshd", "-D"]).name == "sshd")
    }

    @Test(arguments: [
        (#"a "b c" d"#, ["a", "b c", "d"]),
        (#"a 'b "c" \d'"#, ["a", #"b "c" \d"#]),
        (#"a "x\"y\\z\$w\q""#, ["a", #"x"y\z$w\q"#]),
        (#"a\ b c\\d"#, ["a b", #"c\d"#]),
        (#"'' "" x"#, ["", "", "x"]),
        ("  spaced\tout  ", ["spaced", "out"]),
        ("x=1", ["x=1"]),
    ])
    func wordsSplitAsAShellWould(line: String, words: [String]) throws {
        #expect(try ServiceList.split(line) == words)
    }

    @Test func errorsNameTheLine() throws {
        #expect(throws: ServiceListError(line: 2, reason: "unterminated ' quote")) {
            _ = try ServiceList.parse("ok\nsh -c 'oops\n")
        }
        #expect(throws: ServiceListError(line: 1, reason: "only variables, no program to run")) {
            _ = try ServiceList.parse("A=1 B=2")
        }
        #expect(throws: ServiceListError(line: 1, reason: "a backslash ends the line")) {
            _ = try ServiceList.parse("x \\")
        }
        // A variable's name starts with a letter or _: `1=x` is the program.
        #expect(try ServiceList.parse("1=x y").first?.arguments == ["1=x", "y"])
    }
}
