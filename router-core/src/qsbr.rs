//! Quiescent-state-based reclamation (placeholder: being written).
