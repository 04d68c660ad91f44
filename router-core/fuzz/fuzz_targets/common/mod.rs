//! What every fuzz target of a packet view does: wrap the input with `new_checked`, call every
//! getter, and call the setters on a writable copy checked the same way. A target names its
//! view and lists its getters and setters; the checks particular to the view are its own.
#![allow(dead_code)]

/// Calls each method on `view` and hands the result to [`std::hint::black_box`], so that no
/// call is optimised away: after a successful `check_len` none of them may panic.
macro_rules! read_all {
    ($view:expr => $($getter:ident),+ $(,)?) => {
        $( std::hint::black_box($view.$getter()); )+
    };
}

/// Calls each setter on `view` with its value: after a successful `check_len` none of them
/// may panic.
macro_rules! write_all {
    ($view:expr => $($setter:ident($value:expr)),+ $(,)?) => {
        $( $view.$setter($value); )+
    };
}

/// The input as a view, if `new_checked` accepts it.
pub fn checked<'a, V, E>(data: &'a [u8], new_checked: fn(&'a [u8]) -> Result<V, E>) -> Option<V> {
    new_checked(data).ok()
}

/// A writable copy of `data` as a view; `data` was checked already, so the copy checks too.
pub fn checked_copy<'a, V, E: std::fmt::Debug>(
    copy: &'a mut Vec<u8>,
    data: &[u8],
    new_checked: fn(&'a mut [u8]) -> Result<V, E>,
) -> V {
    copy.clear();
    copy.extend_from_slice(data);
    new_checked(&mut copy[..]).expect("the input checked, so does its copy")
}
