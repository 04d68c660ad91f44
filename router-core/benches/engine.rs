//! The forwarding engine alone, per packet, for the three DVR paths: routed to a local
//! instance, routed to a peer host (DVR rewrite + VXLAN encapsulation), and received from the
//! fabric (decapsulation + gateway MAC restore). Bursts of 32 frames of 64 bytes.
//!
//! `cargo bench -p router-core --bench engine`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use router_core::engine::Verdict;
use router_core::ids::PortId;

#[path = "../tests/common/mod.rs"]
mod common;
use common::*;

const BURST: usize = 32;

/// Runs `frames` through the engine of `host` from `input`, restoring them before each burst.
fn bench_path(
    c: &mut Criterion,
    name: &str,
    host: &mut Host,
    input: PortId,
    frame: &[u8],
    expect: Verdict,
) {
    assert_eq!(host.process(input, frame).0, expect, "{name}");
    let mut bufs = vec![vec![0u8; BUF_LEN]; BURST];
    let mut verdicts = [Verdict::Drop(router_core::reason::DropReason::Stale); BURST];
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            host.process_copies(input, frame, &mut bufs, &mut verdicts);
            std::hint::black_box(&verdicts);
        })
    });
    g.finish();
}

fn engine(c: &mut Criterion) {
    let mut paths = DvrPaths::new();
    bench_path(
        c,
        "route_local",
        &mut paths.a,
        BLUE,
        &paths.local,
        Verdict::Forward(RED),
    );
    bench_path(
        c,
        "route_remote_vxlan",
        &mut paths.a,
        BLUE,
        &paths.remote,
        Verdict::Forward(FABRIC),
    );
    bench_path(
        c,
        "fabric_decap",
        &mut paths.b,
        FABRIC,
        &paths.encapsulated,
        Verdict::Forward(RED),
    );
}

criterion_group!(benches, engine);
criterion_main!(benches);
