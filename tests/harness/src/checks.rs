//! What the end-to-end tests check in captures, shared so that each test file states its
//! expectations and not the loops that verify them: the ICMP echoes of one flow, how a routed
//! packet arrives (the router's MAC, one TTL less, a correct checksum), how a gateway answers
//! and how it reports an error.

use std::net::Ipv4Addr;
use std::time::Duration;

use router_core::wire::{Icmpv4Message, Icmpv4Packet};

use crate::dvr::{HostDef, InstanceDef};
use crate::dvrd::DvrdExit;
use crate::frames::{ethernet_of, icmp_of, ipv4_of, is_echo, Mac};
use crate::pcap::PcapRecord;
use crate::tools::Capture;

/// Linux's default TTL, what the instances send with.
pub const TTL_SENT: u8 = 64;
/// What is left of [`TTL_SENT`] after one router (DVR routes once, on the source host).
pub const TTL_ROUTED: u8 = TTL_SENT - 1;

/// One direction of a ping: echo requests (or replies) from `src` to `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo {
    pub reply: bool,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

impl Echo {
    /// The echo requests from `src` to `dst`.
    pub fn request(src: Ipv4Addr, dst: Ipv4Addr) -> Echo {
        Echo {
            reply: false,
            src,
            dst,
        }
    }

    /// The echo replies from `src` to `dst`.
    pub fn reply(src: Ipv4Addr, dst: Ipv4Addr) -> Echo {
        Echo {
            reply: true,
            src,
            dst,
        }
    }

    /// Is `frame` one of these echoes?
    pub fn matches(&self, frame: &[u8]) -> bool {
        is_echo(frame, self.reply, self.src, self.dst)
    }
}

/// The frames of a capture that are the echoes `echo`.
pub fn echoes(frames: &[PcapRecord], echo: Echo) -> Vec<Vec<u8>> {
    frames
        .iter()
        .filter(|r| echo.matches(&r.data))
        .map(|r| r.data.clone())
        .collect()
}

/// Ethernet source, destination and IPv4 TTL of a frame.
pub fn macs_and_ttl(frame: &[u8]) -> (Mac, Mac, u8) {
    let eth = ethernet_of(frame).expect("an Ethernet frame");
    let ip = ipv4_of(frame).expect("an IPv4 frame");
    (eth.src_addr(), eth.dst_addr(), ip.ttl())
}

/// The echoes `echo` in a capture, checked: exactly `count` of them, each from MAC `from` to
/// MAC `to` with a correct IPv4 header checksum. Returns them for further checks.
pub fn assert_echoes(
    frames: &[PcapRecord],
    echo: Echo,
    count: usize,
    (from, to): (Mac, Mac),
    what: &str,
) -> Vec<Vec<u8>> {
    let seen = echoes(frames, echo);
    assert_eq!(seen.len(), count, "{what}\n{}", Capture::dump(frames));
    for f in &seen {
        let (src, dst, _) = macs_and_ttl(f);
        assert_eq!((src, dst), (from, to), "{what}");
        assert!(ipv4_of(f).unwrap().verify_checksum(), "{what}: checksum");
    }
    seen
}

/// [`assert_echoes`] for packets that crossed one router: each also arrives with TTL 63 (its
/// checksum updated after the decrement).
pub fn assert_routed_echoes(
    frames: &[PcapRecord],
    echo: Echo,
    count: usize,
    macs: (Mac, Mac),
    what: &str,
) {
    for f in assert_echoes(frames, echo, count, macs, what) {
        assert_eq!(macs_and_ttl(&f).2, TTL_ROUTED, "{what}: routed once");
    }
}

/// The echo requests from instance `from` to instance `to` in a capture at `to`, and the
/// replies in a capture at `from`: `count` each way, each routed once and delivered from the
/// gateway MAC of the receiver's network (DVR routes on the sender's host, whichever it is).
pub fn assert_routed_round_trip(
    (at_from, at_to): (Vec<PcapRecord>, Vec<PcapRecord>),
    from: &InstanceDef,
    to: &InstanceDef,
    count: usize,
) {
    for (frames, echo, receiver) in [
        (at_to, Echo::request(from.ip, to.ip), to),
        (at_from, Echo::reply(to.ip, from.ip), from),
    ] {
        let what = format!(
            "{} at {}: from {}'s gateway MAC, routed once",
            if echo.reply { "replies" } else { "requests" },
            receiver.name,
            receiver.network.label
        );
        let macs = (receiver.network.gateway_mac(), receiver.mac());
        assert_routed_echoes(&frames, echo, count, macs, &what);
    }
}

/// A gateway's answers to an instance's ping in a capture (`gateway` to `instance`, each an
/// address and a MAC): exactly `count`, each checked by [`assert_icmp_from_gateway`].
pub fn assert_gateway_replies(
    frames: &[PcapRecord],
    gateway: (Ipv4Addr, Mac),
    instance: (Ipv4Addr, Mac),
    count: usize,
    what: &str,
) {
    let seen = echoes(frames, Echo::reply(gateway.0, instance.0));
    assert_eq!(seen.len(), count, "{what}\n{}", Capture::dump(frames));
    for f in &seen {
        assert_icmp_from_gateway(f, gateway, instance);
    }
}

/// Waits for an ICMP `message` in `capture`; panics, with what was captured, when none comes
/// within `timeout`.
pub fn wait_for_icmp(capture: &Capture, message: Icmpv4Message, timeout: Duration) -> PcapRecord {
    let found = capture.wait_for(timeout, |f| {
        icmp_of(f).is_some_and(|i| i.msg_type() == message)
    });
    found.unwrap_or_else(|| {
        panic!(
            "no ICMP {message:?} in {}:\n{}",
            capture.path().display(),
            Capture::dump(&capture.frames())
        )
    })
}

/// The ICMP message of `frame`, checked as a gateway sends one to an instance (an answer or an
/// error): from the gateway's MAC and address to the instance's, with correct IPv4 and ICMP
/// checksums. Returns it for the caller's checks (type, code, quote).
pub fn assert_icmp_from_gateway(
    frame: &[u8],
    (gateway, gateway_mac): (Ipv4Addr, Mac),
    (instance, instance_mac): (Ipv4Addr, Mac),
) -> Icmpv4Packet<&[u8]> {
    let (eth, ip, icmp) = (
        ethernet_of(frame).expect("an Ethernet frame"),
        ipv4_of(frame).expect("an IPv4 packet"),
        icmp_of(frame).expect("an ICMP message"),
    );
    assert_eq!(
        (eth.src_addr(), eth.dst_addr()),
        (gateway_mac, instance_mac),
        "MACs of an ICMP message from the gateway"
    );
    assert_eq!(
        (ip.src_addr(), ip.dst_addr()),
        (gateway, instance),
        "addresses of an ICMP message from the gateway"
    );
    assert!(
        ip.verify_checksum() && icmp.verify_checksum(),
        "bad checksum in an ICMP message from the gateway"
    );
    icmp
}

/// How the routers of `hosts` ended (`exits`, in the same order), checked: each exited 0 with
/// every packet buffer back in its pool.
pub fn assert_exits_clean(hosts: &[&HostDef], exits: &[DvrdExit]) {
    for (h, e) in hosts.iter().zip(exits) {
        let summary = e.assert_clean();
        assert_eq!(
            summary.mempool_in_use(),
            Some(0),
            "{}: packet buffers leaked\n{summary}",
            h.name
        );
    }
}
