//! Ethernet ports (`rte_ethdev`) and their RX/TX queues.
//!
//! A [`Port`] is the control handle of one device: configure, start, stop, close, stats. Its
//! queues are handed out once each, after start, as [`RxQueue`] and [`TxQueue`] (one per
//! worker thread). The port is shared with its queues, and the operations that would pull the
//! rings from under a running queue (configure, start, stop, close) fail with `EBUSY` while any
//! queue handle is alive. The device is stopped and closed when the port and all its queue
//! handles are gone.

use std::cell::Cell;
use std::ffi::{c_char, CStr};
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::burst::MbufBurst;
use crate::eal::EalRef;
use crate::error::{c_name, check, Error, Result};
use crate::mempool::Mempool;
use crate::sys;

/// Interval between link polls in [`Port::wait_link_up`].
const LINK_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Most ports EAL can hold (`RTE_MAX_ETHPORTS`).
const MAX_PORTS: usize = sys::RTE_MAX_ETHPORTS as usize;

/// The hash functions asked of RSS with several RX queues: IPv4/IPv6 addresses and UDP/TCP
/// ports (`RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP | RTE_ETH_RSS_TCP`, checked in `csrc/shim.c`).
const RSS_HASH_FUNCTIONS: u64 = 0x3_afbc;

/// Offload flags for [`PortConfig::rx_offloads`] and [`PortConfig::tx_offloads`]
/// (`RTE_ETH_RX_OFFLOAD_*`, `RTE_ETH_TX_OFFLOAD_*`; values checked in `csrc/shim.c`).
pub mod offload {
    /// RX: verify IPv4 header checksums.
    pub const RX_IPV4_CKSUM: u64 = 1 << 1;
    /// RX: verify UDP checksums.
    pub const RX_UDP_CKSUM: u64 = 1 << 2;
    /// RX: verify TCP checksums.
    pub const RX_TCP_CKSUM: u64 = 1 << 3;
    /// RX: deliver the RSS hash in the mbuf.
    pub const RX_RSS_HASH: u64 = 1 << 19;
    /// TX: compute IPv4 header checksums.
    pub const TX_IPV4_CKSUM: u64 = 1 << 1;
    /// TX: compute UDP checksums.
    pub const TX_UDP_CKSUM: u64 = 1 << 2;
    /// TX: compute TCP checksums.
    pub const TX_TCP_CKSUM: u64 = 1 << 3;
    /// TX: accept multi-segment mbufs.
    pub const TX_MULTI_SEGS: u64 = 1 << 15;
    /// TX: all mbufs of a queue come from one pool and have refcnt 1 (faster free).
    pub const TX_MBUF_FAST_FREE: u64 = 1 << 16;
}

/// DPDK's port number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How to set up a port ([`Port::configure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Number of RX queues (several: RSS spreads flows over them where the device can).
    pub rx_queues: u16,
    /// Number of TX queues.
    pub tx_queues: u16,
    /// Descriptors per RX queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Descriptors per TX queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// MTU in bytes; `None`: the device's default (1500 where it can).
    pub mtu: Option<u16>,
    /// Receive every frame whatever its destination MAC (ignored by devices that always do).
    pub promiscuous: bool,
    /// Requested RX offloads ([`offload`]); those the device lacks are dropped.
    pub rx_offloads: u64,
    /// Requested TX offloads ([`offload`]); those the device lacks are dropped.
    pub tx_offloads: u64,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: None,
            promiscuous: true,
            rx_offloads: 0,
            tx_offloads: 0,
        }
    }
}

/// What a device can do (`rte_eth_dev_info_get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Driver name, e.g. `net_ring`.
    pub driver: String,
    /// Most RX queues.
    pub max_rx_queues: u16,
    /// Most TX queues.
    pub max_tx_queues: u16,
    /// RX offloads the device supports ([`offload`]).
    pub rx_offload_capa: u64,
    /// TX offloads the device supports ([`offload`]).
    pub tx_offload_capa: u64,
    /// Smallest MTU.
    pub min_mtu: u16,
    /// Largest MTU.
    pub max_mtu: u16,
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Whether the link is up.
    pub up: bool,
    /// Speed in Mbit/s; 0 when down or unknown.
    pub speed_mbps: u32,
    /// Whether the link is full duplex.
    pub full_duplex: bool,
}

