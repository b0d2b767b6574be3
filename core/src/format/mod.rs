//! On-disk formats: the header every format shares, the data file, the manifest and the list of
//! an encrypted layer's files.

mod codec;
pub mod datafile;
pub mod files_list;
mod lz4;
pub mod manifest;
mod zstd;
