//! The engine's fast path (the common case handled in fewer instructions) decides exactly as
//! the general path does. A traced burst always takes the general path, so the same burst run
//! traced and untraced on two identical hosts must give the same verdicts, the same frames
//! and the same counters, whatever the frames are.

mod common;

use common::*;
use proptest::prelude::*;
use router_core::engine::trace::BurstRecorder;
use router_core::engine::Verdict;
use router_core::reason::DropReason;
use router_core::wire::PacketBuf;

/// What a burst did: each frame's verdict and bytes as it left, and the routers' counters.
type Outcome = (Vec<Verdict>, Vec<Vec<u8>>, Vec<[u64; 4]>);

/// Runs `frames` from BLUE through `host` as one burst, traced or not.
fn run(host: &mut Host, frames: &[Vec<u8>], traced: bool) -> Outcome {
    let mut bufs: Vec<Vec<u8>> = frames.iter().map(|_| vec![0u8; BUF_LEN]).collect();
    let mut pkts: Vec<PacketBuf<'_>> = bufs
        .iter_mut()
        .zip(frames)
        .map(|(b, f)| {
            b[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
            PacketBuf::new(b, HEADROOM, f.len()).unwrap()
        })
        .collect();
    let mut verdicts = vec![Verdict::Drop(DropReason::Stale); frames.len()];
    if traced {
        let mut recorder = BurstRecorder::new(frames.len());
        host.engine.process_burst_traced(
            &mut host.worker,
            BLUE,
            0,
            &mut pkts,
            &mut verdicts,
            &mut recorder,
        );
    } else {
        host.engine
            .process_burst(&mut host.worker, BLUE, 0, &mut pkts, &mut verdicts);
    }
    let out = pkts.iter().map(|p| p.frame().to_vec()).collect();
    let counters = host
        .worker
        .counters()
        .routers
        .iter()
        .take(4)
        .map(|r| {
            [
                r.routed_local.get(),
                r.routed_remote.get(),
                r.delivered_from_fabric.get(),
                r.icmp_errors.get(),
            ]
        })
        .collect();
    (verdicts, out, counters)
}

fn host() -> Host {
    let mut h = Host::new("host-a");
    h.resolve_underlay();
    h
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Bursts of valid routed frames (to this host, a peer host, a route, the gateway
    /// itself), some with a few bytes changed or cut short: TTL, checksum, version, lengths,
    /// addresses and MACs all end up edited in some cases.
    #[test]
    fn fast_and_general_paths_agree(
        burst in proptest::collection::vec(
            (0usize..4, proptest::collection::vec((0usize..48, any::<u8>()), 0..3), 30usize..80, 1u8..4),
            1..12,
        ),
    ) {
        let frames: Vec<Vec<u8>> = burst
            .iter()
            .map(|(dst, edits, len, ttl)| {
                let dst = ["10.0.2.7", "10.0.2.8", "198.18.0.9", "10.0.1.1"][*dst];
                let mut f = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", dst, *ttl);
                for &(at, b) in edits {
                    f[at] = b;
                }
                f.truncate(*len);
                f
            })
            .collect();
        let general = run(&mut host(), &frames, true);
        let fast = run(&mut host(), &frames, false);
        prop_assert_eq!(fast, general);
    }
}