/// Basic device counters since start or the last [`Port::stats_reset`] (`rte_eth_stats_get`).
/// What a virtual device counts varies (some count no bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets dropped by the device because RX queues were full.
    pub rx_missed: u64,
    /// Erroneous packets received.
    pub rx_errors: u64,
    /// Packets the device failed to send.
    pub tx_errors: u64,
    /// RX failures for want of mbufs.
    pub rx_nombuf: u64,
}

/// Ports claimed by a live `Port`, so that no two handles drive one device.
static CLAIMED: Mutex<[bool; MAX_PORTS]> = Mutex::new([false; MAX_PORTS]);

fn claim(id: PortId) -> Result<()> {
    let mut claimed = CLAIMED.lock().unwrap_or_else(PoisonError::into_inner);
    match claimed.get_mut(usize::from(id.0)) {
        Some(slot) if !*slot => {
            *slot = true;
            Ok(())
        }
        Some(_) => Err(Error::with_detail(
            "claim port",
            libc::EBUSY,
            format!("port {id} already has a handle"),
        )),
        None => Err(Error::new("claim port", libc::ENODEV)),
    }
}

fn unclaim(id: PortId) {
    let mut claimed = CLAIMED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(slot) = claimed.get_mut(usize::from(id.0)) {
        *slot = false;
    }
}

/// What the port and its queue handles share. Dropped with the last of them: stops and closes
/// the device, then releases the pool.
#[derive(Debug)]
struct PortState {
    id: PortId,
    started: bool,
    /// Queues set up by the last successful configure: (rx, tx).
    queues: Option<(u16, u16)>,
    promiscuous: bool,
    /// The pool the RX queues allocate from: kept alive as long as the device may use it.
    pool: Option<Mempool>,
    _eal: EalRef,
}

impl PortState {
    fn stop(&mut self) -> Result<()> {
        if self.started {
            // SAFETY: the port id is valid (claimed) and no queue handle is alive (the caller
            // holds the only reference to this state), so no thread is polling its queues.
            check("rte_eth_dev_stop", unsafe {
                sys::rte_eth_dev_stop(self.id.0)
            })?;
            self.started = false;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        self.stop()?;
        if self.queues.take().is_some() {
            // SAFETY: as in stop(); the device is stopped.
            check("rte_eth_dev_close", unsafe {
                sys::rte_eth_dev_close(self.id.0)
            })?;
        }
        Ok(())
    }
}

impl Drop for PortState {
    fn drop(&mut self) {
        // Best effort: nobody is left to report to. The pool (a field) is released after the
        // device stopped using it.
        let _ = self.close();
        unclaim(self.id);
    }
}

/// Control handle of one Ethernet device. Send but not Sync: DPDK's control functions are not
/// thread-safe, so one thread at a time drives a port.
#[derive(Debug)]
pub struct Port {
    state: Arc<PortState>,
    rx_taken: Vec<bool>,
    tx_taken: Vec<bool>,
    _not_sync: PhantomData<Cell<()>>,
}

impl Port {
    /// The device called `name` (`rte_eth_dev_get_port_by_name`): a vdev name from an EAL
    /// `--vdev` argument such as `net_ring0`, or a PCI address. `EBUSY` when another `Port`
    /// handle for it is alive.
    pub fn by_name(name: &str) -> Result<Port> {
        const OP: &str = "rte_eth_dev_get_port_by_name";
        let c_name = c_name(OP, name)?;
        let eal = EalRef::acquire(OP)?;
        let mut id = 0u16;
        // SAFETY: EAL is running; c_name is a valid C string and id a valid out pointer.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut id) };
        check(OP, ret).map_err(|err| err.detail(format!("no port named {name:?}")))?;
        let id = PortId(id);
        claim(id)?;
        Ok(Port {
            state: Arc::new(PortState {
                id,
                started: false,
                queues: None,
                promiscuous: false,
                pool: None,
                _eal: eal,
            }),
            rx_taken: Vec::new(),
            tx_taken: Vec::new(),
            _not_sync: PhantomData,
        })
    }

