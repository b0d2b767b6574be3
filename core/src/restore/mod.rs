//! Restores: [`plan`] chooses what to bring back from a chain as of a time and gives it new ids
//! (pure data naming the layers it reads), [`run`] executes a plan, [`read`] reads one data
//! file's needed blocks.

pub mod plan;
pub(crate) mod read;
pub mod run;
