//! Named reasons for every packet the router does not forward: drops and punts.
//!
//! Each reason has a stable counter index (its discriminant), a snake_case name used in stats,
//! metrics and traces, and a sentence for operators.

macro_rules! reasons {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[doc = $doc:literal])* $variant:ident = $id:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum $name {
            $( $(#[doc = $doc])* $variant = $id, )+
        }

        impl $name {
            /// Every reason, in counter-index order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Number of reasons (size of a counter array).
            pub const COUNT: usize = Self::ALL.len();

            /// The counter index.
            #[inline]
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The reason with this counter index.
            pub fn from_index(index: usize) -> Option<Self> {
                Self::ALL.get(index).copied()
            }

            /// The snake_case name used in stats, metrics and traces.
            pub fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => reasons!(@snake $variant), )+
                }
            }

            /// What the reason means, for operators.
            pub fn description(self) -> &'static str {
                match self {
                    $( $name::$variant => concat!($($doc),+).trim_ascii(), )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
    (@snake $variant:ident) => {{
        const NAME: &str = stringify!($variant);
        const LEN: usize = crate::reason::snake_len(NAME);
        const BYTES: [u8; LEN] = crate::reason::snake::<LEN>(NAME);
        match std::str::from_utf8(&BYTES) {
            Ok(s) => s,
            Err(_) => NAME,
        }
    }};
}

/// Length of the snake_case form of a CamelCase identifier.
pub(crate) const fn snake_len(name: &str) -> usize {
    let b = name.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        if i > 0 && b[i].is_ascii_uppercase() {
            n += 1;
        }
        n += 1;
        i += 1;
    }
    n
}

/// The snake_case form of a CamelCase identifier, at compile time.
pub(crate) const fn snake<const N: usize>(name: &str) -> [u8; N] {
    let b = name.as_bytes();
    let mut out = [0u8; N];
    let mut j = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_uppercase() {
            if i > 0 {
                out[j] = b'_';
                j += 1;
            }
            out[j] = b[i].to_ascii_lowercase();
        } else {
            out[j] = b[i];
        }
        j += 1;
        i += 1;
    }
    out
}

