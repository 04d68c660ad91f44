//! Packet trace: a worker's trace mode, for operators asking "why did this packet go there".
//!
//! The control thread arms a [`TraceTap`] shared by every worker with a [`TraceFilter`] and a
//! number of packets. A worker checks the armed flag once per burst (one relaxed load). While
//! it is clear, nothing else happens: the burst goes through the engine's untraced path and no
//! memory is allocated. While it is set, the worker runs the burst through
//! [`Engine::process_burst_traced`](router_core::engine::Engine::process_burst_traced) with a
//! [`BurstRecorder`] it reserved at start, and sends a [`TraceRecord`] for each packet that
//! matches the filter (with the engine's final verdict) on a bounded channel, until the
//! session's packet count is used up; then it clears the flag. A record that finds the channel
//! full is counted as lost, never waited for.
//!
//! The filter is read with a `try_lock` once per traced burst: if the control thread holds the
//! lock (arming or disarming), the worker skips tracing that burst rather than wait.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, TryLockError};

use crossbeam::channel::{bounded, Receiver, Sender};
use router_core::engine::trace::{BurstRecorder, TraceEvent};
use router_core::engine::{Verdict, MAX_BURST};
use router_core::ids::PortId;
use router_core::wire::PacketBuf;

/// Records in flight from the workers to the control thread. Larger than one session can ask
/// for, so that a session's records never find the channel full unless the reader is gone.
pub const TRACE_CHANNEL_CAPACITY: usize = 1024;
/// Most packets one trace session captures.
pub const TRACE_PACKETS_MAX: u32 = 1000;

const _: () = assert!(TRACE_PACKETS_MAX as usize <= TRACE_CHANNEL_CAPACITY);

/// Ethernet header length and the offsets of the IPv4 fields the filter reads.
const ETH_LEN: usize = 14;
const ETH_TYPE: usize = 12;
const ETHERTYPE_IPV4: u16 = 0x0800;
const IPV4_PROTOCOL: usize = 9;
const IPV4_SRC: usize = 12;
const IPV4_DST: usize = 16;
const IPV4_MIN_LEN: usize = 20;

/// Which packets a trace captures. Every field that is set must match; an empty filter takes
/// every packet. Addresses and protocol match the packet as received (the outer header of a
/// VXLAN frame) or any IPv4 header the engine parsed (the inner one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceFilter {
    /// The router port the packet came in on.
    pub port: Option<PortId>,
    /// IPv4 source address.
    pub src: Option<Ipv4Addr>,
    /// IPv4 destination address.
    pub dst: Option<Ipv4Addr>,
    /// IPv4 protocol number (1 ICMP, 6 TCP, 17 UDP).
    pub protocol: Option<u8>,
}

impl TraceFilter {
    /// True when the filter says something about IPv4 headers.
    pub fn needs_ipv4(&self) -> bool {
        self.src.is_some() || self.dst.is_some() || self.protocol.is_some()
    }

    /// True when an IPv4 header with these fields matches.
    pub fn matches_ipv4(&self, src: Ipv4Addr, dst: Ipv4Addr, protocol: u8) -> bool {
        self.src.is_none_or(|s| s == src)
            && self.dst.is_none_or(|d| d == dst)
            && self.protocol.is_none_or(|p| p == protocol)
    }

    /// True when the Ethernet frame `frame` carries an IPv4 header that matches.
    pub fn matches_frame(&self, frame: &[u8]) -> bool {
        if frame.len() < ETH_LEN + IPV4_MIN_LEN {
            return false;
        }
        if u16::from_be_bytes([frame[ETH_TYPE], frame[ETH_TYPE + 1]]) != ETHERTYPE_IPV4 {
            return false;
        }
        let ip = &frame[ETH_LEN..];
        let addr = |at: usize| Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
        self.matches_ipv4(addr(IPV4_SRC), addr(IPV4_DST), ip[IPV4_PROTOCOL])
    }

    /// True when one of the IPv4 headers the engine parsed matches.
    pub fn matches_events(&self, events: &[TraceEvent]) -> bool {
        events.iter().any(|e| match *e {
            TraceEvent::Ipv4 {
                src, dst, protocol, ..
            } => self.matches_ipv4(src, dst, protocol),
            _ => false,
        })
    }
}

