import SeqwallCore
import SeqwallTestSupport
import Testing

@Suite("IP addresses and networks")
struct IPAddressTests {
    // RFC 791 dotted quad; the value is the address in host order.
    @Test func ipv4ParseAndPrint() throws {
        let address = try #require(IPAddress("198.51.100.1"))
        #expect(address.isIPv4)
        #expect(address.ipv4Value == 0xC633_6401)
        #expect(address == IPAddress(ipv4: 0xC633_6401))
        #expect(address.description == "198.51.100.1")
        for text in ["0.0.0.0", "255.255.255.255", "10.0.0.1", "203.0.113.254", "1.2.3.4"] {
            #expect(IPAddress(text)?.description == text)
        }
    }

    // Dotted quads only: four decimal octets 0-255, no leading zeros (no octal ambiguity).
    @Test(arguments: ["256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "1.2.3.", ".1.2.3", "1..2.3",
                      "", "a.b.c.d", "1.2.3.-4", "+1.2.3.4", "1.2.3.4 ", " 1.2.3.4", "1.2.3.0x4", "1000.1.1.1",
                      "١.٢.٣.٤"])
    func ipv4Invalid(text: String) {
        #expect(IPAddress(text) == nil)
    }

    // RFC 4291 2.2 text forms in, RFC 5952 4 canonical text out: lower case, no leading zeros,
    // the longest run of two or more zero groups compressed (the first on a tie), a single zero
    // group never compressed.
    @Test(arguments: [
        ("::", "::"),
        ("::1", "::1"),
        ("1::", "1::"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("2001:db8::0:1", "2001:db8::1"),
        ("fe80::", "fe80::"),
        ("0:0:0:0:0:0:0:0", "::"),
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
        ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
        ("::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"),
        ("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"),
        ("::1.2.3.4", "::102:304"),
        ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
        ("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"),
    ])
    func ipv6ParseAndPrint(text: String, canonical: String) throws {
        let address = try #require(IPAddress(text))
        #expect(!address.isIPv4)
        #expect(address.description == canonical)
        // The canonical form reads back to the same address.
        #expect(IPAddress(canonical) == address)
    }

    // RFC 4291 2.2: eight 16-bit groups, most significant first (network order).
    @Test func ipv6Values() throws {
        let address = try #require(IPAddress("2001:db8:1:2:3:4:5:6"))
        #expect(address.high == 0x2001_0DB8_0001_0002)
        #expect(address.low == 0x0003_0004_0005_0006)
        #expect(IPAddress("::1") == IPAddress(high: 0, low: 1))
    }

    // RFC 4291 2.5.5.2: an IPv4-mapped address is the IPv4 address; seqwall keeps IPv4 in that
    // form, so both texts give one value, printed as a dotted quad.
    @Test func ipv4Mapped() throws {
        let mapped = try #require(IPAddress("::ffff:1.2.3.4"))
        #expect(mapped == IPAddress("1.2.3.4"))
        #expect(mapped.isIPv4)
        #expect(mapped.description == "1.2.3.4")
        #expect(IPAddress("::ffff:102:304") == IPAddress("1.2.3.4"))
    }

    // RFC 4291 2.2: at most one "::", which stands for at least one group; eight groups
    // otherwise; 1-4 hex digits a group; an embedded IPv4 address only at the end; no lone
    // leading or trailing colon; no zone ids, signs or spaces.
    @Test(arguments: [":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8::",
                      "::1:2:3:4:5:6:7:8", "12345::", "g::", "::1.2.3", "::256.1.1.1", "1.2.3.4::",
                      "::1.2.3.4:5", "1:2:3:4:5:6:7:1.2.3.4", ":1:2:3:4:5:6:7", "1:2:3:4:5:6:7:",
                      ":1::2", "1::2:", ":1:2", "1:2:", ":", "::%eth0", "fe80::1%eth0", "+1::", "::-0",
                      "::+f", " ::1", "::1 ", "1:::2", "::ffff:01.2.3.4"])
    func ipv6Invalid(text: String) {
        #expect(IPAddress(text) == nil)
    }

    // Ordering is by the 128-bit value; IPv4 (::ffff:0:0/96) sorts among IPv6 by that value.
    @Test func ordering() throws {
        let a = try #require(IPAddress("::1")), b = try #require(IPAddress("1.2.3.4"))
        let c = try #require(IPAddress("2001:db8::")), d = try #require(IPAddress("2001:db8::1"))
        #expect(a < b && b < c && c < d)
        #expect(!(d < c))
    }

    // CIDR (RFC 4632) masking: bits after the prefix cleared; an IPv4 prefix counts the IPv4
    // bits, not the mapped form's.
    @Test func masking() throws {
        let v4 = try #require(IPAddress("203.0.113.77"))
        #expect(v4.masked(prefixLength: 24).description == "203.0.113.0")
        #expect(v4.masked(prefixLength: 25).description == "203.0.113.0")
        #expect(v4.masked(prefixLength: 26).description == "203.0.113.64")
        #expect(v4.masked(prefixLength: 32) == v4)
        #expect(v4.masked(prefixLength: 0).description == "0.0.0.0")
        #expect(v4.masked(prefixLength: 0).isIPv4)
        #expect(v4.masked(prefixLength: 1).description == "128.0.0.0")

        let v6 = try #require(IPAddress("2001:db8:abcd:1234:5678:9abc:def0:1234"))
        #expect(v6.masked(prefixLength: 64).description == "2001:db8:abcd:1234::")
        #expect(v6.masked(prefixLength: 48).description == "2001:db8:abcd::")
        #expect(v6.masked(prefixLength: 65).description == "2001:db8:abcd:1234::")
        #expect(v6.masked(prefixLength: 68).description == "2001:db8:abcd:1234:5000::")
        #expect(v6.masked(prefixLength: 127).description == "2001:db8:abcd:1234:5678:9abc:def0:1234")
        #expect(IPAddress("::3")?.masked(prefixLength: 127).description == "::2")
        #expect(v6.masked(prefixLength: 128) == v6)
        #expect(v6.masked(prefixLength: 0).description == "::")
        #expect(v6.masked(prefixLength: 1).description == "::")
        #expect(IPAddress("ffff::")?.masked(prefixLength: 1).description == "8000::")
    }

    // CIDR containment, per family: an IPv4 network never contains an IPv6 address and the
    // other way round, even 0.0.0.0/0 and ::/0.
    @Test func networkContains() throws {
        let inside = IPNetwork(address: ip("203.0.113.0"), prefixLength: 24)
        #expect(inside.contains(ip("203.0.113.0")))
        #expect(inside.contains(ip("203.0.113.255")))
        #expect(!inside.contains(ip("203.0.114.0")))
        #expect(!inside.contains(ip("203.0.112.255")))
        // Same low 32 bits, other family.
        #expect(!inside.contains(ip("2001:db8::cb00:714d")))
        #expect(!inside.contains(ip("::cb00:714d")))

        let host = IPNetwork(address: ip("198.51.100.66"), prefixLength: 32)
        #expect(host.contains(ip("198.51.100.66")))
        #expect(!host.contains(ip("198.51.100.67")))

        let allV4 = IPNetwork(address: ip("0.0.0.0"), prefixLength: 0)
        let allV6 = IPNetwork(address: ip("::"), prefixLength: 0)
        #expect(allV4.contains(ip("1.2.3.4")))
        #expect(allV4.contains(ip("255.255.255.255")))
        #expect(!allV4.contains(ip("2001:db8::1")))
        #expect(!allV4.contains(ip("::")))
        #expect(allV6.contains(ip("2001:db8::1")))
        #expect(allV6.contains(ip("::")))
        #expect(!allV6.contains(ip("1.2.3.4")))

        let six = IPNetwork(address: ip("2001:db8:2::"), prefixLength: 64)
        #expect(six.contains(ip("2001:db8:2::10")))
        #expect(six.contains(ip("2001:db8:2:0:ffff:ffff:ffff:ffff")))
        #expect(!six.contains(ip("2001:db8:2:1::")))
        #expect(!six.contains(ip("2001:db8:1::10")))

        let odd = IPNetwork(address: ip("2001:db8::"), prefixLength: 33)
        #expect(odd.contains(ip("2001:db8:7fff::1")))
        #expect(!odd.contains(ip("2001:db8:8000::1")))
    }

    // The network is stored masked, and printed as address/prefix (a host without /32, /128).
    @Test func networkStoredMasked() {
        let network = IPNetwork(address: ip("203.0.113.77"), prefixLength: 24)
        #expect(network.address == ip("203.0.113.0"))
        #expect(network.description == "203.0.113.0/24")
        #expect(network == IPNetwork(address: ip("203.0.113.1"), prefixLength: 24))
        #expect(IPNetwork(address: ip("2001:db8:2::99"), prefixLength: 64).description == "2001:db8:2::/64")
        #expect(IPNetwork(address: ip("198.51.100.66"), prefixLength: 32).description == "198.51.100.66")
        #expect(IPNetwork(address: ip("2001:db8::1"), prefixLength: 128).description == "2001:db8::1")
        #expect(IPNetwork(address: ip("1.2.3.4"), prefixLength: 0).description == "0.0.0.0/0")
    }
}
