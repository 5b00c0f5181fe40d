//! `loop check`, `loop graph` and `loop affected` on good projects.

use crate::support::{project, repo, run_loop};

#[test]
fn placeholder_compiles() {
    let _ = (project(&[]), repo(), run_loop as fn(_, _) -> _);
}
