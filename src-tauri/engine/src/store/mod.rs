//! (in progress)
pub mod folder;
