//! Addresses as the model spells them: MAC addresses and interface addresses (gateway and subnet).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::lpm::Prefix;
use crate::wire::EthernetAddress;

/// Debug as Display, and serde as the Display string parsed back with `FromStr`: the model's
/// addresses look the same in logs, configuration files and API replies.
macro_rules! spelled_as_text {
    ($($t:ty),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

spelled_as_text!(MacAddr, InterfaceAddr);

/// A MAC address as the model and its users spell it ("fa:16:3e:00:00:01").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub EthernetAddress);

impl MacAddr {
    /// The address as the low 48 bits of a word (network byte order, first octet highest).
    pub fn to_u64(self) -> u64 {
        self.0.to_u64()
    }

    /// True for a unicast address that is not all zeroes: the only kind an interface,
    /// instance port or host may have.
    pub fn is_assignable(self) -> bool {
        self.0.is_unicast() && self.0.to_u64() != 0
    }
}

impl From<EthernetAddress> for MacAddr {
    fn from(mac: EthernetAddress) -> Self {
        MacAddr(mac)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EthernetAddress::from_str(s).map(MacAddr).map_err(|_| {
            format!("`{s}` is not a MAC address (expected six hex octets like fa:16:3e:00:00:01)")
        })
    }
}

/// An interface address: the gateway IP and the length of its subnet ("10.0.1.1/24").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InterfaceAddr {
    pub ip: Ipv4Addr,
    pub len: u8,
}

impl InterfaceAddr {
    /// The connected subnet.
    pub fn subnet(self) -> Prefix {
        Prefix::containing(u32::from(self.ip), self.len)
    }

    /// The directed broadcast address of the subnet.
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.ip) | !Prefix::containing(0, self.len).mask())
    }
}

impl fmt::Display for InterfaceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.len)
    }
}

impl FromStr for InterfaceAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "expected a gateway address with its subnet length, like 10.0.1.1/24";
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: {expected}"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("`{s}`: {expected}"))?;
        let len: u8 = len.parse().map_err(|_| format!("`{s}`: {expected}"))?;
        if !(1..=30).contains(&len) {
            return Err(format!("`{s}`: subnet length must be 1..=30"));
        }
        let addr = InterfaceAddr { ip, len };
        let host = u32::from(ip) & !Prefix::containing(0, len).mask();
        if host == 0 || ip == addr.broadcast() {
            return Err(format!(
                "`{s}`: the gateway address must be a host address of its subnet, not the network or broadcast address"
            ));
        }
        if !is_unicast_host(ip) {
            return Err(format!(
                "`{s}`: the gateway address must be a unicast address"
            ));
        }
        Ok(addr)
    }
}

/// True for an address a host may have: not unspecified, loopback, multicast, class E or
/// limited broadcast (RFC 1812 section 5.3.7 martians).
pub fn is_unicast_host(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_broadcast()
        || o[0] >= 240
        || o[0] == 0)
}
