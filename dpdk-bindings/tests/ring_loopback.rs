//! End-to-end test against the real DPDK: EAL, mempool, mbufs, bursts, ports and queues over
//! the ring PMD (what a port sends, it receives) and the null PMD, and DPDK's LPM tables.
//!
//! EAL can be initialised once per process, so this file has a single test that runs the
//! steps in order. No hugepages (`--no-huge`) and no shared files (`--no-shconf`): nothing is
//! left behind but an empty runtime folder under /var/run/dpdk.
// Sequence numbers and counts in this test are small: casts between integer types are exact.
#![allow(clippy::cast_possible_truncation)]

use std::time::Duration;

use dpdk_bindings::{
    lcore_id, thread_register, thread_unregister, tsc, Eal, Mbuf, MbufBurst, Mempool, Port,
    PortConfig, RteFib, RteLpm, BURST_SIZE, DEFAULT_DATA_ROOM, HEADROOM, LPM_MISS,
};

fn eal_args() -> Vec<String> {
    Eal::isolated_args(
        "dpdk_bindings_ring_loopback",
        256,
        &["net_ring0", "net_null0"],
    )
}

/// Mbufs in the test pool.
const POOL_SIZE: u32 = 4095;
/// Per-lcore cache of the test pool.
const POOL_CACHE: u32 = 64;
/// The ring PMD's rings hold 1024 slots, one always empty.
const RING_CAPACITY: usize = 1023;

#[test]
fn dpdk_end_to_end() {
    let eal = Eal::init(&eal_args()).expect("EAL init");
    check_eal(&eal);

    let pool = Mempool::pktmbuf("test_pool", POOL_SIZE, POOL_CACHE, DEFAULT_DATA_ROOM, None)
        .expect("create pool");
    check_pool_names(&pool);
    check_mbuf(&pool);
    check_window(&pool);
    check_burst(&pool);
    assert_eq!(pool.in_use(), 0, "mbuf operations leaked");

    check_ring_port(&pool);
    check_null_port(&pool);
    assert_eq!(pool.in_use(), 0, "port traffic leaked");

    check_registered_thread(&pool);
    check_rte_lpm();
    check_rte_fib();

    assert_eq!(pool.in_use(), 0);
    pool.close().expect("free pool");
    eal.cleanup().expect("EAL cleanup");
}

fn check_eal(eal: &Eal) {
    assert!(eal.version().starts_with("DPDK 22.11"), "{}", eal.version());
    assert!(eal.tsc_hz() > 0);
    assert_eq!(eal.lcore_count(), 1);
    assert_eq!(eal.main_lcore(), 0);
    assert_eq!(
        lcore_id(),
        Some(0),
        "the initialising thread is the main lcore"
    );
    let before = tsc();
    assert!(tsc() >= before);

    let again = Eal::init(&eal_args()).expect_err("second EAL init");
    assert_eq!(again.errno(), libc::EALREADY);
    assert!(again.to_string().contains("once per process"), "{again}");
}

fn check_pool_names(pool: &Mempool) {
    assert_eq!(pool.name(), "test_pool");
    assert_eq!(pool.available(), POOL_SIZE);
    let dup = Mempool::pktmbuf("test_pool", 64, 0, DEFAULT_DATA_ROOM, None)
        .expect_err("duplicate pool name");
    assert_eq!(dup.errno(), libc::EEXIST, "{dup}");
    let bad = Mempool::pktmbuf("bad\0name", 64, 0, DEFAULT_DATA_ROOM, None).expect_err("NUL");
    assert_eq!(bad.errno(), libc::EINVAL);
}