reasons! {
    /// Why a packet was dropped. One counter per reason, per worker.
    pub enum DropReason {
        /// The frame is shorter than an Ethernet header.
        FrameTruncated = 0,
        /// The frame spans several buffers (multi-segment mbuf); the router handles contiguous frames only.
        MultiSegment = 1,
        /// A VLAN-tagged frame on a port that carries untagged traffic.
        VlanTagged = 2,
        /// An Ethernet payload type the router does not handle (only IPv4 and ARP).
        UnsupportedEthertype = 3,
        /// The frame arrived on a port that is attached to no network.
        PortNotAttached = 4,
        /// The IPv4 header is shorter than 20 bytes or than its IHL (RFC 1812 section 5.2.2).
        Ipv4Truncated = 5,
        /// The IPv4 version field is not 4 (RFC 1812 section 5.2.2).
        Ipv4BadVersion = 6,
        /// The IPv4 IHL is below 5 (RFC 1812 section 5.2.2).
        Ipv4BadHeaderLength = 7,
        /// The IPv4 header checksum is wrong (RFC 1812 section 5.2.2).
        Ipv4BadChecksum = 8,
        /// The IPv4 total length is below the header length or beyond the frame (RFC 1812 section 5.2.2).
        Ipv4BadTotalLength = 9,
        /// The source address is not a unicast host address (RFC 1812 section 5.3.7).
        MartianSource = 10,
        /// The destination address cannot be forwarded: 0/8, loopback or class E (RFC 1812 section 5.3.7).
        MartianDestination = 11,
        /// A multicast destination: the router does not route multicast.
        Multicast = 12,
        /// A broadcast destination (limited or directed broadcast, RFC 1812 section 5.3.5).
        Broadcast = 13,
        /// TTL expired in transit and no ICMP time exceeded was sent (rate limit or RFC 1812 section 4.3.2.7).
        TtlExceeded = 14,
        /// No route to the destination and no ICMP unreachable was sent.
        NoRoute = 15,
        /// The neighbour did not answer ARP and no ICMP host unreachable was sent.
        HostUnreachable = 16,
        /// Larger than the egress MTU with DF set, and no ICMP fragmentation needed was sent.
        PacketTooBig = 17,
        /// Larger than the egress MTU without DF, and not fragmented: the MTU leaves no room for 8 data bytes after the header, or more than 64 fragments would be needed.
        FragmentationUnsupported = 18,
        /// The route's next hop is a blackhole.
        Blackhole = 19,
        /// The next hop was deleted while the packet was in flight.
        NoNextHop = 20,
        /// No headroom in the buffer to add the VXLAN encapsulation.
        NoHeadroom = 21,
        /// The destination is on a peer host but no fabric port is configured.
        NoFabric = 22,
        /// A fabric frame not addressed to this host's fabric MAC or VTEP.
        FabricNotForUs = 23,
        /// A fabric packet to our VTEP that is not VXLAN (UDP 4789) nor ICMP.
        FabricNotVxlan = 24,
        /// An outer packet from the fabric that is a fragment: VTEPs never fragment.
        FabricFragment = 25,
        /// A VXLAN packet from a VTEP that is no known peer host.
        UnknownVtep = 26,
        /// A VXLAN header without the I flag, or truncated (RFC 7348 section 5).
        VxlanBadHeader = 27,
        /// A VXLAN packet whose VNI is no network of this host.
        UnknownVni = 28,
        /// An inner source MAC in the DVR MAC range that belongs to no peer host.
        UnknownDvrMac = 29,
        /// An inner source MAC that is a peer's DVR MAC, sent from another peer's VTEP.
        DvrMacMismatch = 30,
        /// A frame from a local instance with a source MAC in the DVR MAC range.
        SpoofedDvrMac = 31,
        /// A unicast frame whose destination MAC is not known on this host.
        UnknownL2Destination = 32,
        /// A bridged frame whose destination is behind the port it came from.
        L2SamePort = 33,
        /// A network with no local port to deliver to.
        NoLocalPort = 34,
        /// A fabric frame for a network that has no router interface here.
        NoInterface = 35,
        /// The punt channel to the control thread was full.
        PuntQueueFull = 36,
        /// The TX queue did not take the packet (port congested or down).
        TxFull = 37,
        /// The control thread held too many packets for one unresolved neighbour.
        HoldQueueFull = 38,
        /// A punted packet the control thread does not answer (e.g. ARP not for us, UDP to the router).
        NotForRouter = 39,
        /// A malformed ARP packet (RFC 826), or not Ethernet/IPv4.
        ArpMalformed = 40,
        /// An ICMP message to the router that is malformed or not an echo request.
        IcmpIgnored = 41,
        /// No buffer was free to build a packet (flood copy, ARP request, fragment).
        NoBuffer = 42,
        /// A punted packet whose router or network was deleted meanwhile.
        Stale = 43,
        /// A broadcast or unknown-unicast frame with nowhere to flood to.
        NoFloodTarget = 44,
        /// The verdict named a port this worker has no TX queue for.
        NoTxQueue = 45,
        /// A received buffer shared with another packet (indirect or referenced twice): it cannot be rewritten in place.
        SharedBuffer = 46,
        /// A datagram to fragment whose options are malformed (RFC 791 section 3.1): which to copy into every fragment cannot be told.
        Ipv4BadOptions = 47,
        /// A datagram to fragment after the control thread had built its budget of fragments for this turn of its loop.
        FragmentBudgetSpent = 48,
        /// A frame on the external port addressed to another host's MAC (not this host's external MAC, not broadcast).
        ExternalNotForUs = 49,
        /// An IPv4 packet on the external port to an address that is neither this host's external address nor a floating IP of an instance on this host.
        NoFloatingIp = 50,
        /// An address on the external subnet that would need one more external neighbour than the table holds.
        ExternalNeighborLimit = 51,
    }
}

reasons! {
    /// Why a packet was handed to the control thread.
    pub enum PuntReason {
        /// An ARP request or reply (gateway ARP, ARP suppression, neighbour resolution).
        Arp = 0,
        /// A packet for one of the router's own addresses (gateway IPs, VTEP).
        LocalDelivery = 1,
        /// The neighbour of the next hop is not resolved yet.
        NeighborMiss = 2,
        /// The underlay neighbour (the peer host's VTEP) is not resolved yet.
        UnderlayMiss = 3,
        /// Broadcast or unknown unicast to replicate to the network's ports and hosts.
        Flood = 4,
        /// Larger than the egress MTU without DF: to split into fragments that fit (RFC 1812 section 5.2.6).
        Fragment = 5,
        /// The next hop on the external network (the external gateway or an address on the external subnet) is not resolved yet.
        ExternalMiss = 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case_and_unique() {
        assert_eq!(DropReason::Ipv4BadChecksum.name(), "ipv4_bad_checksum");
        assert_eq!(DropReason::FrameTruncated.name(), "frame_truncated");
        assert_eq!(PuntReason::NeighborMiss.name(), "neighbor_miss");
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn indexes_are_dense_and_round_trip() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(DropReason::from_index(i), Some(*r));
            assert!(!r.description().is_empty());
        }
        assert_eq!(DropReason::from_index(DropReason::COUNT), None);
        assert_eq!(PuntReason::ALL.len(), PuntReason::COUNT);
    }
}
