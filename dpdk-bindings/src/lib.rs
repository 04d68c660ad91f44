//! Bindings to DPDK (placeholder: being written).
