//! On-disk formats: the header every format shares, the data file and the manifest.

pub mod datafile;
pub mod envelope;
pub mod manifest;
