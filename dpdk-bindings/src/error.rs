//! The crate's error type: which DPDK operation failed, its errno and DPDK's text for it.
//!
//! Errors are built once, where a DPDK call returns, and carry no allocation unless a detail
//! was added (only on control paths), so returning one from a per-packet call is cheap. The
//! arguments that can be refused before a call (a name with a NUL byte, a socket out of
//! range) are converted here too, so that every constructor reports them alike.

use std::ffi::{c_int, CStr, CString};

use crate::sys;

/// Result of a fallible DPDK operation.
pub type Result<T> = std::result::Result<T, Error>;

/// A DPDK operation failed: `{op}: {rte_strerror(errno)} (errno {errno})[: {detail}]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {} (errno {errno}){}", strerror(.errno), detail_suffix(.detail))]
pub struct Error {
    op: &'static str,
    errno: i32,
    detail: String,
}

impl Error {
    /// An error of `op` with a positive errno value.
    pub(crate) fn new(op: &'static str, errno: i32) -> Error {
        Error {
            op,
            errno,
            detail: String::new(),
        }
    }

    /// An error of `op` with a positive errno value and a sentence about what was asked.
    pub(crate) fn with_detail(op: &'static str, errno: i32, detail: impl Into<String>) -> Error {
        Error {
            op,
            errno,
            detail: detail.into(),
        }
    }

    /// An error of `op` carrying the calling thread's `rte_errno`.
    pub(crate) fn from_rte_errno(op: &'static str) -> Error {
        Error::new(op, rte_errno())
    }

    /// Adds (or replaces) the sentence about what was asked.
    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Error {
        self.detail = detail.into();
        self
    }

    /// The operation that failed, usually the name of the DPDK function.
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The (positive) errno value, as DPDK reported it.
    pub fn errno(&self) -> i32 {
        self.errno
    }
}

/// Turns a DPDK return value (`>= 0` success, `-errno` failure) into a `Result`.
#[inline]
pub(crate) fn check(op: &'static str, ret: c_int) -> Result<c_int> {
    if ret < 0 {
        Err(Error::new(op, ret.saturating_neg()))
    } else {
        Ok(ret)
    }
}

/// `name` as the C string DPDK takes: `EINVAL` for a NUL byte inside it.
pub(crate) fn c_name(op: &'static str, name: &str) -> Result<CString> {
    CString::new(name)
        .map_err(|_| Error::with_detail(op, libc::EINVAL, format!("NUL byte in {name:?}")))
}

/// DPDK's `int socket_id` argument for an optional NUMA socket.
pub(crate) fn socket_arg(op: &'static str, socket: Option<u32>) -> Result<i32> {
    match socket {
        None => Ok(sys::SOCKET_ID_ANY),
        Some(id) => i32::try_from(id)
            .map_err(|_| Error::with_detail(op, libc::EINVAL, format!("socket {id}"))),
    }
}

/// The calling thread's `rte_errno`.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: the shim only reads a thread-local integer of the calling thread.
    unsafe { sys::dvrb_errno() }
}

/// DPDK's text for an errno value (`rte_strerror`), which also knows DPDK's own codes.
fn strerror(errno: &i32) -> String {
    // SAFETY: rte_strerror accepts any value and returns a NUL-terminated string that stays
    // valid until the next call on this thread; it is copied before returning.
    unsafe { CStr::from_ptr(sys::rte_strerror(*errno)) }
        .to_string_lossy()
        .into_owned()
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_operation_errno_and_text() {
        let err = Error::new("rte_eth_dev_configure", libc::EINVAL);
        assert_eq!(err.op(), "rte_eth_dev_configure");
        assert_eq!(err.errno(), libc::EINVAL);
        assert_eq!(
            err.to_string(),
            "rte_eth_dev_configure: Invalid argument (errno 22)"
        );
    }

    #[test]
    fn detail_is_appended() {
        let err = Error::with_detail("rte_pktmbuf_pool_create", libc::EEXIST, "pool \"rx\"");
        assert_eq!(
            err.to_string(),
            "rte_pktmbuf_pool_create: File exists (errno 17): pool \"rx\""
        );
    }

    #[test]
    fn check_maps_negative_returns() {
        assert_eq!(check("op", 3), Ok(3));
        assert_eq!(
            check("op", -libc::ENODEV).unwrap_err().errno(),
            libc::ENODEV
        );
    }
}
