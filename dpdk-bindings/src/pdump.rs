//! Packet capture by secondary processes (`rte_pdump`): what lets `dpdk-dumpcap` and
//! `dpdk-pdump` capture a running process's ports.
//!
//! [`Pdump::init`] makes this (primary) process answer capture requests: a secondary process
//! started with the same `--file-prefix` asks over EAL's multi-process channel, and the
//! primary adds RX/TX callbacks on the port that copy each packet into the secondary's
//! mempool and ring. The original packets go on unchanged; the copies cost the threads that
//! poll the port only while a capture runs. That channel needs a shared configuration: with
//! `--no-shconf` (which `--no-huge` implies here) or `--in-memory` no secondary can attach,
//! and initialisation fails with `ENOTSUP`.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::eal::{Eal, EalRef};
use crate::error::{Error, Result};
use crate::sys;

/// Set while a [`Pdump`] exists: DPDK's capture server is one per process.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// DPDK's capture server, on while this value lives. [`Eal::cleanup`] refuses while it does.
#[derive(Debug)]
pub struct Pdump {
    _eal: EalRef,
}

impl Pdump {
    /// Starts answering capture requests (`rte_pdump_init`). `EALREADY` if a `Pdump` exists,
    /// `ENOTSUP` when this process has no shared configuration.
    pub fn init(eal: &Eal) -> Result<Pdump> {
        const OP: &str = "rte_pdump_init";
        if !eal.shares_config() {
            return Err(Error::with_detail(
                OP,
                libc::ENOTSUP,
                "EAL runs without a shared configuration (--no-shconf, --no-huge or --in-memory): \
                 no secondary process can attach",
            ));
        }
        let eal_ref = EalRef::acquire(OP)?;
        if ACTIVE.swap(true, Ordering::AcqRel) {
            return Err(Error::with_detail(
                OP,
                libc::EALREADY,
                "the capture server is already on",
            ));
        }
        // SAFETY: EAL is running (an EalRef is held) and the flag above makes this the only
        // initialisation of the capture server in the process.
        if unsafe { sys::rte_pdump_init() } < 0 {
            ACTIVE.store(false, Ordering::Release);
            return Err(Error::from_rte_errno(OP));
        }
        Ok(Pdump { _eal: eal_ref })
    }
}

impl Drop for Pdump {
    fn drop(&mut self) {
        // SAFETY: the server was initialised by `init` and EAL still runs (self holds an
        // EalRef); rte_pdump_uninit unregisters the multi-process handler.
        unsafe { sys::rte_pdump_uninit() };
        ACTIVE.store(false, Ordering::Release);
    }
}
