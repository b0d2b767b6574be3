//! strata on native platforms.
