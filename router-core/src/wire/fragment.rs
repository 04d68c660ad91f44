//! IPv4 fragmentation (RFC 791 section 3.2, RFC 1812 section 5.2.6): how a datagram larger
//! than the next hop's MTU splits into fragments that fit it.
//!
//! A [`Fragmenter`] is the plan for one datagram, made without copying anything: how many
//! fragments, which bytes of the payload each carries, and the header each gets. Every fragment
//! but the last carries a multiple of 8 data bytes (the offset field counts 8-byte units) and
//! has more-fragments set; the last keeps the datagram's own more-fragments flag, so that a
//! fragment fragmented again (a middle piece, say) stays a middle piece. Offsets start from the
//! datagram's own offset. The first fragment carries the whole header, options included; the
//! others only the options whose copy flag is set (RFC 791 section 3.1), padded with
//! end-of-options to a multiple of 4 bytes. Every header's checksum is computed afresh.
//! Nothing else changes: identification, TTL, protocol, addresses and DSCP are the datagram's.
//!
//! [`Fragmenter::emit`] writes one fragment's datagram into a buffer of the caller's: the
//! control thread writes each straight into a packet buffer of its own. The plan refuses a
//! datagram with don't-fragment set (that one earns an ICMP fragmentation needed instead), one
//! that fits already, an MTU that leaves no room for 8 data bytes after the header (RFC 791
//! asks every link for 68 bytes), more than [`FRAGMENTS_MAX`] fragments, an offset past the
//! largest one the field holds, and options it cannot walk.

use super::ipv4::{self, field, Ipv4Packet};

/// Most fragments one datagram is split into. A router port's MTU is at least 576 bytes, so a
/// 9000-byte jumbo frame takes 20: the bound is only reached with MTUs no port has.
pub const FRAGMENTS_MAX: usize = 64;

/// The smallest MTU every IPv4 link must carry without fragmenting further (RFC 791 section
/// 3.2): a 60-byte header and 8 data bytes.
pub const MTU_MIN: usize = 68;

/// The option that ends the option list (RFC 791 section 3.1), also its padding.
const OPTION_END: u8 = 0;
/// The one-byte no-operation option.
const OPTION_NOP: u8 = 1;
/// The copied flag of an option type: the option goes into every fragment.
const OPTION_COPIED: u8 = 0x80;
/// The largest offset the 13-bit field holds, in bytes.
const OFFSET_MAX: usize = (ipv4::FRAG_OFFSET_MASK as usize) << 3;

/// Why a datagram is not split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum FragmentError {
    /// The datagram fits the MTU: nothing to split.
    #[error("the datagram fits the MTU")]
    Fits,
    /// Don't-fragment is set: the sender asked for fragmentation needed instead.
    #[error("don't fragment is set")]
    DontFragment,
    /// The MTU leaves no room for 8 data bytes after the header.
    #[error("the MTU leaves no room for 8 data bytes after the header")]
    MtuTooSmall,
    /// More than [`FRAGMENTS_MAX`] fragments would be needed.
    #[error("more than {FRAGMENTS_MAX} fragments would be needed")]
    TooManyFragments,
    /// A fragment would start past the largest offset the field holds.
    #[error("a fragment would start past the largest fragment offset")]
    OffsetOverflow,
    /// An option's length runs past the header or is below 2 (RFC 791 section 3.1).
    #[error("malformed options: an option's length is below 2 or runs past the header")]
    BadOptions,
}

/// One fragment of a [`Fragmenter`]'s plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Where its data starts in the datagram's payload.
    pub start: usize,
    /// How many data bytes it carries.
    pub data_len: usize,
    /// Its header's length, options included.
    pub header_len: usize,
    /// Its fragment offset, in bytes (a multiple of 8).
    pub offset: u16,
    /// Its more-fragments flag.
    pub more: bool,
}

impl Fragment {
    /// Its datagram's total length.
    pub fn total_len(&self) -> usize {
        self.header_len + self.data_len
    }
}

