//! A pool dropped with mbufs still in use is leaked, never freed, and EAL refuses to clean up
//! under it. A separate test binary: EAL can be initialised once per process.

use dpdk_bindings::{Eal, Mbuf, Mempool, DEFAULT_DATA_ROOM};

#[test]
fn pool_with_mbufs_out_is_leaked_not_freed() {
    let eal =
        Eal::init(&Eal::isolated_args("dpdk_bindings_mempool_leak", 128, &[])).expect("EAL init");

    let pool = Mempool::pktmbuf("leak_pool", 63, 0, DEFAULT_DATA_ROOM, None).unwrap();
    let mbuf = Mbuf::from_bytes(&pool, &[1, 2, 3]).unwrap();
    let err = pool.close().expect_err("an mbuf is still out");
    assert_eq!(err.errno(), libc::EBUSY);
    assert!(err.to_string().contains("1 mbufs in use"), "{err}");

    // The mbuf still points into the pool's memory, which must still be there.
    assert_eq!(mbuf.data(), &[1, 2, 3]);
    drop(mbuf);

    let err = eal.cleanup().expect_err("the leaked pool is still alive");
    assert_eq!(err.errno(), libc::EBUSY);
    assert!(err.to_string().contains("1 DPDK objects"), "{err}");
}