/// One traced packet: where it came in, what the engine decided at each step, and the verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    /// The session that asked for it ([`TraceTap::arm`]).
    pub session: u64,
    /// The worker that handled it.
    pub worker: usize,
    /// The router port it came in on.
    pub port: PortId,
    /// The engine's time of its burst, in nanoseconds.
    pub time_ns: u64,
    /// The frame's length as received.
    pub len: usize,
    /// The engine's decisions, in order.
    pub events: Vec<TraceEvent>,
    /// Decisions that did not fit the recorder.
    pub events_lost: usize,
    /// What the engine decided in the end.
    pub verdict: Verdict,
}

/// The session a tap is armed with.
#[derive(Clone, Copy, Debug)]
struct Session {
    id: u64,
    filter: TraceFilter,
}

/// The trace switch shared by the control thread and every worker.
#[derive(Debug)]
pub struct TraceTap {
    armed: AtomicBool,
    session: Mutex<Option<Session>>,
    /// Packets the session still wants; workers claim them one by one.
    remaining: AtomicU32,
    /// Records the channel refused.
    lost: AtomicU64,
    tx: Sender<TraceRecord>,
}

/// The control thread's end of the records channel.
pub type TraceReceiver = Receiver<TraceRecord>;

impl TraceTap {
    /// A disarmed tap and the receiving end of its records.
    pub fn new() -> (TraceTap, TraceReceiver) {
        let (tx, rx) = bounded(TRACE_CHANNEL_CAPACITY);
        let tap = TraceTap {
            armed: AtomicBool::new(false),
            session: Mutex::new(None),
            remaining: AtomicU32::new(0),
            lost: AtomicU64::new(0),
            tx,
        };
        (tap, rx)
    }

    /// Starts session `id`: the next `packets` packets (at most [`TRACE_PACKETS_MAX`]) that
    /// match `filter` are recorded. Replaces any session in progress.
    pub fn arm(&self, id: u64, filter: TraceFilter, packets: u32) {
        self.armed.store(false, Ordering::Release);
        *self.session.lock().unwrap_or_else(PoisonError::into_inner) = Some(Session { id, filter });
        self.remaining
            .store(packets.min(TRACE_PACKETS_MAX), Ordering::Release);
        self.lost.store(0, Ordering::Relaxed);
        self.armed.store(packets > 0, Ordering::Release);
    }

