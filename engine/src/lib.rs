//! The `loop` engine: the resource graph, affected sets, and the CLI.

pub mod affected;
pub mod cli;
pub mod graph;
pub mod load;
pub mod report;
