//! Runs the engine over many bursts of one DVR path, for profiling with callgrind:
//! `valgrind --tool=callgrind target/release/examples/engine_profile local|remote|decap [bursts]`

use router_core::engine::Verdict;

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
    let mut paths = DvrPaths::new();
    let (host, input, frame) = match path.as_str() {
        "local" => (&mut paths.a, BLUE, paths.local),
        "remote" => (&mut paths.a, BLUE, paths.remote),
        _ => (&mut paths.b, FABRIC, paths.encapsulated),
    };
    let mut bufs = vec![vec![0u8; BUF_LEN]; BURST];
    let mut verdicts = [Verdict::Drop(router_core::reason::DropReason::Stale); BURST];
    let mut forwarded = 0usize;
    for _ in 0..bursts {
        host.process_copies(input, &frame, &mut bufs, &mut verdicts);
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
