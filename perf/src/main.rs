//! Packet generator (placeholder: being written).
#![forbid(unsafe_code)]
fn main() {}
