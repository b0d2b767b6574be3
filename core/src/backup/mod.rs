//! Backups: [`plan`] turns a statement's targets into a self-contained plan (pure data, with its
//! work units and an id hashing its content), [`run`] executes a plan as a thin driver, and
//! [`resume`] keeps the records (the plan, one done record per unit) that let a killed run
//! resume and several runners share one plan; [`lease`] tells a run still going from an
//! abandoned one, whose files any later run removes.
//!
//! A full backup exports each span from time zero. An incremental layer extends a chain: it
//! exports what changed in `(previous end, end]` — tombstones included, so deletions restore —
//! and exports spans that are new since the previous layer (tables created since) from zero.
//! With revision history every version in the window is kept, and so is every descriptor change.

pub(crate) mod commit;
pub mod identity;
pub mod job;
pub mod lease;
pub mod plan;
pub mod resume;
pub mod run;
pub(crate) mod unit;