/// The plan for splitting one datagram into fragments that fit an MTU.
#[derive(Debug, Clone)]
pub struct Fragmenter<'a> {
    /// The datagram, header included, to its total length.
    datagram: &'a [u8],
    header_len: usize,
    /// The options every fragment after the first carries, padded to a multiple of 4.
    copied: [u8; ipv4::MAX_HEADER_LEN - ipv4::HEADER_LEN],
    copied_len: usize,
    /// Data bytes of the first fragment and of each later one but the last.
    first_data_len: usize,
    later_data_len: usize,
    count: usize,
    /// The datagram's own offset (bytes) and more-fragments flag.
    offset: usize,
    more: bool,
}

impl<'a> Fragmenter<'a> {
    /// Plans the fragments of `packet` (checked with `check_len`) for a next hop of `mtu`
    /// bytes.
    pub fn new(packet: Ipv4Packet<&'a [u8]>, mtu: usize) -> Result<Self, FragmentError> {
        let total_len = usize::from(packet.total_len());
        if total_len <= mtu {
            return Err(FragmentError::Fits);
        }
        if packet.dont_frag() {
            return Err(FragmentError::DontFragment);
        }
        let header_len = packet.header_len();
        let (copied, copied_len) = copied_options(packet.options())?;
        // Both are multiples of 8, and the later one is never the smaller.
        let first_data_len = mtu.saturating_sub(header_len) & !7;
        let later_data_len = mtu.saturating_sub(ipv4::HEADER_LEN + copied_len) & !7;
        if first_data_len == 0 {
            return Err(FragmentError::MtuTooSmall);
        }
        // The datagram does not fit, so data remain after the first fragment.
        let rest = total_len - header_len - first_data_len;
        let count = 1 + rest.div_ceil(later_data_len);
        if count > FRAGMENTS_MAX {
            return Err(FragmentError::TooManyFragments);
        }
        let offset = usize::from(packet.frag_offset());
        let last_start = first_data_len + (count - 2) * later_data_len;
        if offset + last_start > OFFSET_MAX {
            return Err(FragmentError::OffsetOverflow);
        }
        Ok(Fragmenter {
            datagram: &packet.into_inner()[..total_len],
            header_len,
            copied,
            copied_len,
            first_data_len,
            later_data_len,
            count,
            offset,
            more: packet.more_frags(),
        })
    }

    /// How many fragments the datagram becomes (at least 2).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Fragment `k` of [`count`](Self::count).
    ///
    /// # Panics
    /// If `k` is not below the count.
    pub fn fragment(&self, k: usize) -> Fragment {
        assert!(k < self.count, "fragment {k} of {}", self.count);
        let payload_len = self.datagram.len() - self.header_len;
        let (start, len, header_len) = if k == 0 {
            (0, self.first_data_len, self.header_len)
        } else {
            let start = self.first_data_len + (k - 1) * self.later_data_len;
            let header_len = ipv4::HEADER_LEN + self.copied_len;
            (start, self.later_data_len, header_len)
        };
        let last = k + 1 == self.count;
        Fragment {
            start,
            data_len: len.min(payload_len - start),
            header_len,
            // At most OFFSET_MAX, checked by `new`.
            offset: (self.offset + start) as u16,
            more: !last || self.more,
        }
    }

    /// The fragments, in order.
    pub fn fragments(&self) -> impl Iterator<Item = Fragment> + '_ {
        (0..self.count).map(|k| self.fragment(k))
    }

    /// Writes fragment `k`'s datagram at the start of `out` and returns its length.
    ///
    /// # Panics
    /// If `k` is not below the count, or `out` is shorter than the fragment's total length.
    pub fn emit(&self, k: usize, out: &mut [u8]) -> usize {
        let f = self.fragment(k);
        let out = &mut out[..f.total_len()];
        let (header, data) = out.split_at_mut(f.header_len);
        header[..ipv4::HEADER_LEN].copy_from_slice(&self.datagram[..ipv4::HEADER_LEN]);
        let options = if k == 0 {
            &self.datagram[field::OPTIONS..self.header_len]
        } else {
            &self.copied[..self.copied_len]
        };
        header[field::OPTIONS..].copy_from_slice(options);
        let payload = &self.datagram[self.header_len..];
        data.copy_from_slice(&payload[f.start..f.start + f.data_len]);
        let mut ip = Ipv4Packet::new_unchecked(out);
        ip.set_header_len(f.header_len);
        // At most the datagram's own total length.
        ip.set_total_len(f.total_len() as u16);
        ip.set_frag_offset(f.offset);
        ip.set_more_frags(f.more);
        ip.fill_checksum();
        f.total_len()
    }
}