fn frame(seq: u16, len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7)).collect();
    bytes[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    bytes[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    bytes[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    bytes[14..16].copy_from_slice(&seq.to_be_bytes());
    bytes
}

fn seq_of(data: &[u8]) -> u16 {
    u16::from_be_bytes([data[14], data[15]])
}

fn check_mbuf(pool: &Mempool) {
    let bytes = frame(1, 60);
    let mut m = Mbuf::from_bytes(pool, &bytes).expect("from_bytes");
    assert_eq!(m.data(), &bytes[..]);
    assert_eq!(m.len(), 60);
    assert!(!m.is_empty());
    assert_eq!(m.nb_segs(), 1);
    assert!(m.is_contiguous());
    assert_eq!(m.port(), None);
    assert_eq!(m.headroom(), usize::from(HEADROOM));
    assert_eq!(
        m.tailroom(),
        usize::from(DEFAULT_DATA_ROOM) - usize::from(HEADROOM) - 60
    );
    assert_eq!(pool.in_use(), 1);

    // Prepend, strip, append, trim.
    m.prepend(8).expect("prepend").fill(0xaa);
    assert_eq!(m.headroom(), usize::from(HEADROOM) - 8);
    assert_eq!(&m.data()[..8], &[0xaa; 8]);
    assert_eq!(&m.data()[8..], &bytes[..]);
    m.adj(8).expect("adj");
    assert_eq!(m.data(), &bytes[..]);
    m.append(4).expect("append").copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(m.len(), 64);
    m.trim(4).expect("trim");
    assert_eq!(m.data(), &bytes[..]);
    let headroom = m.headroom();
    assert_eq!(m.prepend(headroom + 1).unwrap_err().errno(), libc::ENOSPC);
    assert_eq!(m.adj(61).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(m.trim(61).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(m.append(100_000).unwrap_err().errno(), libc::ENOSPC);
    assert_eq!(m.data(), &bytes[..], "failed operations changed the mbuf");

    m.data_mut().expect("exclusive")[0] = 0xff;
    let mut copy = m.copy(pool).expect("copy");
    assert_eq!(copy.data(), m.data());
    copy.data_mut().expect("exclusive")[1] = 0xee;
    assert_eq!(m.data()[1], bytes[1], "the copy is deep");
    assert_eq!(pool.in_use(), 2);

    let too_big = vec![0u8; usize::from(DEFAULT_DATA_ROOM)];
    let err = Mbuf::from_bytes(pool, &too_big).expect_err("frame larger than the buffer");
    assert_eq!(err.errno(), libc::ENOSPC);
    assert!(err.to_string().contains("rte_pktmbuf_append"), "{err}");

    drop(m);
    drop(copy);
    assert_eq!(pool.in_use(), 0);
}

fn check_window(pool: &Mempool) {
    let bytes = frame(2, 100);
    let mut m = Mbuf::from_bytes(pool, &bytes).expect("from_bytes");
    let buf_len = {
        let w = m.window_mut().expect("single exclusive segment");
        assert_eq!(w.buf.len(), usize::from(DEFAULT_DATA_ROOM));
        assert_eq!(w.head, usize::from(HEADROOM));
        assert_eq!(w.len, 100);
        assert_eq!(&w.buf[w.head..w.head + w.len], &bytes[..]);
        // Encapsulate: write a 50-byte header in front of the frame.
        w.buf[w.head - 50..w.head].fill(0x55);
        w.buf.len()
    };
    let head = usize::from(HEADROOM) - 50;
    m.set_window(head, 150).expect("prepend window");
    assert_eq!(m.len(), 150);
    assert_eq!(m.headroom(), head);
    assert_eq!(&m.data()[..50], &[0x55; 50]);
    assert_eq!(&m.data()[50..], &bytes[..]);

    // Decapsulate again.
    m.set_window(usize::from(HEADROOM), 100)
        .expect("strip window");
    assert_eq!(m.data(), &bytes[..]);

    // Invalid windows are refused and change nothing.
    for (head, len) in [
        (buf_len, 1),
        (0, buf_len + 1),
        (usize::MAX, 2),
        (1, usize::MAX),
    ] {
        let err = m
            .set_window(head, len)
            .expect_err("window outside the buffer");
        assert_eq!(err.errno(), libc::EINVAL, "{err}");
    }
    assert_eq!(m.data(), &bytes[..]);
    // The whole buffer is a valid window.
    m.set_window(0, buf_len).expect("whole buffer");
    assert_eq!(m.len(), buf_len);
    assert_eq!(m.tailroom(), 0);
    m.set_window(buf_len, 0).expect("empty window at the end");
    assert!(m.is_empty());
}

fn check_burst(pool: &Mempool) {
    let mut burst: MbufBurst = MbufBurst::new();
    assert_eq!(burst.capacity(), BURST_SIZE);
    for seq in 0..BURST_SIZE as u16 {
        let m = Mbuf::from_bytes(pool, &frame(seq, 64)).unwrap();
        burst.push(m).expect("room left");
    }
    assert!(burst.is_full());
    let extra = Mbuf::from_bytes(pool, &frame(99, 64)).unwrap();
    let extra = burst
        .push(extra)
        .expect_err("full burst gives the mbuf back");
    assert_eq!(seq_of(extra.data()), 99);
    drop(extra);
    assert_eq!(pool.in_use(), BURST_SIZE as u32);

    // pop takes the last, swap_remove moves the last into the hole.
    assert_eq!(seq_of(burst.pop().unwrap().data()), 31);
    assert_eq!(seq_of(burst.swap_remove(0).unwrap().data()), 0);
    assert_eq!(seq_of(burst.as_slice()[0].data()), 30);
    assert!(burst.swap_remove(100).is_none());
    assert_eq!(burst.len(), 30);

    // retain keeps order and frees the rest.
    burst.retain(|m| seq_of(m.data()) % 2 == 0);
    let seqs: Vec<u16> = burst.iter().map(|m| seq_of(m.data())).collect();
    assert_eq!(
        seqs,
        [30, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28]
    );
    assert_eq!(pool.in_use(), 15);

    // Windows for the whole burst, then per-packet write-back.
    let mut heads = [0usize; BURST_SIZE];
    let mut count = 0;
    for (i, w) in burst.windows_mut().enumerate() {
        let w = w.expect("single segment");
        w.buf[w.head - 4..w.head].copy_from_slice(&[9, 9, 9, 9]);
        heads[i] = w.head - 4;
        count += 1;
    }
    for (i, &head) in heads.iter().enumerate().take(count) {
        burst.set_window(i, head, 68).unwrap();
    }
    assert!(burst
        .iter()
        .all(|m| m.len() == 68 && m.data()[..4] == [9, 9, 9, 9]));
    assert_eq!(
        burst.set_window(BURST_SIZE, 0, 0).unwrap_err().errno(),
        libc::EINVAL
    );
    burst.prefetch(0);
    burst.prefetch(1000);

    // drain hands out ownership; what is not taken is freed with the iterator.
    let mut drain = burst.drain();
    assert_eq!(drain.len(), 15);
    let first = drain.next().unwrap();
    let second = drain.next().unwrap();
    drop(drain);
    assert!(burst.is_empty());
    assert_eq!(pool.in_use(), 2);
    burst.push(first).unwrap();
    burst.push(second).unwrap();

    // Bulk allocation: all or nothing.
    pool.alloc_burst(&mut burst, 10).expect("bulk alloc");
    assert_eq!(burst.len(), 12);
    assert_eq!(
        pool.alloc_burst(&mut burst, BURST_SIZE)
            .unwrap_err()
            .errno(),
        libc::ENOSPC
    );
    burst.clear();
    assert!(burst.is_empty());
    assert_eq!(pool.in_use(), 0);

    // Dropping a burst frees what it holds.
    let mut burst: MbufBurst<4> = MbufBurst::new();
    pool.alloc_burst(&mut burst, 4).unwrap();
    assert_eq!(pool.in_use(), 4);
    drop(burst);
    assert_eq!(pool.in_use(), 0);
}

fn check_ring_port(pool: &Mempool) {
    let missing = Port::by_name("net_nothing9").expect_err("no such port");
    assert_eq!(missing.errno(), libc::ENODEV, "{missing}");

    let mut port = Port::by_name("net_ring0").expect("vdev net_ring0 was probed");
    let again = Port::by_name("net_ring0").expect_err("second handle");
    assert_eq!(again.errno(), libc::EBUSY);

    let info = port.info().expect("info");
    assert_eq!(info.driver, "net_ring");
    assert!(
        info.max_rx_queues >= 1 && info.max_tx_queues >= 1,
        "{info:?}"
    );

    // A bad configuration is reported with DPDK's text.
    let bad = PortConfig {
        rx_queues: 1000,
        ..PortConfig::default()
    };
    let err = port.configure(&bad, pool).expect_err("1000 rx queues");
    assert_eq!(err.errno(), libc::EINVAL);
    let message = err.to_string();
    assert!(message.contains("rte_eth_dev_configure"), "{message}");
    assert!(message.contains("Invalid argument"), "{message}");
    assert!(message.contains("1000 rx queues"), "{message}");
    assert_eq!(
        port.start().unwrap_err().errno(),
        libc::EINVAL,
        "start before configure"
    );

    let config = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 512,
        tx_desc: 512,
        rx_offloads: dpdk_bindings::offload::RX_IPV4_CKSUM,
        tx_offloads: dpdk_bindings::offload::TX_MBUF_FAST_FREE,
        ..PortConfig::default()
    };
    port.configure(&config, pool).expect("configure");
    assert_eq!(
        port.rx_queue(0).unwrap_err().errno(),
        libc::EINVAL,
        "queue before start"
    );
    port.start().expect("start");
    let link = port.wait_link_up(Duration::from_secs(2)).expect("link up");
    assert!(link.up);
    assert!(link.full_duplex);
    assert!(port.mac_addr().is_ok());
    port.stats_reset().unwrap();

    let mut rxq = port.rx_queue(0).expect("rx queue");
    let mut txq = port.tx_queue(0).expect("tx queue");
    assert_eq!(port.rx_queue(0).unwrap_err().errno(), libc::EBUSY);
    assert_eq!(port.tx_queue(1).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(
        port.stop().unwrap_err().errno(),
        libc::EBUSY,
        "stop with queues out"
    );
    assert_eq!(rxq.port(), port.id());
    assert_eq!((rxq.queue(), txq.queue()), (0, 0));

    // Loopback: send a burst, receive the same frames.
    let mut tx: MbufBurst = MbufBurst::new();
    for seq in 0..BURST_SIZE as u16 {
        let len = 60 + usize::from(seq);
        tx.push(Mbuf::from_bytes(pool, &frame(seq, len)).unwrap())
            .unwrap();
    }
    assert_eq!(txq.tx_burst(&mut tx), BURST_SIZE);
    assert!(tx.is_empty());
    assert_eq!(txq.tx_burst(&mut tx), 0, "empty burst");

    let mut rx: MbufBurst = MbufBurst::new();
    assert_eq!(rxq.rx_burst(&mut rx), BURST_SIZE);
    for (seq, m) in rx.iter().enumerate() {
        assert_eq!(m.data(), &frame(seq as u16, 60 + seq)[..]);
    }
    assert_eq!(rxq.rx_burst(&mut rx), 0, "full burst receives nothing");

    // Rewrite in place through windows (encapsulate), send, receive, check.
    let mut new_windows = [(0usize, 0usize); BURST_SIZE];
    for (slot, w) in new_windows.iter_mut().zip(rx.windows_mut()) {
        let w = w.expect("single segment");
        w.buf[w.head - 8..w.head].copy_from_slice(b"VXLANHDR");
        *slot = (w.head - 8, w.len + 8);
    }
    for (i, &(head, len)) in new_windows.iter().enumerate() {
        rx.set_window(i, head, len).unwrap();
    }
    for m in rx.drain() {
        tx.push(m).unwrap();
    }
    assert_eq!(txq.tx_burst(&mut tx), BURST_SIZE);
    assert_eq!(rxq.rx_burst(&mut rx), BURST_SIZE);
    for (seq, m) in rx.iter().enumerate() {
        assert_eq!(&m.data()[..8], b"VXLANHDR");
        assert_eq!(&m.data()[8..], &frame(seq as u16, 60 + seq)[..]);
    }
    rx.clear();

    let stats = port.stats().unwrap();
    assert_eq!(stats.tx_packets, 2 * BURST_SIZE as u64, "{stats:?}");
    assert_eq!(stats.rx_packets, 2 * BURST_SIZE as u64, "{stats:?}");
    let xstats = port.xstats().unwrap();
    assert!(
        xstats
            .iter()
            .any(|(name, value)| name == "rx_good_packets" && *value == 2 * BURST_SIZE as u64),
        "{xstats:?}"
    );

    // Fill the ring: what the device does not take stays with the caller.
    let mut sent = 0;
    let mut next_seq = 0u16;
    loop {
        while !tx.is_full() {
            tx.push(Mbuf::from_bytes(pool, &frame(next_seq, 64)).unwrap())
                .unwrap();
            next_seq += 1;
        }
        let n = txq.tx_burst(&mut tx);
        sent += n;
        if n < BURST_SIZE {
            break;
        }
    }
    assert_eq!(sent, RING_CAPACITY);
    assert_eq!(tx.len(), BURST_SIZE - RING_CAPACITY % BURST_SIZE);
    // The unsent ones are the last ones pushed, in order, untouched.
    let first_unsent = next_seq - tx.len() as u16;
    for (i, m) in tx.iter().enumerate() {
        assert_eq!(m.data(), &frame(first_unsent + i as u16, 64)[..]);
    }
    assert_eq!(
        pool.in_use() as usize,
        RING_CAPACITY + tx.len(),
        "the ring holds what was sent"
    );
    assert_eq!(txq.tx_burst(&mut tx), 0, "ring still full");

    // Drain the ring in order.
    let mut received = 0;
    loop {
        let n = rxq.rx_burst(&mut rx);
        if n == 0 {
            break;
        }
        for m in rx.drain() {
            assert_eq!(seq_of(m.data()), received as u16);
            received += 1;
        }
    }
    assert_eq!(received, RING_CAPACITY);
    drop(tx);
    assert_eq!(pool.in_use(), 0);
    let stats = port.stats().unwrap();
    let expected = (2 * BURST_SIZE + RING_CAPACITY) as u64;
    assert_eq!(
        stats.tx_packets, expected,
        "unsent ones are not counted: {stats:?}"
    );
    assert_eq!(stats.rx_packets, expected, "{stats:?}");

    // The pool stays referenced by the port: close only reports it.
    let handle = pool.clone();
    let err = handle.close().expect_err("port holds the pool");
    assert_eq!(err.errno(), libc::EBUSY);

    // Control operations wait for the queues to be given back.
    assert_eq!(
        port.configure(&config, pool).unwrap_err().errno(),
        libc::EBUSY
    );
    drop(rxq);
    drop(txq);
    port.stop().expect("stop");
    assert!(!port.link().unwrap().up);
    port.start().expect("restart");
    port.stop().expect("stop again");
    port.close().expect("close");
    assert!(
        Port::by_name("net_ring0").is_err(),
        "closed vdev is released"
    );
}

fn check_null_port(pool: &Mempool) {
    // The null PMD allocates from the pool on RX and frees on TX: it exercises the pool held by
    // the port and RSS configuration with several queues.
    let mut port = Port::by_name("net_null0").expect("vdev net_null0 was probed");
    let config = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        ..PortConfig::default()
    };
    port.configure(&config, pool).expect("configure null");
    port.start().expect("start null");
    let mut rxq = port.rx_queue(1).expect("rx queue 1");
    let mut txq = port.tx_queue(1).expect("tx queue 1");
    let mut burst: MbufBurst = MbufBurst::new();
    assert_eq!(rxq.rx_burst(&mut burst), BURST_SIZE);
    assert_eq!(pool.in_use(), BURST_SIZE as u32);
    assert!(burst.iter().all(|m| m.len() == 64));
    assert_eq!(txq.tx_burst(&mut burst), BURST_SIZE);
    assert_eq!(pool.in_use(), 0);
    let stats = port.stats().unwrap();
    assert_eq!(stats.rx_packets, BURST_SIZE as u64);
    assert_eq!(stats.tx_packets, BURST_SIZE as u64);

    // Dropping the port first: the queues keep the device running until they go.
    drop(port);
    assert_eq!(rxq.rx_burst(&mut burst), BURST_SIZE);
    burst.clear();
    drop(rxq);
    drop(txq);
    assert!(
        Port::by_name("net_null0").is_err(),
        "closed with its last queue"
    );
}

fn check_registered_thread(pool: &Mempool) {
    let pool = pool.clone();
    std::thread::spawn(move || {
        assert_eq!(lcore_id(), None);
        let id = thread_register().expect("register");
        assert_ne!(id, 0);
        assert_eq!(lcore_id(), Some(id));
        assert_eq!(
            thread_register().unwrap(),
            id,
            "registering twice keeps the id"
        );
        let mut burst: MbufBurst = MbufBurst::new();
        pool.alloc_burst(&mut burst, BURST_SIZE).unwrap();
        drop(burst);
        assert_eq!(pool.in_use(), 0);
        thread_unregister();
        assert_eq!(lcore_id(), None);
    })
    .join()
    .expect("worker thread");
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

/// The routes both DPDK tables are checked with: (address, depth, next hop).
fn test_routes() -> [(u32, u8, u32); 3] {
    [
        (ip(10, 0, 0, 0), 8, 1),
        (ip(10, 1, 0, 0), 16, 2),
        (ip(10, 1, 2, 3), 32, 3),
    ]
}

/// Addresses the bulk lookups are checked with: under the /32, the /16, the /8, and none.
/// The next hops: 3, 2, 1 and a miss.
fn test_addresses() -> [u32; 4] {
    [
        ip(10, 1, 2, 3),
        ip(10, 1, 2, 4),
        ip(10, 2, 0, 0),
        ip(192, 168, 0, 1),
    ]
}

fn check_rte_lpm() {
    let mut lpm = RteLpm::new("test_lpm", 1024, 256, None).expect("create lpm");
    for (addr, depth, hop) in test_routes() {
        lpm.add(addr, depth, hop).unwrap();
    }
    assert_eq!(lpm.lookup(ip(10, 9, 9, 9)), Some(1));
    assert_eq!(lpm.lookup(ip(10, 1, 9, 9)), Some(2));
    assert_eq!(lpm.lookup(ip(10, 1, 2, 3)), Some(3));
    assert_eq!(lpm.lookup(ip(10, 1, 2, 4)), Some(2));
    assert_eq!(lpm.lookup(ip(11, 0, 0, 0)), None);

    let ips = test_addresses();
    let mut hops = [0u32; 4];
    assert_eq!(lpm.lookup_bulk(&ips, &mut hops), 4);
    assert_eq!(hops, [3, 2, 1, LPM_MISS]);

    lpm.delete(ip(10, 1, 2, 3), 32).unwrap();
    assert_eq!(lpm.lookup(ip(10, 1, 2, 3)), Some(2));
    assert!(lpm.delete(ip(10, 1, 2, 3), 32).is_err());
    assert_eq!(
        lpm.add(ip(1, 0, 0, 0), 33, 1).unwrap_err().errno(),
        libc::EINVAL
    );
    assert_eq!(
        lpm.add(ip(1, 0, 0, 0), 8, 1 << 24).unwrap_err().errno(),
        libc::EINVAL
    );
    assert!(
        RteLpm::new("test_lpm", 16, 16, None).is_err(),
        "duplicate name"
    );
}

fn check_rte_fib() {
    let mut fib = RteFib::new("test_fib", 1024, 256, None).expect("create fib");
    for (addr, depth, hop) in test_routes() {
        fib.add(addr, depth, hop).unwrap();
    }
    let ips = test_addresses();
    let mut hops = [0u64; 4];
    assert_eq!(fib.lookup_bulk(&ips, &mut hops), 4);
    assert_eq!(hops, [3, 2, 1, u64::from(LPM_MISS)]);
    fib.delete(ip(10, 1, 0, 0), 16).unwrap();
    fib.lookup_bulk(&ips, &mut hops);
    assert_eq!(hops, [3, 1, 1, u64::from(LPM_MISS)]);
    assert_eq!(
        fib.add(ip(1, 0, 0, 0), 8, 1 << 31).unwrap_err().errno(),
        libc::EINVAL
    );
}
