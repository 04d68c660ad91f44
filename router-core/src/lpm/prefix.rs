//! IPv4 prefixes: an address and a length, with no host bits set.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The longest IPv4 prefix length.
pub const PREFIX_LEN_MAX: u8 = 32;

/// An IPv4 prefix such as `10.0.0.0/8`: a network address and a length in `0..=32`, with every
/// bit past the length clear. Ordered by address, then length (`10.0.0.0/8 < 10.0.0.0/16 <
/// 10.1.0.0/16`). Parses from and prints as `ADDRESS/LENGTH`, and serialises as that string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    /// The network address, host order.
    bits: u32,
    len: u8,
}

/// Why a prefix was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The length is above 32.
    #[error("prefix length {len} is out of range (0..=32)")]
    LengthOutOfRange {
        /// The rejected length.
        len: u32,
    },
    /// The address has bits set past the prefix length.
    #[error("{prefix} has host bits set (the network is {network})")]
    HostBitsSet {
        /// The rejected input, as `ADDRESS/LENGTH`.
        prefix: String,
        /// The prefix with the host bits cleared, as a hint.
        network: Prefix,
    },
    /// The text has no `/LENGTH`.
    #[error("{input:?} is not a prefix: expected ADDRESS/LENGTH, such as 10.0.0.0/8")]
    MissingLength {
        /// The rejected text.
        input: String,
    },
    /// The part before `/` is not a dotted-quad IPv4 address.
    #[error("{input:?} is not a prefix: {address:?} is not an IPv4 address")]
    InvalidAddress {
        /// The rejected text.
        input: String,
        /// The address part.
        address: String,
    },
    /// The part after `/` is not a decimal number.
    #[error("{input:?} is not a prefix: {length:?} is not a prefix length (0..=32)")]
    InvalidLength {
        /// The rejected text.
        input: String,
        /// The length part.
        length: String,
    },
}

/// The network mask of a prefix length: `len` leading one bits.
#[inline]
pub(crate) const fn mask_of(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

impl Prefix {
    /// The default route, `0.0.0.0/0`.
    pub const DEFAULT: Prefix = Prefix { bits: 0, len: 0 };

    /// The prefix `addr/len`.
    ///
    /// # Errors
    ///
    /// [`PrefixError::LengthOutOfRange`] for `len > 32`, [`PrefixError::HostBitsSet`] when `addr`
    /// has bits set past `len`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Self, PrefixError> {
        Self::from_bits(u32::from(addr), len)
    }

    /// The prefix whose network address is `bits` (host order).
    ///
    /// # Errors
    ///
    /// As [`Prefix::new`].
    pub fn from_bits(bits: u32, len: u8) -> Result<Self, PrefixError> {
        if len > PREFIX_LEN_MAX {
            return Err(PrefixError::LengthOutOfRange { len: len.into() });
        }
        let network = bits & mask_of(len);
        if network != bits {
            return Err(PrefixError::HostBitsSet {
                prefix: format!("{}/{len}", Ipv4Addr::from(bits)),
                network: Prefix { bits: network, len },
            });
        }
        Ok(Prefix { bits, len })
    }

    /// The prefix of length `len` that contains `addr` (host bits cleared).
    ///
    /// # Panics
    ///
    /// If `len > 32`.
    pub fn containing(addr: u32, len: u8) -> Self {
        assert!(len <= PREFIX_LEN_MAX, "prefix length {len} > 32");
        Prefix {
            bits: addr & mask_of(len),
            len,
        }
    }

    /// The network address.
    pub fn addr(self) -> Ipv4Addr {
        Ipv4Addr::from(self.bits)
    }

    /// The network address as a host-order integer.
    pub fn bits(self) -> u32 {
        self.bits
    }

    /// The prefix length, `0..=32`.
    // A length in bits, not the size of a collection: an `is_empty` would mean nothing.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> u8 {
        self.len
    }

    /// Whether this is the default route (length 0), which contains every address.
    pub fn is_default(self) -> bool {
        self.len == 0
    }

    /// The network mask (`255.0.0.0` for a /8) as a host-order integer.
    pub fn mask(self) -> u32 {
        mask_of(self.len)
    }

    /// The first address of the prefix (the network address).
    pub fn first(self) -> u32 {
        self.bits
    }

    /// The last address of the prefix.
    pub fn last(self) -> u32 {
        self.bits | !self.mask()
    }

    /// Whether `addr` (host order) is inside the prefix.
    pub fn contains(self, addr: u32) -> bool {
        addr & self.mask() == self.bits
    }

    /// Whether `other` is inside this prefix (equal or more specific).
    pub fn covers(self, other: Prefix) -> bool {
        other.len >= self.len && self.contains(other.bits)
    }

    /// The prefix one bit shorter that contains this one, or `None` for the default route.
    pub fn parent(self) -> Option<Prefix> {
        let len = self.len.checked_sub(1)?;
        Some(Prefix::containing(self.bits, len))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.bits), self.len)
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let Some((address, length)) = input.split_once('/') else {
            return Err(PrefixError::MissingLength {
                input: input.to_owned(),
            });
        };
        let addr: Ipv4Addr = address.parse().map_err(|_| PrefixError::InvalidAddress {
            input: input.to_owned(),
            address: address.to_owned(),
        })?;
        let invalid_length = || PrefixError::InvalidLength {
            input: input.to_owned(),
            length: length.to_owned(),
        };
        // Digits only: `u32::from_str` would accept a sign; at most two digits keep "/0032" out.
        if length.is_empty() || length.len() > 2 || !length.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid_length());
        }
        let len: u32 = length.parse().map_err(|_| invalid_length())?;
        let len = u8::try_from(len)
            .ok()
            .filter(|&l| l <= PREFIX_LEN_MAX)
            .ok_or(PrefixError::LengthOutOfRange { len })?;
        Prefix::new(addr, len)
    }
}