/// The options of `options` whose copy flag is set, in order, padded with end-of-options to a
/// multiple of 4 bytes, and their padded length (RFC 791 section 3.1).
fn copied_options(options: &[u8]) -> Result<([u8; 40], usize), FragmentError> {
    let mut copied = [OPTION_END; 40];
    let mut len = 0;
    let mut at = 0;
    while let Some(&kind) = options.get(at) {
        let option_len = match kind {
            OPTION_END => break,
            OPTION_NOP => 1,
            _ => match options.get(at + 1).map(|&l| usize::from(l)) {
                Some(l) if l >= 2 && at + l <= options.len() => l,
                _ => return Err(FragmentError::BadOptions),
            },
        };
        if kind & OPTION_COPIED != 0 {
            copied[len..len + option_len].copy_from_slice(&options[at..at + option_len]);
            len += option_len;
        }
        at += option_len;
    }
    Ok((copied, len.next_multiple_of(4)))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;
    use crate::wire::{IpProtocol, Ipv4Repr};

    /// Record route (not copied), 7 bytes with room for one address.
    const RECORD_ROUTE: [u8; 7] = [7, 7, 4, 0, 0, 0, 0];
    /// Loose source route (copied), one address.
    const LOOSE_SOURCE_ROUTE: [u8; 7] = [0x83, 7, 4, 192, 0, 2, 1];
    /// A copied option of an unknown type: the copy flag decides, not the type.
    const COPIED_UNKNOWN: [u8; 4] = [0x9e, 4, 0xaa, 0xbb];

    /// A UDP datagram of `payload_len` counting bytes with `options` (padded to 4), the given
    /// offset (bytes) and more-fragments flag.
    fn datagram(payload_len: usize, options: &[u8], offset: u16, more: bool) -> Vec<u8> {
        let options_len = options.len().next_multiple_of(4);
        let repr = Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 1, 5),
            dst: Ipv4Addr::new(10, 0, 2, 8),
            protocol: IpProtocol::Udp,
            payload_len: options_len + payload_len,
            ttl: 64,
            dscp: 10,
            ecn: 1,
            ident: 0x1234,
            dont_frag: false,
        };
        let mut b = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]));
        b[20..20 + options.len()].copy_from_slice(options);
        for (i, byte) in b[20 + options_len..].iter_mut().enumerate() {
            *byte = (i % 251) as u8;
        }
        let mut ip = Ipv4Packet::new_unchecked(&mut b[..]);
        ip.set_header_len(20 + options_len);
        ip.set_frag_offset(offset);
        ip.set_more_frags(more);
        ip.fill_checksum();
        b
    }

    fn plan(d: &[u8], mtu: usize) -> Result<Fragmenter<'_>, FragmentError> {
        Fragmenter::new(Ipv4Packet::new_checked(d).unwrap(), mtu)
    }

    /// Every fragment, emitted.
    fn emit_all(f: &Fragmenter<'_>) -> Vec<Vec<u8>> {
        (0..f.count())
            .map(|k| {
                let mut out = vec![0u8; 1 << 16];
                let n = f.emit(k, &mut out);
                out.truncate(n);
                out
            })
            .collect()
    }

    /// Puts the payload back together from the fragments' offsets (relative to `base`).
    fn reassemble(fragments: &[Vec<u8>], base: usize) -> Vec<u8> {
        let mut payload = Vec::new();
        for f in fragments {
            let ip = Ipv4Packet::new_checked(&f[..]).unwrap();
            let at = usize::from(ip.frag_offset()) - base;
            assert_eq!(
                at,
                payload.len(),
                "fragments in order, without gaps or overlaps"
            );
            payload.extend_from_slice(ip.payload());
        }
        payload
    }

    #[test]
    fn a_1500_byte_datagram_splits_in_two_for_1450() {
        let d = datagram(1480, &[], 0, false);
        let f = plan(&d, 1450).unwrap();
        assert_eq!(f.count(), 2);
        let out = emit_all(&f);
        let first = Ipv4Packet::new_checked(&out[0][..]).unwrap();
        let second = Ipv4Packet::new_checked(&out[1][..]).unwrap();
        // (1450 - 20) rounded down to 8: 1424 data bytes, 177 units.
        assert_eq!(
            (first.total_len(), first.frag_offset(), first.more_frags()),
            (1444, 0, true)
        );
        assert_eq!(
            (
                second.total_len(),
                second.frag_offset(),
                second.more_frags()
            ),
            (76, 1424, false)
        );
        for ip in [first, second] {
            assert!(ip.verify_checksum());
            assert!(!ip.dont_frag());
            assert_eq!(
                (ip.ident(), ip.ttl(), ip.dscp(), ip.ecn()),
                (0x1234, 64, 10, 1)
            );
            assert_eq!(ip.protocol(), IpProtocol::Udp);
        }
        assert_eq!(
            reassemble(&out, 0),
            Ipv4Packet::new_checked(&d[..]).unwrap().payload()
        );
    }

    #[test]
    fn later_fragments_carry_only_the_copied_options() {
        let mut options = Vec::new();
        options.extend_from_slice(&RECORD_ROUTE);
        options.push(OPTION_NOP);
        options.extend_from_slice(&LOOSE_SOURCE_ROUTE);
        options.extend_from_slice(&COPIED_UNKNOWN);
        options.push(OPTION_END);
        let d = datagram(1000, &options, 0, false);
        let f = plan(&d, 576).unwrap();
        let out = emit_all(&f);
        assert_eq!(out.len(), 2);
        let first = Ipv4Packet::new_checked(&out[0][..]).unwrap();
        assert_eq!(
            first.options(),
            Ipv4Packet::new_checked(&d[..]).unwrap().options()
        );
        let second = Ipv4Packet::new_checked(&out[1][..]).unwrap();
        // 7 + 4 bytes copied, padded to 12 with end-of-options.
        let mut want = LOOSE_SOURCE_ROUTE.to_vec();
        want.extend_from_slice(&COPIED_UNKNOWN);
        want.push(OPTION_END);
        assert_eq!(second.options(), &want[..]);
        assert!(second.verify_checksum());
        // The first fragment's data is (576 - 40) & !7 = 536; the second starts there.
        assert_eq!((first.payload().len(), second.frag_offset()), (536, 536));
        assert_eq!(
            reassemble(&out, 0),
            Ipv4Packet::new_checked(&d[..]).unwrap().payload()
        );
    }

    #[test]
    fn fragments_of_fragments_keep_their_place() {
        // A middle piece: every fragment of it has more-fragments set.
        let middle = datagram(2000, &[], 800, true);
        let f = plan(&middle, 1000).unwrap();
        let offsets: Vec<(u16, bool)> = f.fragments().map(|f| (f.offset, f.more)).collect();
        assert_eq!(offsets, [(800, true), (1776, true), (2752, true)]);
        // The last piece: only the last fragment of it says no more follow.
        let last = datagram(2000, &[], 800, false);
        let f = plan(&last, 1000).unwrap();
        let more: Vec<bool> = f.fragments().map(|f| f.more).collect();
        assert_eq!(more, [true, true, false]);
        let out = emit_all(&f);
        assert_eq!(
            reassemble(&out, 800),
            Ipv4Packet::new_checked(&last[..]).unwrap().payload()
        );
    }

    #[test]
    fn what_is_not_split_is_named() {
        let d = datagram(1480, &[], 0, false);
        assert_eq!(plan(&d, 1500).err(), Some(FragmentError::Fits));
        let mut df = d.clone();
        let mut ip = Ipv4Packet::new_unchecked(&mut df[..]);
        ip.set_dont_frag(true);
        ip.fill_checksum();
        assert_eq!(plan(&df, 1450).err(), Some(FragmentError::DontFragment));
        assert_eq!(plan(&d, 27).err(), Some(FragmentError::MtuTooSmall));
        // 1480 bytes in 8-byte pieces: 185 fragments.
        assert_eq!(plan(&d, 28).err(), Some(FragmentError::TooManyFragments));
        let d = datagram(1480, &[], 65000, false);
        assert_eq!(plan(&d, 1000).err(), Some(FragmentError::OffsetOverflow));
        for bad in [&[0x83, 1, 0, 0][..], &[0x83, 9, 0, 0], &[1, 1, 7]] {
            let d = datagram(1480, bad, 0, false);
            assert_eq!(
                plan(&d, 1000).err(),
                Some(FragmentError::BadOptions),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_smallest_mtu_carries_the_largest_header() {
        // One copied option of 39 bytes: a 60-byte header on every fragment.
        let mut options = vec![0x9e, 39];
        options.resize(39, 0xcc);
        let d = datagram(200, &options, 0, false);
        let f = plan(&d, MTU_MIN).unwrap();
        assert_eq!(f.count(), 25);
        assert!(f.fragments().all(|f| f.total_len() == MTU_MIN));
        let out = emit_all(&f);
        assert_eq!(
            reassemble(&out, 0),
            Ipv4Packet::new_checked(&d[..]).unwrap().payload()
        );
    }

    /// Well-formed option lists up to 40 bytes: NOPs and options of random types (copied or
    /// not) and lengths.
    fn arb_option_list() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec((any::<bool>(), 2u8..0x7f, 2usize..12), 0..6).prop_map(|list| {
            let mut options = Vec::new();
            for (copied, kind, len) in list {
                if options.len() + len > 40 {
                    break;
                }
                if kind == 2 {
                    options.push(OPTION_NOP);
                    continue;
                }
                options.push(kind | if copied { OPTION_COPIED } else { 0 });
                options.push(len as u8);
                options.extend((0..len - 2).map(|i| i as u8));
            }
            options
        })
    }

    proptest! {
        #[test]
        fn fragments_fit_and_reassemble_to_the_datagram(
            payload_len in 9usize..6000,
            options in arb_option_list(),
            mtu in MTU_MIN..2000,
            offset_units in 0u16..64,
            more in any::<bool>(),
        ) {
            let d = datagram(payload_len, &options, offset_units * 8, more);
            let original = Ipv4Packet::new_checked(&d[..]).unwrap();
            let f = match plan(&d, mtu) {
                Ok(f) => f,
                Err(FragmentError::Fits) => {
                    prop_assert!(d.len() <= mtu);
                    return Ok(());
                }
                Err(FragmentError::TooManyFragments) => return Ok(()),
                Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            };
            let out = emit_all(&f);
            prop_assert_eq!(out.len(), f.count());
            let (copied, _) = copied_options(original.options()).unwrap();
            for (k, bytes) in out.iter().enumerate() {
                let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
                prop_assert!(bytes.len() <= mtu, "fragment {} is {} bytes", k, bytes.len());
                prop_assert!(ip.verify_checksum());
                prop_assert_eq!(ip.frag_offset() % 8, 0);
                let last = k + 1 == out.len();
                prop_assert_eq!(ip.more_frags(), !last || more);
                if !last {
                    prop_assert_eq!(ip.payload().len() % 8, 0);
                }
                prop_assert!(!ip.payload().is_empty());
                prop_assert_eq!(
                    (ip.ident(), ip.ttl(), ip.protocol(), ip.src_addr(), ip.dst_addr()),
                    (original.ident(), original.ttl(), original.protocol(),
                     original.src_addr(), original.dst_addr())
                );
                if k == 0 {
                    prop_assert_eq!(ip.options(), original.options());
                } else {
                    let n = ip.options().len();
                    prop_assert_eq!(ip.options(), &copied[..n]);
                    // Only copied options (and their end-of-options padding) are left.
                    let mut at = 0;
                    while at < n && ip.options()[at] != OPTION_END {
                        prop_assert!(ip.options()[at] & OPTION_COPIED != 0);
                        at += usize::from(ip.options()[at + 1]);
                    }
                }
            }
            prop_assert_eq!(&reassemble(&out, usize::from(offset_units) * 8)[..], original.payload());
        }
    }
}
