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

/// The next hop `index`, for tests that name next hops by number.
#[cfg(test)]
pub(crate) fn nh(index: u32) -> NextHopId {
    NextHopId::new(index).expect("a next hop within the LPM's 24 bits")
}
