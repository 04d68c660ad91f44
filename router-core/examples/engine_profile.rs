//! Runs the engine over many bursts of one DVR path, for profiling with callgrind:
//! `valgrind --tool=callgrind target/release/examples/engine_profile local|remote|decap [bursts]`

use router_core::engine::{PacketBuf, Verdict};

#[path = "../tests/common/mod.rs"]
mod common;
use common::*;

const BURST: usize = 32;

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "local".into());
    let bursts: usize = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let mut a = Host::new("host-a");
    let mut b = Host::new("host-b");
    a.resolve_underlay();
    let local = ipv4_frame(
        VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.7", 64, 17, 26, false,
    );
    let remote = ipv4_frame(
        VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.8", 64, 17, 26, false,
    );
    let (_, encapsulated) = a.process(BLUE, &remote);
    let (host, input, frame) = match path.as_str() {
        "local" => (&mut a, BLUE, local),
        "remote" => (&mut a, BLUE, remote),
        _ => (&mut b, FABRIC, encapsulated),
    };
    let mut bufs = vec![vec![0u8; BUF_LEN]; BURST];
    let mut verdicts = [Verdict::Drop(router_core::engine::DropReason::Stale); BURST];
    let mut forwarded = 0usize;
    for _ in 0..bursts {
        for buf in &mut bufs {
            buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(&frame);
        }
        let mut pkts: Vec<PacketBuf<'_>> = bufs
            .iter_mut()
            .map(|b| PacketBuf::new(b, HEADROOM, frame.len()).unwrap())
            .collect();
        host.engine
            .process_burst(&mut host.worker, input, 1, &mut pkts, &mut verdicts);
        forwarded += verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Forward(_)))
            .count();
    }
    println!(
        "{path}: {forwarded} of {} packets forwarded",
        bursts * BURST
    );
}
