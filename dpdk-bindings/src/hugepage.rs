//! Transparent huge pages for large tables allocated outside DPDK.

use std::io;

/// Asks the kernel to back the pages lying fully inside `[addr, addr + len)` with transparent
/// huge pages (`madvise(MADV_HUGEPAGE)`). Advisory: it changes no contents, and only 2 MiB
/// aligned stretches of the range can become huge pages. An empty range is `Ok`; memory that
/// is not mapped is an error (`ENOMEM`).
pub fn advise_hugepages(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = usize::try_from(page)
        .ok()
        .filter(|page| page.is_power_of_two())
        .ok_or_else(io::Error::last_os_error)?;
    let Some(start) = addr.checked_next_multiple_of(page) else {
        return Ok(());
    };
    let end = addr.saturating_add(len) & !(page - 1);
    if end <= start {
        return Ok(());
    }
    // SAFETY: MADV_HUGEPAGE only changes how the kernel may back the range; it never changes
    // memory contents or mappings, so it cannot break any reference, whoever owns the range.
    let ret =
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advises_a_heap_table() {
        let table = vec![0u64; 1 << 20];
        let addr = table.as_ptr() as usize;
        advise_hugepages(addr, table.len() * 8).unwrap();
        assert_eq!(table[0], 0);
    }

    #[test]
    fn empty_and_sub_page_ranges_are_fine() {
        let bytes = [0u8; 64];
        advise_hugepages(bytes.as_ptr() as usize, 0).unwrap();
        advise_hugepages(bytes.as_ptr() as usize, bytes.len()).unwrap();
        advise_hugepages(usize::MAX - 10, 100).unwrap();
    }

    #[test]
    fn unmapped_memory_is_an_error() {
        // The zero page is never mapped.
        assert!(advise_hugepages(0, 1 << 21).is_err());
    }
}
