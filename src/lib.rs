//! The appliance (placeholder: being written).
#![forbid(unsafe_code)]