    /// Ends the session in progress, if any. Records already sent stay in the channel.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Release);
        self.remaining.store(0, Ordering::Release);
        *self.session.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// True while a session wants packets.
    #[inline]
    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }

    /// Records of this session the channel refused.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// The session's filter, unless the control thread holds the lock or no session is set.
    fn session(&self) -> Option<Session> {
        match self.session.try_lock() {
            Ok(guard) => *guard,
            Err(TryLockError::Poisoned(poisoned)) => *poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Claims one packet of the session; false when it has all it asked for (and disarms).
    fn claim(&self) -> bool {
        let claimed = self
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok_and(|before| {
                if before == 1 {
                    self.armed.store(false, Ordering::Release);
                }
                true
            });
        if !claimed {
            self.armed.store(false, Ordering::Release);
        }
        claimed
    }

    fn send(&self, record: TraceRecord) {
        if self.tx.try_send(record).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A worker's side of the trace: the shared tap and the recorder reserved at start.
#[derive(Debug)]
pub(crate) struct WorkerTrace {
    tap: std::sync::Arc<TraceTap>,
    recorder: BurstRecorder,
    worker: usize,
    /// Per packet of the burst being traced: its length as received and whether its headers
    /// as received match the filter.
    received: [(usize, bool); MAX_BURST],
    session: Option<Session>,
}

impl WorkerTrace {
    pub(crate) fn new(tap: std::sync::Arc<TraceTap>, worker: usize) -> WorkerTrace {
        WorkerTrace {
            tap,
            recorder: BurstRecorder::new(MAX_BURST),
            worker,
            received: [(0, false); MAX_BURST],
            session: None,
        }
    }

    /// Whether to trace a burst received on `port`: the tap is armed and its filter accepts
    /// the port. Reads the session once for the burst.
    #[inline]
    pub(crate) fn wants(&mut self, port: PortId) -> bool {
        if !self.tap.is_armed() {
            return false;
        }
        self.session = self
            .tap
            .session()
            .filter(|s| s.filter.port.is_none_or(|p| p == port));
        self.session.is_some()
    }

    /// Notes what the filter needs from the packets before the engine rewrites them, and
    /// clears the recorder.
    pub(crate) fn before(&mut self, pkts: &[PacketBuf<'_>]) {
        let filter = self.session.map(|s| s.filter).unwrap_or_default();
        for (slot, pkt) in self.received.iter_mut().zip(pkts) {
            let frame = pkt.frame();
            *slot = (
                frame.len(),
                !filter.needs_ipv4() || filter.matches_frame(frame),
            );
        }
        self.recorder.clear();
    }

    pub(crate) fn recorder(&mut self) -> &mut BurstRecorder {
        &mut self.recorder
    }

    /// Sends the records of the matching packets of the burst just processed.
    pub(crate) fn after(&mut self, port: PortId, now_ns: u64, verdicts: &[Verdict]) {
        let Some(session) = self.session.take() else {
            return;
        };
        for (i, &verdict) in verdicts.iter().enumerate() {
            let (events, events_lost) = self.recorder.events(i);
            let (len, matched) = self.received[i];
            if !(matched || session.filter.matches_events(events)) {
                continue;
            }
            if !self.tap.claim() {
                return;
            }
            self.tap.send(TraceRecord {
                session: session.id,
                worker: self.worker,
                port,
                time_ns: now_ns,
                len,
                events: events.to_vec(),
                events_lost,
                verdict,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use router_core::reason::DropReason;

    fn frame(src: [u8; 4], dst: [u8; 4], protocol: u8) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[12] = 0x08;
        f[14] = 0x45;
        f[14 + 9] = protocol;
        f[14 + 12..14 + 16].copy_from_slice(&src);
        f[14 + 16..14 + 20].copy_from_slice(&dst);
        f
    }

    #[test]
    fn filter_matches_fields_that_are_set() {
        let any = TraceFilter::default();
        assert!(!any.needs_ipv4());
        let f = frame([10, 0, 1, 5], [10, 0, 2, 7], 1);
        assert!(any.matches_frame(&f));
        let icmp_to = TraceFilter {
            dst: Some(Ipv4Addr::new(10, 0, 2, 7)),
            protocol: Some(1),
            ..any
        };
        assert!(icmp_to.matches_frame(&f));
        assert!(!icmp_to.matches_frame(&frame([10, 0, 1, 5], [10, 0, 2, 7], 17)));
        assert!(!icmp_to.matches_frame(&frame([10, 0, 1, 5], [10, 0, 2, 8], 1)));
        let mut arp = f.clone();
        arp[13] = 0x06;
        assert!(!icmp_to.matches_frame(&arp), "not IPv4");
        assert!(!icmp_to.matches_frame(&f[..30]), "truncated");
        let events = [TraceEvent::Ipv4 {
            src: Ipv4Addr::new(10, 0, 1, 5),
            dst: Ipv4Addr::new(10, 0, 2, 7),
            protocol: 1,
            ttl: 64,
            total_len: 84,
        }];
        assert!(icmp_to.matches_events(&events));
        assert!(!TraceFilter {
            src: Some(Ipv4Addr::new(1, 1, 1, 1)),
            ..any
        }
        .matches_events(&events));
    }

    #[test]
    fn a_session_takes_its_packets_then_disarms() {
        let (tap, rx) = TraceTap::new();
        let tap = std::sync::Arc::new(tap);
        let mut w = WorkerTrace::new(std::sync::Arc::clone(&tap), 2);
        assert!(!w.wants(PortId::new(0)), "not armed");
        tap.arm(
            7,
            TraceFilter {
                port: Some(PortId::new(1)),
                ..TraceFilter::default()
            },
            3,
        );
        assert!(!w.wants(PortId::new(0)), "other port");
        let mut bufs: Vec<Vec<u8>> = (0..5)
            .map(|_| frame([10, 0, 1, 5], [10, 0, 2, 7], 1))
            .collect();
        assert!(w.wants(PortId::new(1)));
        let pkts: Vec<PacketBuf<'_>> = bufs
            .iter_mut()
            .map(|b| PacketBuf::new(b, 0, 64).unwrap())
            .collect();
        w.before(&pkts);
        let verdicts = [
            Verdict::Forward(PortId::new(2)),
            Verdict::Drop(DropReason::NoRoute),
            Verdict::Forward(PortId::new(2)),
            Verdict::Forward(PortId::new(2)),
            Verdict::Forward(PortId::new(2)),
        ];
        w.after(PortId::new(1), 1234, &verdicts);
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].verdict, Verdict::Drop(DropReason::NoRoute));
        assert!(got
            .iter()
            .all(|r| r.session == 7 && r.worker == 2 && r.port == PortId::new(1) && r.len == 64));
        assert!(!tap.is_armed(), "disarmed once the session has its packets");
        assert!(!w.wants(PortId::new(1)));
        tap.arm(8, TraceFilter::default(), 2);
        tap.disarm();
        assert!(!w.wants(PortId::new(1)));
        assert_eq!(tap.lost(), 0);
    }
}
