//! The Environment Abstraction Layer: process-wide initialisation, clocks and lcore ids.
//!
//! DPDK allows one EAL per process, and `rte_eal_cleanup` unmaps all DPDK memory, so every
//! DPDK pointer dies with it. The process-wide [`Lifecycle`] enforces both rules: [`Eal::init`]
//! succeeds once per process, every object that owns DPDK memory ([`Mempool`](crate::Mempool),
//! [`Port`](crate::Port), [`RteLpm`](crate::RteLpm), ...) holds an [`EalRef`] while it lives, and
//! [`Eal::cleanup`] refuses to run while any is held.

use std::ffi::{c_char, CStr, CString};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};
use crate::sys;

/// Program name given to EAL as `argv[0]` (it names the process in DPDK's logs).
const PROGRAM_NAME: &str = "dvrd";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `rte_eal_init` has not succeeded (yet).
    Uninitialized,
    /// EAL is up: DPDK objects may be created.
    Running,
    /// `rte_eal_cleanup` ran: DPDK memory is gone and EAL cannot come back.
    CleanedUp,
}

/// Process-wide EAL state: the phase and how many DPDK objects are alive.
#[derive(Debug)]
struct Lifecycle {
    phase: Phase,
    live_objects: usize,
    /// EAL was given a shared configuration that secondary processes can attach to.
    shared_config: bool,
}

static LIFECYCLE: Mutex<Lifecycle> = Mutex::new(Lifecycle {
    phase: Phase::Uninitialized,
    live_objects: 0,
    shared_config: false,
});

/// EAL options after which the process shares no configuration: `--no-huge` implies
/// `--no-shconf` in DPDK 22.11, and `--in-memory` implies both.
const PRIVATE_CONFIG_OPTIONS: &[&str] = &["--no-shconf", "--no-huge", "--in-memory"];

fn lifecycle() -> MutexGuard<'static, Lifecycle> {
    // The state is two plain fields updated together: a panic elsewhere cannot tear them.
    LIFECYCLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Held by every object that owns DPDK memory, for as long as that memory may be referenced.
/// While one exists, EAL is running and [`Eal::cleanup`] refuses to unmap DPDK memory.
#[derive(Debug)]
pub(crate) struct EalRef(());

impl EalRef {
    /// Registers one more live DPDK object; fails with `ENODEV` unless EAL is running.
    pub(crate) fn acquire(op: &'static str) -> Result<EalRef> {
        let mut state = lifecycle();
        if state.phase != Phase::Running {
            return Err(Error::with_detail(
                op,
                libc::ENODEV,
                "EAL is not running (call Eal::init first)",
            ));
        }
        state.live_objects += 1;
        Ok(EalRef(()))
    }

    /// For memory that stays referenced forever (a mempool with mbufs still out): the object
    /// stays counted, so EAL is never cleaned up under it.
    pub(crate) fn leak(self) {
        std::mem::forget(self);
    }
}

impl Drop for EalRef {
    fn drop(&mut self) {
        lifecycle().live_objects -= 1;
    }
}