    /// The port's number.
    pub fn id(&self) -> PortId {
        self.state.id
    }

    /// What the device can do.
    pub fn info(&self) -> Result<PortInfo> {
        let info = self.raw_info()?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null driver_name points at the driver's static NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(PortInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rx_offload_capa: info.rx_offload_capa,
            tx_offload_capa: info.tx_offload_capa,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
        })
    }

    /// Configures the device and sets up its queues, the RX ones allocating from `pool`
    /// (which the port keeps alive). Requested offloads are masked with the device's
    /// capabilities; RSS is enabled for several RX queues where the device hashes.
    /// `EBUSY` while started or while queue handles are alive.
    pub fn configure(&mut self, config: &PortConfig, pool: &Mempool) -> Result<()> {
        let info = self.raw_info()?;
        let id = self.id();
        let state = self.exclusive_state("rte_eth_dev_configure")?;
        if state.started {
            return Err(Error::with_detail(
                "rte_eth_dev_configure",
                libc::EBUSY,
                "stop the port first",
            ));
        }

        let mut conf = sys::rte_eth_conf::default();
        conf.rxmode.mtu = config.mtu.map_or(0, u32::from);
        conf.rxmode.offloads = config.rx_offloads & info.rx_offload_capa;
        conf.txmode.offloads = config.tx_offloads & info.tx_offload_capa;
        let rss_hf = RSS_HASH_FUNCTIONS & info.flow_type_rss_offloads;
        if config.rx_queues > 1 && rss_hf != 0 {
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        let asked = format!(
            "port {id}: {} rx queues, {} tx queues (device max {}/{}), mtu {:?}",
            config.rx_queues, config.tx_queues, info.max_rx_queues, info.max_tx_queues, config.mtu
        );
        // Forget the previous setup first: a failed configure leaves the device unconfigured.
        state.queues = None;
        // SAFETY: the device is stopped and no queue handle is alive (exclusive_state); conf
        // is a fully initialised configuration that DPDK copies.
        let ret =
            unsafe { sys::rte_eth_dev_configure(id.0, config.rx_queues, config.tx_queues, &conf) };
        check("rte_eth_dev_configure", ret).map_err(|err| err.detail(asked))?;

        let (mut rx_desc, mut tx_desc) = (config.rx_desc, config.tx_desc);
        // SAFETY: the port is configured; both pointers are valid for the call.
        let ret =
            unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id.0, &mut rx_desc, &mut tx_desc) };
        check("rte_eth_dev_adjust_nb_rx_tx_desc", ret)?;

        // SAFETY: the port id is valid.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id.0) };
        // DPDK's queue setup takes the socket as unsigned; SOCKET_ID_ANY (-1) wraps on purpose.
        let socket = socket as u32;
        for queue in 0..config.rx_queues {
            // SAFETY: the port is configured with more than `queue` RX queues and stopped; a
            // null rxconf selects the device defaults; the pool outlives the queue (kept in
            // the state below, which closes the device before releasing the pool).
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(
                    id.0,
                    queue,
                    rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.raw(),
                )
            };
            check("rte_eth_rx_queue_setup", ret).map_err(|err| {
                err.detail(format!("port {id} rx queue {queue}, {rx_desc} descriptors"))
            })?;
        }
        for queue in 0..config.tx_queues {
            // SAFETY: the port is configured with more than `queue` TX queues and stopped; a
            // null txconf selects the device defaults.
            let ret = unsafe {
                sys::rte_eth_tx_queue_setup(id.0, queue, tx_desc, socket, std::ptr::null())
            };
            check("rte_eth_tx_queue_setup", ret).map_err(|err| {
                err.detail(format!("port {id} tx queue {queue}, {tx_desc} descriptors"))
            })?;
        }

        state.queues = Some((config.rx_queues, config.tx_queues));
        state.promiscuous = config.promiscuous;
        state.pool = Some(pool.clone());
        self.rx_taken = vec![false; usize::from(config.rx_queues)];
        self.tx_taken = vec![false; usize::from(config.tx_queues)];
        Ok(())
    }

    /// Starts the device (and promiscuous mode if configured). `EINVAL` before configure,
    /// `EBUSY` while queue handles are alive.
    pub fn start(&mut self) -> Result<()> {
        const OP: &str = "rte_eth_dev_start";
        let state = self.exclusive_state(OP)?;
        if state.queues.is_none() {
            return Err(Error::with_detail(
                OP,
                libc::EINVAL,
                "configure the port first",
            ));
        }
        if state.started {
            return Ok(());
        }
        // SAFETY: the port is configured with all queues set up, and no queue handle is alive.
        check(OP, unsafe { sys::rte_eth_dev_start(state.id.0) })?;
        state.started = true;
        if state.promiscuous {
            // SAFETY: the port is started.
            let ret = unsafe { sys::rte_eth_promiscuous_enable(state.id.0) };
            // Virtual devices without a MAC filter do not implement it: they take everything.
            if ret != -libc::ENOTSUP {
                check("rte_eth_promiscuous_enable", ret)?;
            }
        }
        Ok(())
    }

    /// Stops the device; its queues keep their setup for a later start. `EBUSY` while queue
    /// handles are alive.
    pub fn stop(&mut self) -> Result<()> {
        self.exclusive_state("rte_eth_dev_stop")?.stop()
    }

    /// Stops and closes the device, reporting errors (dropping the port does the same,
    /// silently). `EBUSY` while queue handles are alive: the device is then closed when the
    /// last of them is dropped.
    pub fn close(mut self) -> Result<()> {
        self.exclusive_state("rte_eth_dev_close")?.close()
    }

    /// Hands out RX queue `queue`, once per configure. `EINVAL` unless the port is started and
    /// the queue exists, `EBUSY` when it was already handed out.
    pub fn rx_queue(&mut self, queue: u16) -> Result<RxQueue> {
        self.queue("rx_queue", queue, Direction::Rx)
    }

    /// Hands out TX queue `queue`, once per configure. `EINVAL` unless the port is started and
    /// the queue exists, `EBUSY` when it was already handed out.
    pub fn tx_queue(&mut self, queue: u16) -> Result<TxQueue> {
        self.queue("tx_queue", queue, Direction::Tx)
    }

    /// The link state, without waiting.
    pub fn link(&self) -> Result<Link> {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: the port id is valid; link is a valid out pointer.
        check("rte_eth_link_get_nowait", unsafe {
            sys::rte_eth_link_get_nowait(self.id().0, &mut link)
        })?;
        let speed = link.link_speed;
        Ok(Link {
            up: u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP,
            speed_mbps: if speed == sys::RTE_ETH_SPEED_NUM_UNKNOWN {
                0
            } else {
                speed
            },
            full_duplex: u32::from(link.link_duplex()) == sys::RTE_ETH_LINK_FULL_DUPLEX,
        })
    }

    /// Polls the link until it is up; `ETIMEDOUT` after `timeout`.
    pub fn wait_link_up(&self, timeout: Duration) -> Result<Link> {
        let deadline = Instant::now() + timeout;
        loop {
            let link = self.link()?;
            if link.up {
                return Ok(link);
            }
            if Instant::now() >= deadline {
                return Err(Error::with_detail(
                    "wait_link_up",
                    libc::ETIMEDOUT,
                    format!("port {} link still down after {timeout:?}", self.id()),
                ));
            }
            std::thread::sleep(LINK_POLL_INTERVAL);
        }
    }

    /// The basic device counters.
    pub fn stats(&self) -> Result<PortStats> {
        let mut stats = sys::rte_eth_stats::default();
        // SAFETY: the port id is valid; stats is a valid out pointer.
        check("rte_eth_stats_get", unsafe {
            sys::rte_eth_stats_get(self.id().0, &mut stats)
        })?;
        Ok(PortStats {
            rx_packets: stats.ipackets,
            tx_packets: stats.opackets,
            rx_bytes: stats.ibytes,
            tx_bytes: stats.obytes,
            rx_missed: stats.imissed,
            rx_errors: stats.ierrors,
            tx_errors: stats.oerrors,
            rx_nombuf: stats.rx_nombuf,
        })
    }

    /// Resets the basic device counters.
    pub fn stats_reset(&mut self) -> Result<()> {
        // SAFETY: the port id is valid.
        check("rte_eth_stats_reset", unsafe {
            sys::rte_eth_stats_reset(self.id().0)
        })?;
        Ok(())
    }

    /// The device's extended counters, by name (`rte_eth_xstats_get`). Allocates: control
    /// path only.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>> {
        let id = self.id().0;
        // SAFETY: a null array with size 0 asks for the number of counters.
        let count = check("rte_eth_xstats_get_names", unsafe {
            sys::rte_eth_xstats_get_names(id, std::ptr::null_mut(), 0)
        })?;
        let count = usize::try_from(count).unwrap_or(0);
        let mut names = vec![sys::rte_eth_xstat_name::default(); count];
        let mut values = vec![sys::rte_eth_xstat::default(); count];
        let size =
            u32::try_from(count).map_err(|_| Error::new("rte_eth_xstats_get", libc::E2BIG))?;
        // SAFETY: names has room for `size` entries.
        let got_names = check("rte_eth_xstats_get_names", unsafe {
            sys::rte_eth_xstats_get_names(id, names.as_mut_ptr(), size)
        })?;
        // SAFETY: values has room for `size` entries.
        let got_values = check("rte_eth_xstats_get", unsafe {
            sys::rte_eth_xstats_get(id, values.as_mut_ptr(), size)
        })?;
        if got_names != got_values || usize::try_from(got_values).ok() != Some(count) {
            // The set of counters changed between the calls.
            return Err(Error::new("rte_eth_xstats_get", libc::EAGAIN));
        }
        let xstats = values
            .iter()
            .filter_map(|value| {
                let name = names.get(usize::try_from(value.id).ok()?)?;
                Some((c_chars_to_string(&name.name), value.value))
            })
            .collect();
        Ok(xstats)
    }

    /// The device's MAC address.
    pub fn mac_addr(&self) -> Result<[u8; 6]> {
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: the port id is valid; addr is a valid out pointer.
        check("rte_eth_macaddr_get", unsafe {
            sys::rte_eth_macaddr_get(self.id().0, &mut addr)
        })?;
        Ok(addr.addr_bytes)
    }

    /// Changes the MTU (`rte_eth_dev_set_mtu`); some devices accept it only while stopped.
    pub fn set_mtu(&mut self, mtu: u16) -> Result<()> {
        // SAFETY: the port id is valid; DPDK validates the value against the device limits.
        check("rte_eth_dev_set_mtu", unsafe {
            sys::rte_eth_dev_set_mtu(self.id().0, mtu)
        })
        .map_err(|err| err.detail(format!("port {} mtu {mtu}", self.id())))?;
        Ok(())
    }

    fn raw_info(&self) -> Result<sys::rte_eth_dev_info> {
        let mut info = MaybeUninit::<sys::rte_eth_dev_info>::zeroed();
        // SAFETY: the port id is valid; info is a valid out pointer that DPDK fills.
        check("rte_eth_dev_info_get", unsafe {
            sys::rte_eth_dev_info_get(self.id().0, info.as_mut_ptr())
        })?;
        // SAFETY: zero is a valid value for every field, and DPDK filled the structure.
        Ok(unsafe { info.assume_init() })
    }

    /// The shared state, mutably: `EBUSY` while a queue handle holds it.
    fn exclusive_state(&mut self, op: &'static str) -> Result<&mut PortState> {
        let handles = Arc::strong_count(&self.state) - 1;
        Arc::get_mut(&mut self.state).ok_or_else(|| {
            Error::with_detail(
                op,
                libc::EBUSY,
                format!("{handles} queue handles are still alive"),
            )
        })
    }

    fn queue<D>(&mut self, op: &'static str, queue: u16, dir: Direction) -> Result<Queue<D>> {
        let state = self.take_queue(op, queue, dir)?;
        Ok(Queue {
            port: self.id().0,
            queue,
            _state: state,
            _direction: PhantomData,
        })
    }

    fn take_queue(
        &mut self,
        op: &'static str,
        queue: u16,
        dir: Direction,
    ) -> Result<Arc<PortState>> {
        if !self.state.started {
            return Err(Error::with_detail(op, libc::EINVAL, "start the port first"));
        }
        let taken = match dir {
            Direction::Rx => &mut self.rx_taken,
            Direction::Tx => &mut self.tx_taken,
        };
        match taken.get_mut(usize::from(queue)) {
            None => Err(Error::with_detail(
                op,
                libc::EINVAL,
                format!("no queue {queue}"),
            )),
            Some(true) => Err(Error::with_detail(
                op,
                libc::EBUSY,
                format!("queue {queue} already handed out"),
            )),
            Some(slot) => {
                *slot = true;
                Ok(Arc::clone(&self.state))
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    Rx,
    Tx,
}

/// One queue of a started port, for one thread: an [`RxQueue`] or a [`TxQueue`]. Not Clone:
/// DPDK's RX and TX functions are not thread-safe per queue.
#[derive(Debug)]
pub struct Queue<D> {
    port: u16,
    queue: u16,
    /// Keeps the port started and configured while this handle lives.
    _state: Arc<PortState>,
    _direction: PhantomData<D>,
}

/// The direction of an [`RxQueue`].
#[derive(Debug)]
pub enum Rx {}

/// The direction of a [`TxQueue`].
#[derive(Debug)]
pub enum Tx {}

/// One RX queue of a started port, for one thread.
pub type RxQueue = Queue<Rx>;

/// One TX queue of a started port, for one thread.
pub type TxQueue = Queue<Tx>;

impl<D> Queue<D> {
    /// The port this queue belongs to.
    pub fn port(&self) -> PortId {
        PortId(self.port)
    }

    /// The queue number.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

/// `n` mbufs as DPDK's burst count; `None` for none (nothing to do) or more than `u16::MAX`
/// (a burst never holds that many).
#[inline(always)]
fn burst_count(n: usize) -> Option<u16> {
    u16::try_from(n).ok().filter(|&n| n != 0)
}

impl Queue<Rx> {
    /// Receives up to the free space of `burst` and appends the packets; returns how many.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        let Some(free) = burst_count(burst.spare_capacity()) else {
            return 0;
        };
        // SAFETY: the port is started with this queue set up and stays so while this handle
        // lives (its state cannot be stopped or reconfigured); this handle is the queue's only
        // user (&mut self, not Clone); the spare slots have room for `free` pointers, and the
        // PMD writes at most that many valid mbufs whose ownership passes to us.
        let received =
            unsafe { sys::rte_eth_rx_burst(self.port, self.queue, burst.spare_ptr(), free) };
        let received = usize::from(received.min(free));
        // SAFETY: the PMD initialised `received` slots after the current length.
        unsafe { burst.set_len(burst.len() + received) };
        received
    }
}

impl Queue<Tx> {
    /// Sends from the front of `burst` and removes what the device took; returns how many.
    /// What was not sent stays in `burst`, in order, with the caller (retry or drop it).
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        let Some(len) = burst_count(burst.len()) else {
            return 0;
        };
        // SAFETY: as in RxQueue::rx_burst for the queue; the first `len` slots hold owned
        // mbufs, and the PMD takes ownership of the first `sent` of them.
        let sent = unsafe { sys::rte_eth_tx_burst(self.port, self.queue, burst.raw_ptr(), len) };
        let sent = usize::from(sent.min(len));
        burst.forget_front(sent);
        sent
    }
}

/// A NUL-terminated C string in a fixed array, as an owned String.
fn c_chars_to_string(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c.to_ne_bytes()[0])
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
