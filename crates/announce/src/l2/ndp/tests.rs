use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test literal"))
        .collect()
}

const ASKER: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const EDGE: Mac = Mac([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);

/// `ndisc6 2001:db8::20 va` as the Linux kernel put it on the wire (tcpdump -xx).
fn kernel_ns() -> Vec<u8> {
    hex("3333 ff00 0020 5254 0012 3456 86dd 600a
         0552 0020 3aff fe80 0000 0000 0000 5054
         00ff fe12 3456 ff02 0000 0000 0000 0000
         0001 ff00 0020 8700 42ac 0000 0000 2001
         0db8 0000 0000 0000 0000 0000 0020 0101
         5254 0012 3456")
}

/// The Linux kernel's own answer to that solicitation.
fn kernel_na() -> Vec<u8> {
    hex("5254 0012 3456 0200 0000 0001 86dd 6000
         0000 0020 3aff 2001 0db8 0000 0000 0000
         0000 0000 0020 fe80 0000 0000 0000 5054
         00ff fe12 3456 8800 35b3 6000 0000 2001
         0db8 0000 0000 0000 0000 0000 0020 0201
         0200 0000 0001")
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("test literal")
}

#[test]
fn decodes_a_kernel_solicitation() {
    let ns = Solicitation::parse(&kernel_ns()).expect("valid");
    assert_eq!(ns.target, v6("2001:db8::20"));
    assert_eq!(ns.src, v6("fe80::5054:ff:fe12:3456"));
    assert_eq!(ns.dst, solicited_node(v6("2001:db8::20")));
    assert_eq!(ns.source_mac, Some(ASKER));
}

#[test]
fn our_answer_matches_the_kernels_byte_for_byte() {
    let ns = Solicitation::parse(&kernel_ns()).expect("valid");
    let na = ns.answer(EDGE);
    assert!(na.solicited && na.override_);
    let bytes = na.encode();
    assert_eq!(
        bytes,
        kernel_na(),
        "Ethernet, IPv6 header, flags S|O, target option, checksum 0x35b3"
    );
    assert_eq!(Advertisement::parse(&bytes).expect("round trip"), na);
}

#[test]
fn unsolicited_advertisement_goes_to_all_nodes_with_override() {
    let na = Advertisement::unsolicited(EDGE, v6("2001:db8::20"));
    let bytes = na.encode();
    assert_eq!(
        &bytes[0..6],
        &[0x33, 0x33, 0, 0, 0, 1],
        "all-nodes multicast MAC"
    );
    assert_eq!(bytes[14 + 7], 255, "hop limit");
    assert_eq!(&bytes[14 + 24..14 + 40], &ALL_NODES.octets());
    let icmp = &bytes[54..];
    assert_eq!(icmp[0], 136);
    assert_eq!(icmp[4], 0x20, "Override only: not solicited, not a router");
    assert_eq!(
        &icmp[24..32],
        &[2, 1, 2, 0, 0, 0, 0, 1],
        "target link-layer address option"
    );
    assert_eq!(checksum(v6("2001:db8::20"), ALL_NODES, &icmp[..32]), 0);
}

#[test]
fn dad_solicitations_are_answered_to_all_nodes() {
    let mut ns = Solicitation::parse(&kernel_ns()).expect("valid");
    ns.src = Ipv6Addr::UNSPECIFIED;
    ns.source_mac = None;
    let na = ns.answer(EDGE);
    assert_eq!(na.dst, ALL_NODES);
    assert!(
        !na.solicited,
        "RFC 4861 7.2.4: S is clear when answering the unspecified address"
    );
}

#[test]
fn solicitation_round_trips_and_checksums() {
    let ns = Solicitation {
        eth: EthHeader {
            dst: multicast_mac(solicited_node(v6("2001:db8::20"))),
            src: ASKER,
            ethertype: ETHERTYPE_IPV6,
        },
        src: v6("fe80::5054:ff:fe12:3456"),
        dst: solicited_node(v6("2001:db8::20")),
        target: v6("2001:db8::20"),
        source_mac: Some(ASKER),
    };
    let bytes = ns.encode();
    assert_eq!(
        &bytes[54..58],
        &kernel_ns()[54..58],
        "same type, code and checksum as the kernel's"
    );
    assert_eq!(Solicitation::parse(&bytes).expect("round trip"), ns);
}

#[test]
fn solicited_node_group_and_mac() {
    assert_eq!(
        solicited_node(v6("2001:db8::1:2345:6789")),
        v6("ff02::1:ff45:6789")
    );
    assert_eq!(
        multicast_mac(v6("ff02::1:ff45:6789")),
        Mac([0x33, 0x33, 0xff, 0x45, 0x67, 0x89])
    );
}

#[test]
fn corrupt_or_routed_solicitations_are_refused() {
    let mut bad = kernel_ns();
    bad[14 + 40 + 20] ^= 1; // flip a bit of the target
    assert_eq!(Solicitation::parse(&bad), Err(Malformed::Checksum));
    let mut routed = kernel_ns();
    routed[14 + 7] = 64;
    assert!(matches!(
        Solicitation::parse(&routed),
        Err(Malformed::Unsupported {
            what: "NDP hop limit",
            ..
        })
    ));
    assert!(matches!(
        Solicitation::parse(&kernel_ns()[..70]),
        Err(Malformed::Truncated { .. })
    ));
    let mut zero_opt = kernel_ns();
    zero_opt[14 + 40 + 25] = 0;
    let sum = {
        let icmp = &mut zero_opt[54..86];
        icmp[2] = 0;
        icmp[3] = 0;
        checksum(v6("fe80::5054:ff:fe12:3456"), v6("ff02::1:ff00:20"), icmp)
    };
    zero_opt[56..58].copy_from_slice(&sum.to_be_bytes());
    assert!(
        matches!(
            Solicitation::parse(&zero_opt),
            Err(Malformed::Unsupported {
                what: "NDP option length",
                ..
            })
        ),
        "a zero-length option would loop forever"
    );
    assert!(
        Solicitation::parse(&kernel_na()).is_err(),
        "an advertisement is not a solicitation"
    );
}
