//! On-disk formats: the data file and the manifest.

pub mod datafile;
pub mod manifest;
