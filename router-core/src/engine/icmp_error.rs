//! The ICMP errors routing originates (RFC 792, RFC 1812 section 4.3.2): no route, no answer
//! from the neighbour, TTL exceeded, fragmentation needed. The error is built in place around
//! the datagram it quotes and sent back on the input port; RFC 1812 section 4.3.2.7 and the
//! rate limits (the source's own budget, then the router's) decide when the datagram is
//! dropped silently instead.

use std::net::Ipv4Addr;

use super::route::Gateway;
use super::trace::{TraceEvent, Tracer};
use super::{Burst, DropReason, PacketBuf, Verdict, ETH_LEN};
use crate::wire::{icmpv4, Icmpv4ErrorRepr, Icmpv4Message, Ipv4Packet};

/// An ICMP error to originate, and the reason counted when it cannot be.
#[derive(Clone, Copy, Debug)]
pub(super) struct IcmpError {
    msg_type: Icmpv4Message,
    code: u8,
    mtu: u16,
    reason: DropReason,
}

impl IcmpError {
    pub(super) const NET_UNREACHABLE: IcmpError = IcmpError {
        msg_type: Icmpv4Message::DstUnreachable,
        code: 0,
        mtu: 0,
        reason: DropReason::NoRoute,
    };
    pub(super) const HOST_UNREACHABLE: IcmpError = IcmpError {
        msg_type: Icmpv4Message::DstUnreachable,
        code: 1,
        mtu: 0,
        reason: DropReason::HostUnreachable,
    };
    pub(super) const TTL_EXCEEDED: IcmpError = IcmpError {
        msg_type: Icmpv4Message::TimeExceeded,
        code: 0,
        mtu: 0,
        reason: DropReason::TtlExceeded,
    };

    /// Fragmentation needed and DF set, with the next-hop MTU (RFC 1191 section 4).
    pub(super) const fn frag_needed(mtu: u16) -> IcmpError {
        IcmpError {
            msg_type: Icmpv4Message::DstUnreachable,
            code: 4,
            mtu,
            reason: DropReason::PacketTooBig,
        }
    }

    /// Whether the per-source limit applies. Fragmentation needed is exempt, as in Linux: a
    /// sender that opens several flows at once must learn each path MTU without waiting a
    /// second per error (the router-wide limit still bounds it).
    fn limited_per_source(&self) -> bool {
        !matches!(self.reason, DropReason::PacketTooBig)
    }
}

impl<T: Tracer> Burst<'_, T> {
    /// Turns the datagram in `pkt` into an ICMP error back to its source, in place (RFC 792,
    /// RFC 1812 section 4.3.2), or drops it with the error's reason when RFC 1812 section
    /// 4.3.2.7 forbids an error about it or a rate limit (its source's, then the router's) is
    /// exceeded.
    pub(super) fn icmp_error(
        &mut self,
        gw: Gateway<'_>,
        pkt: &mut PacketBuf<'_>,
        error: IcmpError,
        i: usize,
    ) -> Verdict {
        let original = Ipv4Packet::new_unchecked(&pkt.frame()[ETH_LEN..]);
        if !icmpv4::icmp_error_allowed(&original) {
            return Verdict::Drop(error.reason);
        }
        // The source's budget first, so that a source over its share takes nothing from the
        // router's, which the other sources need.
        let source = original.src_addr_u32();
        if error.limited_per_source()
            && !self
                .dp
                .icmp_sources
                .allow(gw.iface.router, source, self.now)
        {
            self.counters.icmp_rate_limited_source.inc();
            return Verdict::Drop(error.reason);
        }
        if !gw.router.icmp.allow(self.now) {
            self.counters.icmp_rate_limited.inc();
            return Verdict::Drop(error.reason);
        }
        // RFC 1812 section 4.3.2.4: the source is the address of the interface the error leaves
        // by, which is the one the datagram came in on.
        let repr = Icmpv4ErrorRepr {
            src_mac: gw.iface.mac,
            src_ip: Ipv4Addr::from(gw.iface.ip),
            msg_type: error.msg_type,
            code: error.code,
            next_hop_mtu: error.mtu,
            ident: self.next_ident(),
        };
        if !repr.emit_in_place(pkt) {
            return Verdict::Drop(DropReason::NoHeadroom);
        }
        self.trace(i, || TraceEvent::IcmpError {
            msg_type: error.msg_type.into(),
            code: error.code,
            mtu: error.mtu,
        });
        self.counters.router(gw.iface.router).icmp_errors.inc();
        Verdict::Forward(self.input)
    }
}
