//! The Starlark front end of `loop`.
//!
//! `lang` knows how to find, load and evaluate Loopfiles and the modules they
//! `load()`, how to render errors, and what the plain-data [`Manifest`] that
//! evaluation produces looks like. It knows nothing of processes or clusters, and
//! nothing of the built-in functions: those come from `stdlib` as a [`Globals`].
//!
//! [`Globals`]: starlark::environment::Globals

pub mod compose_model;
pub mod current;
pub mod data;
pub mod diag;
pub mod interpolate;
pub mod limits;
pub mod loader;
pub mod location;
pub mod model;
pub mod nesting;
pub mod project;
pub mod tabs;
pub mod while_loops;
pub mod workload;

pub use diag::Diagnostic;
pub use loader::{EvalEnv, Loader};
pub use location::Location;
pub use model::Manifest;
pub use project::Project;
