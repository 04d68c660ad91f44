//! One type per identifier: what a number names is in its type, not in a comment.
//!
//! Each id is a `#[repr(transparent)]` newtype over the integer the tables store, so it costs
//! nothing on the data path: the accessors are `#[inline]` and compile to the bare integer.
//! Ids print as the bare number, both with `Display` and `Debug`, and serialize as it, so API
//! output, logs, traces and metrics read as they did when the ids were plain integers.
//!
//! This is a leaf module: it depends on nothing else in the crate, so any module may use it.

use std::fmt;

/// A next hop: an index into the next-hop table ([`crate::table::NextHops`]), at most
/// [`NextHopId::MAX`]. The LPM stores it in the low 24 bits of its 32-bit entries (the rest hold
/// the flags and the depth), so the bound is part of the LPM's encoding.
#[repr(transparent)]
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct NextHopId(u32);

impl NextHopId {
    /// The largest next hop an LPM entry can hold.
    pub const MAX: u32 = (1 << 24) - 1;

    /// Slot 0 of the table: reserved as the empty next hop, never allocated, so an LPM value of
    /// 0 is never a live next hop.
    pub const EMPTY: NextHopId = NextHopId(0);

    /// The next hop `index`, or `None` above [`NextHopId::MAX`].
    #[inline]
    pub const fn new(index: u32) -> Option<Self> {
        if index <= Self::MAX {
            Some(NextHopId(index))
        } else {
            None
        }
    }

    /// The next hop in the low 24 bits of `bits` (an LPM entry); the other bits are ignored.
    #[inline]
    pub(crate) const fn from_low_bits(bits: u32) -> Self {
        NextHopId(bits & Self::MAX)
    }

    /// The id as the table and the LPM store it.
    #[inline]
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The id as an index into the next-hop table.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NextHopId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for NextHopId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<NextHopId> for u32 {
    #[inline]
    fn from(id: NextHopId) -> u32 {
        id.0
    }
}

/// Declares a 16-bit id: the topology's tables are indexed by it, so it converts to `usize`.
macro_rules! small_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(u16);

        impl $name {
            /// The largest id.
            pub const MAX: $name = $name(u16::MAX);

            #[inline]
            pub const fn new(id: u16) -> Self {
                $name(id)
            }

            /// The id as the tables store it.
            #[inline]
            pub const fn get(self) -> u16 {
                self.0
            }

            /// The id as an index into the topology's tables.
            #[inline]
            pub const fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$name> for u16 {
            #[inline]
            fn from(id: $name) -> u16 {
                id.0
            }
        }

        impl From<$name> for u32 {
            #[inline]
            fn from(id: $name) -> u32 {
                u32::from(id.0)
            }
        }

        impl From<$name> for u64 {
            #[inline]
            fn from(id: $name) -> u64 {
                u64::from(id.0)
            }
        }

        impl From<$name> for usize {
            #[inline]
            fn from(id: $name) -> usize {
                id.index()
            }
        }
    };
}

small_id! {
    /// A port of the router, by its index in the topology's port table. The daemon numbers the
    /// router's ports as DPDK numbers its ports, so this id equals the DPDK port id of the
    /// same port; router-core, pure Rust, never sees DPDK's type, and the workers and the
    /// daemon convert a DPDK port id to it in one place (`lcore_workers::port::router_port`).
    PortId
}

small_id! {
    /// A distributed router (VRF), by its index in the topology.
    RouterId
}

small_id! {
    /// A tenant network, by its index in the topology.
    NetworkId
}

small_id! {
    /// A peer host, by its index in the topology.
    PeerId
}

small_id! {
    /// A router interface (a router's address on a network), by its index in the topology.
    IfaceId
}

small_id! {
    /// A floating IP, by the index of its counters.
    FipId
}

/// The next hop `index`, for tests that name next hops by number.
#[cfg(test)]
pub(crate) fn nh(index: u32) -> NextHopId {
    NextHopId::new(index).expect("a next hop within the LPM's 24 bits")
}