/// Proof that EAL was initialised in this process. Created once by [`Eal::init`]; its owner
/// (the main thread) ends DPDK with [`Eal::cleanup`].
///
/// Drop order: drop ports (and their queues), then mempools, mbufs and LPM tables, then call
/// [`Eal::cleanup`]. Cleanup refuses (`EBUSY`) while any of them is alive. Dropping an `Eal`
/// without calling `cleanup` leaves EAL running until the process exits, which is harmless.
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// EAL arguments for a process that shares nothing with other DPDK processes: one lcore
    /// (0), `memory_mb` MiB of ordinary memory (no hugepages), no PCI scan, no shared files,
    /// no telemetry socket, the file prefix `prefix`, and a `--vdev` per entry of `vdevs`.
    /// What tests and tools that run beside a router on the same machine want.
    pub fn isolated_args(prefix: &str, memory_mb: u32, vdevs: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["-l", "0", "--no-huge", "-m"].map(String::from).to_vec();
        args.push(memory_mb.to_string());
        args.extend(["--no-pci", "--no-shconf", "--no-telemetry"].map(String::from));
        args.push(format!("--file-prefix={prefix}"));
        args.extend(vdevs.iter().map(|v| format!("--vdev={v}")));
        args
    }

    /// Initialises EAL with `args` (EAL arguments only: the program name is supplied).
    ///
    /// Succeeds at most once per process; any later call returns an `EALREADY` error.
    /// Example (tests, no hugepages): `["--no-huge", "-m", "256", "--no-pci", "--in-memory",
    /// "--no-shconf", "--vdev=net_ring0"]`.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        let mut state = lifecycle();
        if state.phase != Phase::Uninitialized {
            return Err(Error::with_detail(
                "rte_eal_init",
                libc::EALREADY,
                "EAL can be initialised only once per process",
            ));
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        owned.push(
            CString::new(PROGRAM_NAME).map_err(|_| Error::new("rte_eal_init", libc::EINVAL))?,
        );
        for arg in args {
            let arg = arg.as_ref();
            let c_arg = CString::new(arg).map_err(|_| {
                Error::with_detail(
                    "rte_eal_init",
                    libc::EINVAL,
                    format!("NUL byte in argument {arg:?}"),
                )
            })?;
            owned.push(c_arg);
        }
        let argc = i32::try_from(owned.len())
            .map_err(|_| Error::with_detail("rte_eal_init", libc::E2BIG, "too many arguments"))?;
        // EAL permutes argv and may keep pointers into it: the strings and the array are leaked
        // on purpose (a few hundred bytes, once per process).
        let argv: &'static mut [*mut c_char] =
            Vec::leak(owned.into_iter().map(CString::into_raw).collect());

        // SAFETY: argv holds argc valid NUL-terminated strings that are never freed; the
        // lifecycle lock serialises initialisation, and the phase check above guarantees EAL
        // was not initialised by this crate before.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(Error::from_rte_errno("rte_eal_init"));
        }
        state.phase = Phase::Running;
        state.shared_config = Eal::args_share_config(args);
        Ok(Eal { _private: () })
    }

    /// TSC ticks per second (`rte_get_tsc_hz`).
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: EAL is initialised (self exists), and the call only reads its configuration.
        unsafe { sys::rte_get_tsc_hz() }
    }

    /// The lcore id of the main thread (`rte_get_main_lcore`).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: EAL is initialised; the call reads its configuration.
        unsafe { sys::rte_get_main_lcore() }
    }

    /// How many lcores EAL was given (`rte_lcore_count`).
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: EAL is initialised; the call reads its configuration.
        unsafe { sys::rte_lcore_count() }
    }

    /// True unless `args` (EAL arguments) run EAL without a shared configuration: with
    /// `--no-huge`, `--no-shconf` or `--in-memory`.
    pub fn args_share_config<S: AsRef<str>>(args: &[S]) -> bool {
        !args
            .iter()
            .any(|a| PRIVATE_CONFIG_OPTIONS.contains(&a.as_ref()))
    }

    /// True when secondary processes with the same `--file-prefix` (`dpdk-dumpcap`,
    /// `dpdk-proc-info`) can attach: EAL runs with hugepages and a shared configuration
    /// (none of `--no-huge`, `--no-shconf`, `--in-memory`).
    pub fn shares_config(&self) -> bool {
        lifecycle().shared_config
    }

    /// The folder of this process's runtime files (`/var/run/dpdk/<file-prefix>` for root):
    /// the telemetry socket, the shared configuration, the multi-process socket.
    pub fn runtime_dir(&self) -> std::path::PathBuf {
        // SAFETY: EAL is initialised; the call returns a pointer to a static NUL-terminated
        // string that EAL set at init and never changes.
        let dir = unsafe { CStr::from_ptr(sys::rte_eal_get_runtime_dir()) };
        std::path::PathBuf::from(dir.to_string_lossy().into_owned())
    }

    /// DPDK's version string, e.g. `"DPDK 22.11.11"`.
    pub fn version(&self) -> &'static str {
        // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(sys::rte_version()) };
        version.to_str().unwrap_or("DPDK (unknown version)")
    }

    /// Ends DPDK in this process (`rte_eal_cleanup`): all DPDK memory is released.
    ///
    /// Refuses with `EBUSY`, and leaves EAL running, while any mempool, port, queue or LPM
    /// table of this crate is alive (a mempool dropped with mbufs still in use stays alive
    /// forever). EAL cannot be initialised again in this process afterwards.
    pub fn cleanup(self) -> Result<()> {
        let mut state = lifecycle();
        if state.live_objects != 0 {
            return Err(Error::with_detail(
                "rte_eal_cleanup",
                libc::EBUSY,
                format!("{} DPDK objects are still alive", state.live_objects),
            ));
        }
        state.phase = Phase::CleanedUp;
        // SAFETY: no object of this crate references DPDK memory (live_objects is 0, and every
        // owner of DPDK memory holds an EalRef), and the lock keeps new ones from being created.
        let ret = unsafe { sys::rte_eal_cleanup() };
        if ret < 0 {
            return Err(Error::from_rte_errno("rte_eal_cleanup"));
        }
        Ok(())
    }
}

