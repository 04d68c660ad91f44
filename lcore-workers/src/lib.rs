//! Worker threads (placeholder: being written).
#![forbid(unsafe_code)]
