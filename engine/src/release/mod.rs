//! What the same Loopfiles ship: `loop render` writes the Kubernetes objects as
//! plain YAML with every built image pinned by digest ([`render`]), records what
//! it rendered in `loop.lock.json` ([`lock`]) so that `loop render --check`
//! finds drift, and flags what a production reviewer would ([`lint`]).
//! Profiles (`profile(NAME)`) and dev-only marks (`dev_only=True`) come from
//! evaluation (`lang::model::Release`).

pub mod lint;
pub mod lock;
pub mod push;
pub mod render;