/// Reads the CPU's time-stamp counter (`rdtsc`): a few cycles, no serialisation.
/// Convert with [`Eal::tsc_hz`].
#[inline]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc is available on every x86_64 CPU and only reads the counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: rte_rdtsc only reads the cycle counter register.
        unsafe { sys::rte_rdtsc() }
    }
}

/// The calling thread's lcore id, or `None` for a thread that is neither an EAL thread nor
/// registered with [`thread_register`].
#[inline]
pub fn lcore_id() -> Option<u32> {
    // SAFETY: rte_lcore_id reads a thread-local of the calling thread (LCORE_ID_ANY when unset).
    let id = unsafe { sys::rte_lcore_id() };
    (id != sys::LCORE_ID_ANY).then_some(id)
}

/// Registers the calling (non-EAL) thread with EAL and returns its lcore id, so that the
/// per-lcore mempool caches serve it. A thread that already has an lcore id keeps it.
pub fn thread_register() -> Result<u32> {
    if let Some(id) = lcore_id() {
        return Ok(id);
    }
    let state = lifecycle();
    if state.phase != Phase::Running {
        return Err(Error::with_detail(
            "rte_thread_register",
            libc::ENODEV,
            "EAL is not running",
        ));
    }
    // SAFETY: EAL is running (checked under the lock, which also keeps cleanup away), and the
    // calling thread has no lcore id yet.
    let ret = unsafe { sys::rte_thread_register() };
    drop(state);
    if ret < 0 {
        return Err(Error::from_rte_errno("rte_thread_register"));
    }
    lcore_id().ok_or_else(|| Error::new("rte_thread_register", libc::ENOMEM))
}

/// Gives back the lcore id of a thread registered with [`thread_register`]. Does nothing for
/// EAL threads, unregistered threads, or once EAL is no longer running.
pub fn thread_unregister() {
    let state = lifecycle();
    if state.phase == Phase::Running {
        // SAFETY: EAL is running; rte_thread_unregister releases only an lcore id that was
        // allocated to a non-EAL thread and ignores any other thread.
        unsafe { sys::rte_thread_unregister() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_cannot_be_created_before_init() {
        let err = EalRef::acquire("rte_pktmbuf_pool_create").unwrap_err();
        assert_eq!(err.errno(), libc::ENODEV);
        assert!(thread_register().is_err());
        assert_eq!(lcore_id(), None);
    }

    #[test]
    fn tsc_advances() {
        let first = tsc();
        let second = tsc();
        assert!(second >= first);
    }
}
