//! A minimal reader of the classic pcap format (what `tcpdump -w` writes): a 24-byte global
//! header, then records of a 16-byte header and the captured bytes. Either byte order,
//! microsecond or nanosecond timestamps. A truncated last record (a file still being written)
//! is ignored.

use std::path::Path;

/// Link type of Ethernet captures (LINKTYPE_ETHERNET).
pub const LINKTYPE_ETHERNET: u32 = 1;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapRecord {
    /// Capture time, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// The frame's length on the wire (the capture may hold fewer bytes: `data.len()`).
    pub orig_len: u32,
    /// The captured bytes, from the Ethernet header on.
    pub data: Vec<u8>,
}

/// A parsed capture.
#[derive(Debug, Clone)]
pub struct Pcap {
    pub linktype: u32,
    pub snaplen: u32,
    pub records: Vec<PcapRecord>,
}

/// Parses a pcap file's bytes.
pub fn parse(bytes: &[u8]) -> Result<Pcap, String> {
    if bytes.len() < GLOBAL_HEADER_LEN {
        return Err(format!(
            "{} bytes: shorter than the pcap global header",
            bytes.len()
        ));
    }
    let magic_le = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let magic_be = u32::from_be_bytes(bytes[0..4].try_into().unwrap());
    let (little, nanos) = match (magic_le, magic_be) {
        (MAGIC_MICROS, _) => (true, false),
        (MAGIC_NANOS, _) => (true, true),
        (_, MAGIC_MICROS) => (false, false),
        (_, MAGIC_NANOS) => (false, true),
        _ => {
            return Err(format!(
                "magic {magic_le:#010x} is no pcap magic (pcapng is not supported)"
            ))
        }
    };
    let u32_at = |b: &[u8], at: usize| -> u32 {
        let word: [u8; 4] = b[at..at + 4].try_into().unwrap();
        if little {
            u32::from_le_bytes(word)
        } else {
            u32::from_be_bytes(word)
        }
    };
    let snaplen = u32_at(bytes, 16);
    let linktype = u32_at(bytes, 20);
    let mut records = Vec::new();
    let mut at = GLOBAL_HEADER_LEN;
    while at + RECORD_HEADER_LEN <= bytes.len() {
        let secs = u64::from(u32_at(bytes, at));
        let frac = u64::from(u32_at(bytes, at + 4));
        let incl_len = u32_at(bytes, at + 8) as usize;
        let orig_len = u32_at(bytes, at + 12);
        let start = at + RECORD_HEADER_LEN;
        if start + incl_len > bytes.len() {
            break; // the record being written
        }
        let time_ns = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        records.push(PcapRecord {
            time_ns,
            orig_len,
            data: bytes[start..start + incl_len].to_vec(),
        });
        at = start + incl_len;
    }
    Ok(Pcap {
        linktype,
        snaplen,
        records,
    })
}

/// Reads and parses a pcap file.
pub fn read(path: &Path) -> Result<Pcap, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}
