//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Conventions: [`data`], [`combine`] and [`pseudo_header_v4`] return the folded one's
//! complement *sum* (not complemented). A checksum field holds the complement of the sum over
//! the covered bytes taken with the field zeroed ([`compute`]); received bytes verify when the
//! sum over them, checksum field included, is `0xffff` ([`verify`]).

use std::net::Ipv4Addr;

use super::ipv4::IpProtocol;

/// Folds a wide one's complement accumulator into 16 bits with end-around carries
/// (RFC 1071 section 4.1). Since 2^16 = 1 modulo 0xffff, the fold preserves the sum.
#[inline(always)]
pub fn fold(sum: u64) -> u16 {
    // Four rounds bring any u64 below 2^16: 2^33 - 2, then 0x2fffe, then 0x10000, then 1.
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The one's complement sum of `bytes` read as **little-endian** 16-bit words, an odd last
/// byte padded with a zero, folded to 16 bits. Byte-swapped, it is the big-endian sum (RFC
/// 1071 section 2 (B), "byte order independence"); little-endian reads need no byte swap on
/// the machines this router runs on.
///
/// Four bytes are added at a time into a 64-bit accumulator, which is the same one's
/// complement sum (RFC 1071 section 2 (C), "parallel summation") and leaves the carries to
/// one final fold. The accumulator cannot overflow below 16 GiB of input.
#[inline]
fn sum_le(bytes: &[u8]) -> u16 {
    let mut chunks = bytes.chunks_exact(4);
    let mut acc: u64 = 0;
    for c in &mut chunks {
        acc += u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    }
    let tail = match *chunks.remainder() {
        [a] => u32::from(a),
        [a, b] => u32::from(u16::from_le_bytes([a, b])),
        [a, b, c] => u32::from_le_bytes([a, b, c, 0]),
        _ => 0,
    };
    fold(acc + u64::from(tail))
}

/// The one's complement sum of `bytes` (RFC 1071), folded to 16 bits, not complemented.
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    sum_le(bytes).swap_bytes()
}

/// The one's complement sum of partial sums (RFC 1071 section 2, "associative").
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The sum of the IPv4 pseudo-header (RFC 768, RFC 793 section 3.1): source and destination
/// address, zero, protocol, and the length of the transport header and payload.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, length: u16) -> u16 {
    let src = src.to_bits();
    let dst = dst.to_bits();
    fold(u64::from(src) + u64::from(dst) + u64::from(u8::from(protocol)) + u64::from(length))
}

/// The checksum to store for `bytes` (whose checksum field, if any, is zero): the complement
/// of their one's complement sum (RFC 1071).
#[inline]
pub fn compute(bytes: &[u8]) -> u16 {
    !data(bytes)
}

/// Whether `bytes`, checksum field included, verify: their sum is `0xffff` (RFC 1071
/// section 1, "verify").
#[inline]
pub fn verify(bytes: &[u8]) -> bool {
    data(bytes) == 0xffff
}

/// Whether a 20-byte IPv4 header (no options) carries a correct checksum, for the per-packet
/// path: its five 32-bit words, summed as integers, without folding.
///
/// The folded one's complement sum of a nonzero integer sum `s` is the value in `1..=0xffff`
/// congruent to `s` modulo `0xffff` (each fold preserves `s` modulo `0xffff`, since 2^16 = 1
/// modulo 0xffff): it is `0xffff`, what a correct header sums to (RFC 1071), exactly when
/// `s` is a nonzero multiple of `0xffff`. A 32-bit word is two 16-bit words modulo `0xffff`
/// likewise. Read little-endian, every 16-bit word is byte-swapped, which multiplies the sum
/// by 256 modulo `0xffff` (RFC 1071 section 2(B)): 256 is prime to `0xffff`, so that changes
/// nothing to being a multiple of it, and no byte swap is needed. One remainder by a constant
/// (a multiply and a shift) replaces the four folds.
#[inline(always)]
pub fn verify_plain_ipv4_header(header: &[u8; 20]) -> bool {
    let word = |at: usize| {
        u64::from(u32::from_le_bytes([
            header[at],
            header[at + 1],
            header[at + 2],
            header[at + 3],
        ]))
    };
    let sum = word(0) + word(4) + word(8) + word(12) + word(16);
    sum != 0 && sum % 0xffff == 0
}

/// The IPv4 header checksum after the TTL is decremented by one: RFC 1624 eqn. 3
/// ([`update_u16`]) for the word TTL/protocol going down by `0x0100`, specialised: the sum
/// `~m + m'` is `0xfeff` whatever the protocol, so one addition and one fold remain.
#[inline(always)]
pub fn ttl_decremented(checksum: u16) -> u16 {
    // At most 0xffff + 0xfeff: one end-around carry, after which no carry is left.
    let sum = u32::from(!checksum) + 0xfeff;
    !((sum + (sum >> 16)) as u16)
}

/// The checksum after a 16-bit word covered by `checksum` changes from `old` to `new`, by
/// RFC 1624 section 3, eqn. 3: `HC' = ~(~HC + ~m + m')`.
///
/// It equals a full recomputation whenever the covered data is not all zero before and after
/// the change (always true of an IPv4 header, whose first byte is never zero), and, unlike
/// eqn. 2, never produces the `0xffff` (-0) that a full recomputation cannot.
#[inline(always)]
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!checksum) + u64::from(!old) + u64::from(new))
}

