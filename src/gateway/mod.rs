//! The Gateway API: its types, and finding out whether the cluster has it.

pub mod api;
