//! Storage conformance suite (placeholder).
