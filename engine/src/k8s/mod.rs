//! The Kubernetes runtime: connecting safely, applying objects with server-side
//! apply, following rollouts, and deleting what `loop` applied.

pub mod apply;
pub mod context;
pub mod down;
pub mod errors;
pub mod logs;
pub mod owner;
pub mod pods;
pub mod portforward;
pub mod rollout;
pub mod sync;
#[cfg(test)]
pub(crate) mod testing;

pub use apply::Applier;
pub use context::{connect, Cluster};
