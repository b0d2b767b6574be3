//! Managing backups without restoring them: copying a chain or a collection to another storage
//! (optionally re-encrypting), compacting a chain into one full backup, and forgetting old
//! backups of a collection by a retention policy without breaking a chain.

pub mod compact;
pub mod copy;
pub mod forget;