impl serde::Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PrefixVisitor;

        impl serde::de::Visitor<'_> for PrefixVisitor {
            type Value = Prefix;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an IPv4 prefix such as \"10.0.0.0/8\"")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Prefix, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(PrefixVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "192.168.1.0/24",
            "192.168.1.128/25",
            "1.2.3.4/32",
            "128.0.0.0/1",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
        assert_eq!(p("10.0.0.0/8").bits(), 0x0A00_0000);
        assert_eq!(p("10.0.0.0/8").len(), 8);
        assert_eq!(p("10.0.0.0/8").addr(), Ipv4Addr::new(10, 0, 0, 0));
        assert_eq!(format!("{:?}", p("10.0.0.0/8")), "10.0.0.0/8");
    }

    #[test]
    fn host_bits_are_rejected_with_a_hint() {
        let err = "10.0.0.1/8".parse::<Prefix>().unwrap_err();
        assert_eq!(
            err,
            PrefixError::HostBitsSet {
                prefix: "10.0.0.1/8".into(),
                network: p("10.0.0.0/8")
            }
        );
        assert_eq!(
            err.to_string(),
            "10.0.0.1/8 has host bits set (the network is 10.0.0.0/8)"
        );
        assert!(matches!(
            Prefix::from_bits(1, 0),
            Err(PrefixError::HostBitsSet { .. })
        ));
        assert!(Prefix::from_bits(u32::MAX, 32).is_ok());
    }

    #[test]
    fn length_out_of_range_is_rejected() {
        assert_eq!(
            Prefix::from_bits(0, 33),
            Err(PrefixError::LengthOutOfRange { len: 33 })
        );
        assert_eq!(
            "1.2.3.4/33".parse::<Prefix>(),
            Err(PrefixError::LengthOutOfRange { len: 33 })
        );
        assert_eq!(
            "1.2.3.4/99".parse::<Prefix>(),
            Err(PrefixError::LengthOutOfRange { len: 99 })
        );
    }

    #[test]
    fn malformed_text_gets_a_clear_error() {
        assert!(matches!(
            "10.0.0.0".parse::<Prefix>(),
            Err(PrefixError::MissingLength { .. })
        ));
        assert!(matches!(
            "10.0.0/8".parse::<Prefix>(),
            Err(PrefixError::InvalidAddress { .. })
        ));
        assert!(matches!(
            "010.0.0.0/8".parse::<Prefix>(),
            Err(PrefixError::InvalidAddress { .. })
        ));
        for bad in [
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "10.0.0.0/008",
        ] {
            assert!(
                matches!(
                    bad.parse::<Prefix>(),
                    Err(PrefixError::InvalidLength { .. })
                ),
                "{bad}"
            );
        }
        let msg = "10.0.0.0".parse::<Prefix>().unwrap_err().to_string();
        assert!(msg.contains("ADDRESS/LENGTH"), "{msg}");
    }

    #[test]
    fn contains_and_bounds() {
        let net = p("192.168.1.0/24");
        assert_eq!(net.first(), 0xC0A8_0100);
        assert_eq!(net.last(), 0xC0A8_01FF);
        assert!(net.contains(net.first()));
        assert!(net.contains(net.last()));
        assert!(!net.contains(net.first() - 1));
        assert!(!net.contains(net.last() + 1));
        assert_eq!(net.mask(), 0xFFFF_FF00);
        let all = Prefix::DEFAULT;
        assert!(all.is_default());
        assert!(all.contains(0) && all.contains(u32::MAX));
        assert_eq!(all.last(), u32::MAX);
        let host = p("1.2.3.4/32");
        assert!(host.contains(0x0102_0304));
        assert!(!host.contains(0x0102_0305));
        assert!(p("192.168.0.0/16").covers(net));
        assert!(!net.covers(p("192.168.0.0/16")));
        assert!(net.covers(net));
        assert_eq!(net.parent(), Some(p("192.168.0.0/23")));
        assert_eq!(all.parent(), None);
        assert_eq!(Prefix::containing(0x0A01_0203, 16), p("10.1.0.0/16"));
    }

    #[test]
    fn ordering_is_address_then_length() {
        let mut v = vec![
            p("10.1.0.0/16"),
            p("10.0.0.0/16"),
            p("10.0.0.0/8"),
            p("9.0.0.0/8"),
        ];
        v.sort();
        assert_eq!(
            v,
            vec![
                p("9.0.0.0/8"),
                p("10.0.0.0/8"),
                p("10.0.0.0/16"),
                p("10.1.0.0/16")
            ]
        );
    }

    #[test]
    fn serde_as_string() {
        let net = p("10.0.0.0/8");
        assert_eq!(serde_json::to_string(&net).unwrap(), "\"10.0.0.0/8\"");
        assert_eq!(
            serde_json::from_str::<Prefix>("\"10.0.0.0/8\"").unwrap(),
            net
        );
        let err = serde_json::from_str::<Prefix>("\"10.0.0.1/8\"").unwrap_err();
        assert!(err.to_string().contains("host bits"), "{err}");
        assert!(serde_json::from_str::<Prefix>("8").is_err());
    }
}
