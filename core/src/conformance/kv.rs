//! KV conformance suite (placeholder).
