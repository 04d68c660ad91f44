//! Zero-copy packet views (placeholder: being written).