/// The checksum after a 32-bit field (two aligned 16-bit words, such as an IPv4 address)
/// covered by `checksum` changes from `old` to `new`: RFC 1624 eqn. 3 applied to both words.
#[inline(always)]
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let old_hi = u64::from(!((old >> 16) as u16));
    let old_lo = u64::from(!(old as u16));
    let new_hi = u64::from(new >> 16);
    let new_lo = u64::from(new & 0xffff);
    !fold(u64::from(!checksum) + old_hi + old_lo + new_hi + new_lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: RFC 1071 summed 16 bits at a time, folding after each addition.
    fn naive_sum(bytes: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            acc += u32::from(word);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_numerical_example() {
        // RFC 1071 section 3: the sum of these eight bytes is ddf2 (checksum 220d).
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
        assert_eq!(compute(&bytes), 0x220d);
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0xab, 0xcd, 0xef]), 0x9ace); // 0xabcd + 0xef00, carry folded
    }

    #[test]
    fn rfc1624_example_gives_zero_not_minus_zero() {
        // RFC 1624 section 4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
        assert_eq!(update_u16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn verify_accepts_a_filled_checksum() {
        // An IPv4 header (RFC 791) with its checksum at bytes 10..12.
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c = compute(&header);
        assert_eq!(c, 0xb861);
        header[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(verify(&header));
        header[0] ^= 1;
        assert!(!verify(&header));
    }

    #[test]
    fn pseudo_header_matches_the_byte_layout() {
        let src = Ipv4Addr::new(10, 0, 1, 5);
        let dst = Ipv4Addr::new(192, 0, 2, 20);
        let bytes = [10, 0, 1, 5, 192, 0, 2, 20, 0, 17, 0x12, 0x34];
        assert_eq!(
            pseudo_header_v4(src, dst, IpProtocol::Udp, 0x1234),
            data(&bytes)
        );
    }

    #[test]
    fn plain_header_verify_edges() {
        // All zero sums to zero, which the fold leaves as 0x0000: not a correct header.
        assert!(!verify_plain_ipv4_header(&[0; 20]));
        assert!(!verify(&[0; 20]));
        let mut ones = [0u8; 20];
        ones[..2].copy_from_slice(&[0xff, 0xff]);
        assert!(verify_plain_ipv4_header(&ones));
        assert!(verify_plain_ipv4_header(&[0xff; 20]));
        assert!(verify(&[0xff; 20]));
    }

    #[test]
    fn ttl_decrement_gives_zero_not_minus_zero() {
        // 0xfeff + 0x0100 is 0xffff (-0); the full recomputation gives 0x0000 (+0).
        assert_eq!(ttl_decremented(0xfeff), 0x0000);
        assert_eq!(ttl_decremented(0xfeff), update_u16(0xfeff, 0x4011, 0x3f11));
        assert_eq!(ttl_decremented(0x9463), 0x9563);
    }

    proptest! {
        #[test]
        fn plain_header_verify_matches_the_fold(
            mut header in any::<[u8; 20]>(),
            fix in any::<bool>(),
        ) {
            if fix {
                // Half the cases carry a correct checksum.
                header[10..12].fill(0);
                let c = compute(&header);
                header[10..12].copy_from_slice(&c.to_be_bytes());
            }
            prop_assert_eq!(verify_plain_ipv4_header(&header), verify(&header));
        }

        #[test]
        fn ttl_decremented_is_update_u16(checksum in any::<u16>(), ttl in 1u8.., protocol in any::<u8>()) {
            let old = u16::from_be_bytes([ttl, protocol]);
            prop_assert_eq!(ttl_decremented(checksum), update_u16(checksum, old, old - 0x0100));
        }

        #[test]
        fn data_matches_the_naive_sum(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(data(&bytes), naive_sum(&bytes));
        }

        #[test]
        fn combine_is_the_sum_of_the_parts(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            cut in 0usize..150,
        ) {
            // Split at an even offset so that the 16-bit words stay aligned.
            let cut = (cut * 2).min(bytes.len() & !1);
            let (a, b) = bytes.split_at(cut);
            prop_assert_eq!(combine(&[data(a), data(b)]), data(&bytes));
        }

        #[test]
        fn update_u16_equals_a_full_recompute(
            words in proptest::collection::vec(any::<u16>(), 1..40),
            at in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            // Word 0 is the checksum, word 1 a nonzero constant (as the IPv4 version is).
            let mut bytes = vec![0u8, 0, 0x45, 0];
            for w in &words {
                bytes.extend_from_slice(&w.to_be_bytes());
            }
            let c = compute(&bytes);
            let i = 4 + 2 * at.index(words.len());
            let old = u16::from_be_bytes([bytes[i], bytes[i + 1]]);
            bytes[i..i + 2].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(update_u16(c, old, new), compute(&bytes));
        }

        #[test]
        fn update_u32_equals_a_full_recompute(
            words in proptest::collection::vec(any::<u32>(), 1..20),
            at in any::<prop::sample::Index>(),
            new in any::<u32>(),
        ) {
            let mut bytes = vec![0u8, 0, 0x45, 0];
            for w in &words {
                bytes.extend_from_slice(&w.to_be_bytes());
            }
            let c = compute(&bytes);
            let i = 4 + 4 * at.index(words.len());
            let old = u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
            bytes[i..i + 4].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(update_u32(c, old, new), compute(&bytes));
        }
    }
}
