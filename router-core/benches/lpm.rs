//! LPM benchmarks (being written).

fn main() {}
